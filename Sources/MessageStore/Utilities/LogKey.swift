/// Logger metadata keys, in one place so every log line uses the same names.
enum LogKey {
    static let servers = "nats.servers"
    static let status = "nats.status"
    static let subject = "message_store.subject"
    static let stream = "message_store.stream"
    static let sequence = "message_store.sequence"
    static let attempt = "message_store.attempt"
    static let error = "message_store.error"
    static let consumer = "message_store.consumer"
    static let type = "message_store.type"
}

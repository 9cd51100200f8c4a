/// A terminated message on its way to the dead-letter subject.
///
/// The body is the original one, byte for byte (as the Python package does); headers say why.
/// The message id is derived from the original stream and sequence, so a message dead-lettered
/// twice (say, a worker crashed between copying and terminating) is stored once.
struct DeadLetter {
    /// Why a message was given up.
    enum Cause: String {
        case handlerFailed = "handler-failed"
        case terminatedByHandler = "terminated-by-handler"
        case malformedEnvelope = "malformed-envelope"
        case undecodableData = "undecodable-data"
        case unknownType = "unknown-type"
        case tooManyDeliveries = "too-many-deliveries"
    }

    let message: FetchedMessage
    let subject: String
    let stream: String
    let consumer: String
    let cause: Cause
    let reason: String

    func publish(to deadLetterSubject: String, store: MessageStore) async throws(MessageStoreError) -> PublishAck {
        var headers = MessageHeaders()
        for field in message.headers where !field.name.hasPrefix("Nats-") {
            headers.add(field.value, for: field.name)
        }
        headers[DeadLetterHeader.reason] = Self.headerValue(reason)
        headers[DeadLetterHeader.cause] = cause.rawValue
        headers[DeadLetterHeader.attempts] = String(message.deliveryCount)
        headers[DeadLetterHeader.originalSubject] = subject
        headers[DeadLetterHeader.originalStream] = stream
        headers[DeadLetterHeader.originalSequence] = String(message.streamSequence)
        headers[DeadLetterHeader.consumer] = consumer
        headers[MessageHeaderName.messageID] = "dead-letter:\(stream):\(message.streamSequence)"
        let publication = Publication(
            subject: deadLetterSubject,
            natsSubject: try store.naming.publishSubject(deadLetterSubject),
            body: message.body,
            headers: headers
        )
        return try await store.publish(publication, timeout: store.configuration.publishTimeout)
    }

    /// Header values are one line of limited length.
    static func headerValue(_ text: String) -> String {
        let line = String(text.map { $0.isNewline || $0 == "\r" ? " " : $0 })
        return line.count > 1_000 ? String(line.prefix(997)) + "..." : line
    }
}

/// The headers a dead-lettered message carries.
public enum DeadLetterHeader {
    /// Why the message was given up, in words (the handler's error, the decoding problem, …).
    public static let reason = "MessageStore-Dead-Letter-Reason"
    /// A fixed word for the cause: `handler-failed`, `terminated-by-handler`, `malformed-envelope`,
    /// `undecodable-data`, `unknown-type` or `too-many-deliveries`.
    public static let cause = "MessageStore-Dead-Letter-Cause"
    /// How many times the message was delivered.
    public static let attempts = "MessageStore-Dead-Letter-Attempts"
    /// The application subject the message was published to.
    public static let originalSubject = "MessageStore-Original-Subject"
    /// The stream that stored the original.
    public static let originalStream = "MessageStore-Original-Stream"
    /// The original's stream sequence.
    public static let originalSequence = "MessageStore-Original-Sequence"
    /// The consumer that gave up on it.
    public static let consumer = "MessageStore-Consumer"
}

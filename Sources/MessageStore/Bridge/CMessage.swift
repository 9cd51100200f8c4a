import CNATS

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Copies the parts of a `natsMsg` into Swift values, so the C message can be destroyed at once.
enum CMessage {
    static func data(of message: OpaquePointer) -> [UInt8] {
        let length = Int(natsMsg_GetDataLength(message))
        guard length > 0, let data = natsMsg_GetData(message) else { return [] }
        // Not NUL-terminated: copy exactly `length` bytes.
        return data.withMemoryRebound(to: UInt8.self, capacity: length) {
            Array(UnsafeBufferPointer(start: $0, count: length))
        }
    }

    static func subject(of message: OpaquePointer) -> String {
        guard let subject = natsMsg_GetSubject(message) else { return "" }
        return String(cString: subject)
    }

    /// The subject of `message`, reusing `previous` when it is the same text: the messages of a
    /// batch mostly share a subject, and this saves an allocation for each.
    static func subject(of message: OpaquePointer, reusing previous: String) -> String {
        guard let subject = natsMsg_GetSubject(message) else { return "" }
        var previous = previous
        let same = previous.withUTF8 { bytes in
            bytes.withMemoryRebound(to: CChar.self) { chars in
                strncmp(subject, chars.baseAddress ?? subject, chars.count) == 0 && subject[chars.count] == 0
            }
        }
        return same ? previous : String(cString: subject)
    }

    static func headers(of message: OpaquePointer) -> MessageHeaders {
        var keys: UnsafeMutablePointer<UnsafePointer<CChar>?>?
        var keyCount: Int32 = 0
        guard natsMsgHeader_Keys(message, &keys, &keyCount) == NATS_OK, let keys else { return MessageHeaders() }
        // The array is ours to free; the strings belong to the message.
        defer { free(keys) }
        var fields: [MessageHeaders.Field] = []
        for index in 0..<Int(keyCount) {
            guard let key = keys[index] else { continue }
            var values: UnsafeMutablePointer<UnsafePointer<CChar>?>?
            var valueCount: Int32 = 0
            guard natsMsgHeader_Values(message, key, &values, &valueCount) == NATS_OK, let values else { continue }
            defer { free(values) }
            let name = String(cString: key)
            for valueIndex in 0..<Int(valueCount) {
                if let value = values[valueIndex] {
                    fields.append(MessageHeaders.Field(name: name, value: String(cString: value)))
                }
            }
        }
        return MessageHeaders(fields)
    }

    /// Creates a `natsMsg` with the body and headers of a publication, and `reply` as its reply
    /// subject if given. The caller owns it.
    static func make(
        _ publication: Publication,
        reply: UnsafePointer<CChar>? = nil
    ) throws(MessageStoreError) -> OpaquePointer {
        try publication.validate()
        var message: OpaquePointer?
        let status = publication.body.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { chars in
                natsMsg_Create(&message, publication.natsSubject, reply, chars.baseAddress, Int32(chars.count))
            }
        }
        guard status == NATS_OK, let message else {
            throw ClientErrors.make(status, .init(operation: "creating a message", subject: publication.subject))
        }
        for field in publication.headers {
            let headerStatus = natsMsgHeader_Add(message, field.name, field.value)
            if headerStatus != NATS_OK {
                natsMsg_Destroy(message)
                throw ClientErrors.make(
                    headerStatus,
                    .init(operation: "setting header \"\(field.name)\"", subject: publication.subject)
                )
            }
        }
        return message
    }
}

/// A message ready to send: the NATS subject, the body and the headers.
struct Publication: Sendable {
    /// The application subject, for errors.
    var subject: String
    var natsSubject: String
    var body: [UInt8]
    var headers: MessageHeaders

    /// Checks what the server would refuse or read otherwise than meant (an overlong subject,
    /// a header that would break its line), before anything is sent.
    func validate() throws(MessageStoreError) {
        try SubjectRules.validateLength(natsSubject, subject: subject)
        try HeaderRules.validate(headers, subject: subject)
    }
}

/// A stored message as read from a stream, copied out of C.
struct RawStoredMessage: Sendable {
    var natsSubject: String
    var body: [UInt8]
    var headers: MessageHeaders
    var sequence: UInt64
    /// Nanoseconds since the Unix epoch.
    var timestamp: Int64
}

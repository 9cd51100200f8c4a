/// A terminated message on its way to the dead-letter subject.
///
/// The body is the original one, byte for byte (as the Python package does); headers say why.
/// The message id is derived from the original stream and sequence, so a message dead-lettered
/// twice (say, a worker crashed between copying and terminating) is stored once.
///
/// A dead letter always lands, whatever a peer stored:
/// - the peer's headers are copied only when well formed, and never those the library or the
///   server own (`Nats-*`, `MessageStore-*`, in any letter case), so none can be smuggled in or
///   stand before the library's own;
/// - a subject too long for the server is replaced by
///   `<dead-letter subject>.<category>.subject-too-long.<sequence>` (the original subject is in a
///   header);
/// - a copy the stream refuses (too large, say) is replaced by a reduced one: the library's
///   headers, no body, and a header saying what was left out;
/// - an acknowledgement that says "duplicate" is checked: a message stored under the same id by
///   someone else (a forged dead letter) does not suppress the real one, which is stored again
///   under an id of its own.
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

    /// What was stored.
    struct Stored {
        var ack: PublishAck
        var subject: String
        /// Why the body was left out, when it was.
        var reduced: String?
        /// The sequence of a message someone else had stored under the dead letter's id.
        var forgedSequence: UInt64?
    }

    let message: FetchedMessage
    let subject: String
    let stream: String
    let consumer: String
    let cause: Cause
    let reason: String

    /// The longest NATS subject a dead letter gets: what any publish may have.
    static let maxSubjectBytes = SubjectRules.maxPublishSubjectLength

    /// The id that makes a second copy of the same message a duplicate.
    var messageID: String { "dead-letter:\(stream):\(message.streamSequence)" }

    func publish(withPrefix deadLetterPrefix: String, through publisher: Publisher) async throws(MessageStoreError)
        -> Stored
    {
        let letterSubject = Self.subject(
            prefix: deadLetterPrefix,
            original: subject,
            sequence: message.streamSequence,
            naming: publisher.naming
        )
        let full = Publication(
            subject: letterSubject,
            natsSubject: try publisher.naming.publishSubject(letterSubject),
            body: message.body,
            headers: headers(id: messageID, reduced: nil)
        )
        var stored: Stored
        do {
            stored = Stored(
                ack: try await publisher.publish(full),
                subject: letterSubject
            )
        } catch  where !Self.isTransient(error) {
            // Refused as it is: store what says why, without the body.
            let why =
                "body of \(message.body.count) bytes and peer headers left out: \(Self.headerValue(error.message))"
            var reduced = full
            reduced.body = []
            reduced.headers = headers(id: messageID, reduced: why)
            stored = Stored(
                ack: try await publisher.publish(reduced),
                subject: letterSubject,
                reduced: why
            )
        }
        guard stored.ack.isDuplicate else { return stored }
        if try await isOurs(stream: stored.ack.stream, sequence: stored.ack.sequence, jetStream: publisher.jetStream) {
            return stored
        }
        // Someone else stored a message under this id: store the real one under an id of its own.
        var again = full
        again.body = stored.reduced == nil ? full.body : []
        again.headers = headers(
            id: messageID + ":" + Self.randomSuffix(),
            reduced: stored.reduced,
            forgedSequence: stored.ack.sequence
        )
        stored.forgedSequence = stored.ack.sequence
        stored.ack = try await publisher.publish(again)
        return stored
    }

    /// The dead letter's application subject: `<prefix><original>`, or a short one when that is
    /// too long for the server.
    static func subject(prefix: String, original: String, sequence: UInt64, naming: Naming) -> String {
        func fits(_ subject: String) -> Bool {
            naming.subjectPrefix.utf8.count + subject.utf8.count <= maxSubjectBytes
        }
        let natural = prefix + original
        if fits(natural) { return natural }
        // The category kept where it fits, so that readers of `<prefix><category>.>` see it too.
        let inCategory = prefix + Naming.category(of: original) + ".subject-too-long.\(sequence)"
        return fits(inCategory) ? inCategory : prefix + "subject-too-long.\(sequence)"
    }

    /// The headers of the copy: the peer's that are well formed and not the library's or the
    /// server's, then the library's own.
    func headers(id: String, reduced: String?, forgedSequence: UInt64? = nil) -> MessageHeaders {
        var headers = MessageHeaders()
        if reduced == nil {
            for field in message.headers where Self.isCopyable(field) {
                headers.add(field.value, for: field.name)
            }
        }
        headers[DeadLetterHeader.reason] = Self.headerValue(reason)
        headers[DeadLetterHeader.cause] = cause.rawValue
        headers[DeadLetterHeader.attempts] = String(message.deliveryCount)
        headers[DeadLetterHeader.originalSubject] = Self.headerValue(subject)
        headers[DeadLetterHeader.originalStream] = stream
        headers[DeadLetterHeader.originalSequence] = String(message.streamSequence)
        headers[DeadLetterHeader.consumer] = consumer
        if let reduced { headers[DeadLetterHeader.reduced] = reduced }
        if let forgedSequence { headers[DeadLetterHeader.duplicateOf] = String(forgedSequence) }
        headers[MessageHeaderName.messageID] = id
        return headers
    }

    /// Whether the message stored at `sequence` is this dead letter (an earlier copy of ours,
    /// stored before a crash), rather than something a peer stored under its id.
    private func isOurs(
        stream: String,
        sequence: UInt64,
        jetStream: JetStream
    ) async throws(MessageStoreError) -> Bool {
        guard let stored = try await jetStream.message(stream: stream, sequence: sequence) else { return false }
        let headers = stored.headers
        guard headers[DeadLetterHeader.originalStream] == self.stream,
            headers[DeadLetterHeader.originalSequence] == String(message.streamSequence),
            headers[DeadLetterHeader.cause] != nil
        else { return false }
        return headers[DeadLetterHeader.reduced] != nil ? stored.body.isEmpty : stored.body == message.body
    }

    /// Whether a peer's header may be copied: a well-formed name (visible ASCII, no `:`), a value
    /// on one line, and not a name the library or the server owns.
    static func isCopyable(_ field: MessageHeaders.Field) -> Bool {
        guard HeaderRules.isValidName(field.name), HeaderRules.isValidValue(field.value) else { return false }
        let lowered = field.name.lowercased()
        return !lowered.hasPrefix("nats-") && !lowered.hasPrefix("messagestore-")
    }

    /// Failures that may pass: the message is given back and dead-lettered on a later delivery.
    static func isTransient(_ error: MessageStoreError) -> Bool {
        [.noResponders, .publishTimedOut, .timedOut, .connectionFailed, .connectionClosed].contains(error.code)
    }

    private static func randomSuffix() -> String {
        var generator = SystemRandomNumberGenerator()
        return String(generator.next(), radix: 16) + String(generator.next(), radix: 16)
    }

    /// Header values are one line of limited length.
    static func headerValue(_ text: String) -> String {
        let line = String(text.map { $0.isNewline || $0 == "\r" || $0 == "\0" ? " " : $0 })
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
    /// Present when the copy is reduced: the stream refused the full one (too large, say), so the
    /// body and the peer's headers were left out; says why.
    public static let reduced = "MessageStore-Dead-Letter-Reduced"
    /// Present when another message had been stored under this dead letter's id (a forgery): its
    /// sequence in the dead-letter stream.
    public static let duplicateOf = "MessageStore-Dead-Letter-Duplicate-Of"
}

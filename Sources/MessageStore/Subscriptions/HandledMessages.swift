import Logging
import Metrics

/// A record of the messages a handler has handled, kept in a JetStream key-value bucket, so that
/// a message delivered again after its handler succeeded is acknowledged without running the
/// handler again.
///
/// Delivery stays at least once, with duplicates suppressed: a message is recorded after its
/// handler returns, so a worker that dies after the handler's effect and before the record runs
/// it again on redelivery. A worker that dies after the record, before its acknowledgement
/// reached the server (the common window), does not. For effects in a database, record the
/// message in the same transaction instead (an inbox), which closes that window too.
///
/// ```swift
/// let handled = try await store.handledMessages("billing", retention: .seconds(24 * 3_600))
/// let handlers = MessageHandlers().handling(
///     OrderPlaced.self,
///     handled.once { message in try await charge(message.data) }
/// )
/// ```
///
/// A message is known by its `Nats-Msg-Id` (the id it was published with), so the same message
/// published twice, after the stream's duplicate window, is suppressed too; one without an id (or
/// with one longer than ``maxIDLength`` bytes) by its stream and sequence. Workers that share a
/// record (one name) handle each message once between them, whatever their consumers. Entries
/// expire after the record's retention: a message delivered again later than that runs again.
public struct HandledMessages: Sendable {
    /// The bucket's name: `message-store-handled_<name>`, or
    /// `message-store-handled_<prefix>_<name>` for a store with a prefix.
    public let bucket: String
    /// How long an entry is kept (the bucket's maximum age, set when it is created).
    public let retention: Duration
    /// Ids longer than this (in UTF-8 bytes) are not used as keys; such a message is known by its
    /// stream and sequence.
    public static let maxIDLength = 256

    let store: MessageStore
    /// `KV_<bucket>`.
    let bucketStream: String
    private let skipped: Counter

    init(store: MessageStore, bucket: String, retention: Duration) {
        self.store = store
        self.bucket = bucket
        self.retention = retention
        bucketStream = "KV_" + bucket
        skipped = Counter(label: "message_store_duplicates_skipped_total", dimensions: [("bucket", bucket)])
    }

    /// Wraps `handler` so that a message already recorded is not handled again (it is
    /// acknowledged as handled), and one whose handler returns is recorded.
    ///
    /// A failure to read the record lets the message be retried later; a failure to write it
    /// after the handler returned is logged and the message acknowledged (retrying it would run
    /// the handler again).
    public func once<Payload: MessagePayload>(
        _ handler: @escaping @Sendable (ReceivedMessage<Payload>) async throws -> Void
    ) -> @Sendable (ReceivedMessage<Payload>) async throws -> Void {
        { [self] message in
            if try await contains(message) {
                skipped.increment()
                store.logger.debug(
                    "message already handled: not handled again",
                    metadata: [
                        LogKey.subject: "\(message.subject)", LogKey.sequence: "\(message.sequence)",
                        LogKey.consumer: "\(message.consumer)",
                    ]
                )
                return
            }
            try await handler(message)
            do {
                try await record(message)
            } catch {
                store.logger.warning(
                    "could not record a handled message: it runs again if it is delivered again",
                    metadata: [
                        LogKey.subject: "\(message.subject)", LogKey.sequence: "\(message.sequence)",
                        LogKey.error: "\(error)",
                    ]
                )
            }
        }
    }

    /// Whether `message` is recorded as handled.
    public func contains<Payload: MessagePayload>(_ message: ReceivedMessage<Payload>) async throws(MessageStoreError)
        -> Bool
    {
        let subject = keySubject(for: message)
        guard
            let entry = try await store.jetStream.lastMessage(
                stream: bucketStream,
                natsSubject: subject,
                subject: subject
            )
        else { return false }
        // A key deleted or purged (with the `nats kv` tools) is not recorded.
        return entry.headers["KV-Operation"] == nil
    }

    /// Records `message` as handled; recording it again is harmless.
    public func record<Payload: MessagePayload>(_ message: ReceivedMessage<Payload>) async throws(MessageStoreError) {
        let subject = keySubject(for: message)
        var headers = MessageHeaders()
        // Create-if-absent: a key already there (another worker's record, or this one's own whose
        // acknowledgement was lost and retried) fails the expectation, and that is the outcome wanted.
        headers[MessageHeaderName.expectedLastSubjectSequence] = "0"
        let publication = Publication(
            subject: subject,
            natsSubject: subject,
            body: Array("\(message.stream) \(message.sequence)".utf8),
            headers: headers
        )
        do {
            _ = try await store.publisher.publish(publication, traced: false)
        } catch  where error.code == .wrongExpectedSequence {
            return
        }
    }

    /// `$KV.<bucket>.id.<escaped Nats-Msg-Id>`, or `$KV.<bucket>.seq.<escaped stream>.<sequence>`.
    func keySubject<Payload: MessagePayload>(for message: ReceivedMessage<Payload>) -> String {
        "$KV.\(bucket)."
            + Self.key(
                id: message.headers[MessageHeaderName.messageID],
                stream: message.stream,
                sequence: message.sequence
            )
    }

    static func key(id: String?, stream: String, sequence: UInt64) -> String {
        if let id, !id.isEmpty, id.utf8.count <= maxIDLength {
            return "id." + AttemptLedger.escapeKeyToken(id)
        }
        return "seq.\(AttemptLedger.escapeKeyToken(stream)).\(sequence)"
    }

    static func bucketName(prefix: String, name: String) -> String {
        let escapedName = AttemptLedger.escapeBucketName(name)
        return prefix.isEmpty
            ? "message-store-handled_" + escapedName
            : "message-store-handled_\(AttemptLedger.escapeBucketName(prefix))_\(escapedName)"
    }
}

extension MessageStore {
    /// The record of handled messages named `name` (see ``HandledMessages``), creating its bucket
    /// when it does not exist, with `retention` and `replicas`; an existing bucket is used as it is.
    ///
    /// - Throws: ``MessageStoreError`` with ``MessageStoreError/Code/invalidConfiguration`` for an
    ///   empty name or a retention under a second; the server's error when the bucket can be
    ///   neither read nor created.
    public func handledMessages(
        _ name: String,
        retention: Duration = .seconds(24 * 3_600),
        replicas: Int = 1
    ) async throws(MessageStoreError) -> HandledMessages {
        guard !name.isEmpty else {
            throw MessageStoreError(code: .invalidConfiguration, message: "a record of handled messages needs a name")
        }
        guard retention >= .seconds(1) else {
            throw MessageStoreError(
                code: .invalidConfiguration,
                message: "the retention of the handled messages \"\(name)\" must be at least a second, not \(retention)"
            )
        }
        guard (1...5).contains(replicas) else {
            throw MessageStoreError(
                code: .invalidConfiguration,
                message: "the handled messages \"\(name)\" need 1 to 5 replicas, not \(replicas)"
            )
        }
        let handled = HandledMessages(
            store: self,
            bucket: HandledMessages.bucketName(prefix: naming.prefix, name: name),
            retention: retention
        )
        try await jetStream.ensureKeyValueBucket(handled.bucket, maxAge: retention, replicas: replicas)
        return handled
    }
}

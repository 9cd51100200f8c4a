import CNATS

/// A second connection to the same servers that writes everything at once
/// (`natsOptions_SetSendAsap`), for the traffic whose latency matters: awaited publishes and
/// the pull requests of fetches.
///
/// On the main connection cnats' flusher holds writes up to 1 ms to coalesce them, which suits
/// pipelined publishing and acknowledgements, but delays a pull request or a lone publish by
/// as much. An awaited publish is bound by the round trip, and every thread hand-off on the way
/// costs about as much as the server's work: a blocking `js_PublishMsg` on a library thread
/// takes two more hand-offs than the C loop (the caller's task to that thread, and back). Here
/// the calling thread gives the message to cnats, which writes it and returns without waiting
/// for the server; the acknowledgement or error arrives on the subscription thread of an
/// ``AckInbox``, a timeout on its timer thread, and either resumes the caller.
final class PromptConnection: @unchecked Sendable {
    // @unchecked: the pointers are set once and destroyed only in `deinit`; cnats connections
    // and JetStream contexts are thread-safe, and so is the inbox.
    private let connection: OpaquePointer
    private let jetStream: OpaquePointer
    /// Where acknowledgements arrive; subscribed on the first publish, so that a process that
    /// only consumes has no threads for it.
    private let acks: LazyAckInbox

    /// Connects with `options` (the main connection's, without its lifecycle callbacks) plus
    /// SendAsap; `events` hears of its asynchronous errors. Returns nil when that fails;
    /// awaited publishes then use the main connection.
    static func connect(
        options: OpaquePointer,
        signer: ConnectionSigner?,
        events: ConnectionEvents,
        jetStream settings: JetStreamSettings,
        inboxPrefix: String?
    ) -> PromptConnection? {
        guard natsOptions_SetSendAsap(options, true) == NATS_OK else { return nil }
        // Released exactly once: by the closed callback, or below when connecting fails.
        let closure = Unmanaged.passRetained(events).toOpaque()
        guard
            natsOptions_SetErrorHandler(
                options,
                { connection, _, status, closure in
                    ConnectionEvents.from(closure)?.asyncError(connection, status)
                },
                closure
            ) == NATS_OK,
            natsOptions_SetClosedCB(
                options,
                { _, closure in
                    guard let closure else { return }
                    Unmanaged<ConnectionEvents>.fromOpaque(closure).takeRetainedValue().closed()
                },
                closure
            ) == NATS_OK
        else {
            Unmanaged<ConnectionEvents>.fromOpaque(closure).release()
            return nil
        }
        var connection: OpaquePointer?
        guard connectAgainOnDroppedSignature(&connection, options, signer: signer) == NATS_OK, let connection else {
            natsConnection_Destroy(connection)
            Unmanaged<ConnectionEvents>.fromOpaque(closure).release()
            return nil
        }
        var jetStream: OpaquePointer?
        guard settings.makeContext(&jetStream, on: connection) == NATS_OK, let jetStream else {
            natsConnection_Close(connection)
            natsConnection_Destroy(connection)
            return nil
        }
        let prompt = PromptConnection(connection: connection, jetStream: jetStream, inboxPrefix: inboxPrefix)
        events.watch(prompt.acks)
        return prompt
    }

    private init(connection: OpaquePointer, jetStream: OpaquePointer, inboxPrefix: String?) {
        self.connection = connection
        self.jetStream = jetStream
        acks = LazyAckInbox(connection: connection, inboxPrefix: inboxPrefix)
    }

    deinit {
        natsConnection_Close(connection)
        acks.close()
        jsCtx_Destroy(jetStream)
        natsConnection_Destroy(connection)
    }

    /// Publishes and waits for the acknowledgement, at most `timeout`.
    ///
    /// Nothing here waits for the server: cnats writes the message (or keeps it in its
    /// reconnect buffer) and returns, so this runs on the caller's thread.
    func publish(_ publication: Publication, timeout: Duration) async throws(MessageStoreError) -> PublishAck {
        let inbox: AckInbox
        do {
            inbox = try acks.get()
        } catch {
            var error = error
            error.subject = publication.subject
            throw error
        }
        return try await inbox.publish(publication, timeout: timeout)
    }

    /// Sends `publication` at once and returns without waiting for its acknowledgement.
    func send(_ publication: Publication, timeout: Duration) -> SentPublish {
        do {
            return try acks.get().send(publication, timeout: timeout)
        } catch {
            var error = error
            error.subject = publication.subject
            return SentPublish(subject: publication.subject, failedWith: error)
        }
    }

    /// Calls `body` with this connection; the pointer must not escape.
    func withConnection<R, E: Error>(_ body: (OpaquePointer) throws(E) -> R) throws(E) -> R {
        try body(connection)
    }

    /// Calls `body` with this connection's JetStream context; the pointer must not escape.
    func withJetStream<R, E: Error>(_ body: (OpaquePointer) throws(E) -> R) throws(E) -> R {
        try body(jetStream)
    }

    /// The inbox the first publish subscribed, until ``close()``.
    var inboxIfSubscribed: AckInbox? {
        acks.ifStarted
    }

    /// How many C messages of finished publishes wait to be destroyed (see ``MessageDisposal``).
    var heldMessageCount: Int {
        acks.ifStarted?.heldMessageCount ?? 0
    }

    /// Closes the connection and fails every publish still waiting. Harmless to repeat.
    func close() {
        natsConnection_Close(connection)
        acks.close()
    }
}

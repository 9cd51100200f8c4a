import CNATS
import Synchronization

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
/// for the server; the acknowledgement, an error, or the timeout after `MaxWait` arrives on
/// cnats' reply thread, which resumes the caller.
final class PromptConnection: @unchecked Sendable {
    // @unchecked: the pointers are set once and destroyed only in `deinit`; cnats connections
    // and JetStream contexts are thread-safe. The waiting table is behind a Mutex.
    private let connection: OpaquePointer
    private let jetStream: OpaquePointer
    private let waiting: Waiting
    private let retainedWaiting: Unmanaged<Waiting>

    typealias Outcome = Result<PublishAck, MessageStoreError>

    /// The callers waiting for acknowledgements, by the address of their message.
    final class Waiting: Sendable {
        struct Entry {
            let continuation: CheckedContinuation<Outcome, Never>
            /// The application subject, for errors.
            let subject: String
        }

        private let table = Mutex<[UInt: Entry]>([:])
        /// Where the acknowledgement handler leaves the messages it is done with.
        let disposal = MessageDisposal()

        func register(_ key: UInt, _ entry: Entry) {
            table.withLock { $0[key] = entry }
        }

        func take(_ key: UInt) -> Entry? {
            table.withLock { $0.removeValue(forKey: key) }
        }

        /// Resumes everyone still waiting with `error`.
        func failAll(with error: MessageStoreError) {
            let everyone = table.withLock { table in
                defer { table.removeAll() }
                return Array(table.values)
            }
            for entry in everyone {
                entry.continuation.resume(returning: .failure(error))
            }
        }
    }

    /// Connects with `options` (the main connection's, without its callbacks) plus SendAsap.
    /// Returns nil when that fails; awaited publishes then use the main connection.
    static func connect(options: OpaquePointer, requestTimeout: Duration) -> PromptConnection? {
        guard natsOptions_SetSendAsap(options, true) == NATS_OK else { return nil }
        var connection: OpaquePointer?
        guard natsConnection_Connect(&connection, options) == NATS_OK, let connection else {
            natsConnection_Destroy(connection)
            return nil
        }
        let waiting = Waiting()
        let retained = Unmanaged.passRetained(waiting)
        var jsOptions = jsOptions()
        jsOptions_Init(&jsOptions)
        jsOptions.Wait = requestTimeout.milliseconds
        // No limit on acknowledgements outstanding, so a publish never stalls its caller.
        jsOptions.PublishAsync.MaxPending = 0
        jsOptions.PublishAsync.AckHandlerClosure = retained.toOpaque()
        jsOptions.PublishAsync.AckHandler = { _, message, ack, failure, closure in
            guard let closure, let message else {
                natsMsg_Destroy(message)
                return
            }
            let waiting = Unmanaged<Waiting>.fromOpaque(closure).takeUnretainedValue()
            // Take the caller before giving the message up: once destroyed, its address may be
            // reused at once.
            let entry = waiting.take(UInt(bitPattern: message))
            waiting.disposal.dispose(message)
            guard let entry else { return }
            entry.continuation.resume(
                returning: PublishOutcome.make(subject: entry.subject, ack: ack, failure: failure)
            )
        }
        var jetStream: OpaquePointer?
        guard natsConnection_JetStream(&jetStream, connection, &jsOptions) == NATS_OK, let jetStream else {
            natsConnection_Close(connection)
            natsConnection_Destroy(connection)
            retained.release()
            return nil
        }
        return PromptConnection(
            connection: connection,
            jetStream: jetStream,
            waiting: waiting,
            retainedWaiting: retained
        )
    }

    private init(
        connection: OpaquePointer,
        jetStream: OpaquePointer,
        waiting: Waiting,
        retainedWaiting: Unmanaged<Waiting>
    ) {
        self.connection = connection
        self.jetStream = jetStream
        self.waiting = waiting
        self.retainedWaiting = retainedWaiting
    }

    deinit {
        natsConnection_Close(connection)
        jsCtx_Destroy(jetStream)
        natsConnection_Destroy(connection)
        retainedWaiting.release()
    }

    /// Publishes and waits for the acknowledgement, at most `timeout` (cnats' `MaxWait`).
    ///
    /// Nothing here waits for the server: cnats writes the message (or keeps it in its
    /// reconnect buffer) and returns, so this runs on the caller's thread.
    func publish(_ publication: Publication, timeout: Duration) async throws(MessageStoreError) -> PublishAck {
        let message = try CMessage.make(publication)
        let key = UInt(bitPattern: message)
        let waitMilliseconds = timeout.milliseconds
        let outcome = await withCheckedContinuation { (continuation: CheckedContinuation<Outcome, Never>) in
            // Registered first: the acknowledgement may arrive before js_PublishMsgAsync returns.
            waiting.register(key, Waiting.Entry(continuation: continuation, subject: publication.subject))
            var options = jsPubOptions()
            jsPubOptions_Init(&options)
            options.MaxWait = waitMilliseconds
            var owned: OpaquePointer? = message
            let status = js_PublishMsgAsync(jetStream, &owned, &options)
            if status != NATS_OK {
                // Not taken by cnats (it then left `owned` set), so no handler will answer.
                let error = ClientErrors.make(
                    status,
                    .init(operation: "publishing", subject: publication.subject, isPublish: true)
                )
                // Take the entry before destroying the message: once destroyed, its address
                // may be reused at once by another publish, which registers under it.
                let entry = waiting.take(key)
                natsMsg_Destroy(owned)
                entry?.continuation.resume(returning: .failure(error))
            }
        }
        return try outcome.get()
    }

    /// Calls `body` with this connection's JetStream context; the pointer must not escape.
    func withJetStream<R, E: Error>(_ body: (OpaquePointer) throws(E) -> R) throws(E) -> R {
        try body(jetStream)
    }

    /// How many messages of finished publishes wait to be destroyed (see ``MessageDisposal``).
    var heldMessageCount: Int {
        waiting.disposal.heldCount
    }

    /// Closes the connection and fails every publish still waiting. Harmless to repeat.
    func close() {
        natsConnection_Close(connection)
        waiting.disposal.flush()
        waiting.failAll(
            with: ClientErrors.make(
                NATS_CONNECTION_CLOSED,
                .init(operation: "publishing", isPublish: true)
            )
        )
    }
}

/// Turns cnats' asynchronous publish callback arguments into a result.
enum PublishOutcome {
    /// `subject` is only evaluated for a failure.
    static func make(
        subject: @autoclosure () -> String?,
        ack: UnsafeMutablePointer<jsPubAck>?,
        failure: UnsafeMutablePointer<jsPubAckErr>?
    ) -> Result<PublishAck, MessageStoreError> {
        if let ack {
            return .success(
                PublishAck(
                    stream: ack.pointee.Stream.map { String(cString: $0) } ?? "",
                    sequence: ack.pointee.Sequence,
                    isDuplicate: ack.pointee.Duplicate
                )
            )
        }
        let text = failure?.pointee.ErrText.map { String(cString: $0) }
        return .failure(
            ClientErrors.make(
                failure?.pointee.Err ?? NATS_ERR,
                jetStreamCode: failure?.pointee.ErrCode ?? jsErrCode(rawValue: 0),
                text: text,
                .init(operation: "publishing", subject: subject(), isPublish: true)
            )
        )
    }
}

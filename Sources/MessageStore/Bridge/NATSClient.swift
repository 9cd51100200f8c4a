import CNATS
import Logging
import Metrics
import Synchronization

/// Owns one `natsConnection` and its `jsCtx`.
///
/// Both pointers are set once in `connect` and destroyed only in `deinit`, so every call that
/// holds a reference to this object may use them. `close()` closes the connection (which cnats
/// allows from any thread and repeats harmlessly); calls made afterwards fail with
/// `NATS_CONNECTION_CLOSED`. Blocking calls run on ``BlockingThreadPool``.
final class NATSClient: @unchecked Sendable {
    // @unchecked: the two pointers are immutable; cnats connections and contexts are thread-safe.
    private let connection: OpaquePointer
    private let jetStream: OpaquePointer
    /// The connection for awaited publishes and fetch requests; nil if it could not connect.
    let prompt: PromptConnection?
    /// Where the acknowledgements of pipelined publishes arrive; subscribed on first use.
    private let pipelineInbox: LazyAckInbox
    let logger: Logger
    let requestTimeout: Duration
    let pool: BlockingThreadPool
    /// Where JetStream API requests go, with its trailing dot: `$JS.API.` unless a domain or
    /// prefix is configured.
    let jetStreamAPIPrefix: String
    /// The prefix of every inbox the library makes; nil for NATS's `_INBOX`.
    let inboxPrefix: String?
    /// The main connection's callbacks, which remember the subjects the server denied.
    private let events: ConnectionEvents
    /// Sends the progress reports of this connection's running subscriptions.
    let progressThread = ProgressThread()

    private init(
        connection: OpaquePointer,
        jetStream: OpaquePointer,
        prompt: PromptConnection?,
        inboxPrefix: String?,
        events: ConnectionEvents,
        jetStreamAPIPrefix: String,
        logger: Logger,
        requestTimeout: Duration,
        pool: BlockingThreadPool
    ) {
        self.jetStreamAPIPrefix = jetStreamAPIPrefix
        self.inboxPrefix = inboxPrefix
        self.events = events
        self.connection = connection
        self.jetStream = jetStream
        self.prompt = prompt
        pipelineInbox = LazyAckInbox(connection: connection, inboxPrefix: inboxPrefix)
        events.watch(pipelineInbox)
        self.logger = logger
        self.requestTimeout = requestTimeout
        self.pool = pool
    }

    deinit {
        natsConnection_Close(connection)
        pipelineInbox.close()
        jsCtx_Destroy(jetStream)
        natsConnection_Destroy(connection)
    }

    /// Calls `body` with the connection pointer; the pointer must not escape.
    func withConnection<R, E: Error>(_ body: (OpaquePointer) throws(E) -> R) throws(E) -> R {
        try body(connection)
    }

    /// Calls `body` with the JetStream context pointer; the pointer must not escape.
    func withJetStream<R, E: Error>(_ body: (OpaquePointer) throws(E) -> R) throws(E) -> R {
        try body(jetStream)
    }

    /// The inbox of pipelined publishes on the main connection (whose flusher coalesces their
    /// writes), subscribed on first use.
    func pipelineAcks() throws(MessageStoreError) -> AckInbox {
        try pipelineInbox.get()
    }

    /// Calls `body` with the JetStream context whose connection sends at once (see
    /// ``PromptConnection``), or the main one; the pointer must not escape. For subscriptions
    /// whose fetch requests should not wait in the main connection's flusher.
    func withPromptJetStream<R, E: Error>(_ body: (OpaquePointer) throws(E) -> R) throws(E) -> R {
        if let prompt { return try prompt.withJetStream(body) }
        return try body(jetStream)
    }

    /// Calls `body` with the connection that sends at once (see ``PromptConnection``), or the
    /// main one; the pointer must not escape.
    func withPromptConnection<R, E: Error>(_ body: (OpaquePointer) throws(E) -> R) throws(E) -> R {
        if let prompt { return try prompt.withConnection(body) }
        return try body(connection)
    }

    /// Calls `body` with the connection that sends at once when `sendingAtOnce`, else with the
    /// main one, whose flusher coalesces writes; the pointer must not escape.
    func withConnection<R, E: Error>(
        sendingAtOnce: Bool,
        _ body: (OpaquePointer) throws(E) -> R
    ) throws(E) -> R {
        sendingAtOnce ? try withPromptConnection(body) : try withConnection(body)
    }

    // MARK: Connecting

    static func connect(
        _ configuration: NATSConnection.Configuration,
        logger: Logger,
        pool: BlockingThreadPool = .shared
    ) async throws(MessageStoreError) -> NATSClient {
        try await pool.run { () throws(MessageStoreError) -> NATSClient in
            try connectBlocking(configuration, logger: logger, pool: pool)
        }
    }

    private static func connectBlocking(
        _ configuration: NATSConnection.Configuration,
        logger: Logger,
        pool: BlockingThreadPool
    ) throws(MessageStoreError) -> NATSClient {
        // URL user info never reaches a log line or an error; nor does any secret that cnats
        // might repeat in its texts.
        let servers = configuration.servers.map(Redaction.url).joined(separator: ",")
        let secrets = configuration.authentication.secrets + Redaction.userInfoSecrets(in: configuration.servers)
        func scrubbed(_ error: MessageStoreError) -> MessageStoreError {
            var error = error
            error.message = Redaction.scrub(error.message, secrets: secrets)
            return error
        }
        let context = ClientErrors.Context(operation: "connecting to \(servers)")
        func check(_ status: natsStatus, _ what: String = "setting the connection options") throws(MessageStoreError) {
            if status != NATS_OK {
                var error = ClientErrors.make(status, ClientErrors.Context(operation: what))
                if error.code == .clientError {
                    error.code = .invalidConfiguration
                }
                throw scrubbed(error)
            }
        }
        guard !configuration.servers.isEmpty else {
            throw MessageStoreError(code: .invalidConfiguration, message: "no NATS server URL was given")
        }

        var options: OpaquePointer?
        try check(natsOptions_Create(&options))
        guard let options else { throw ClientErrors.make(NATS_NO_MEMORY, context) }
        defer { natsOptions_Destroy(options) }

        try withCStringArray(configuration.servers) { (array) throws(MessageStoreError) in
            try check(natsOptions_SetServers(options, array, Int32(configuration.servers.count)))
        }
        try check(natsOptions_SetTimeout(options, configuration.connectTimeout.milliseconds))
        try check(natsOptions_SetMaxReconnect(options, Int32(clamping: configuration.reconnect.maxAttempts ?? -1)))
        try check(natsOptions_SetReconnectWait(options, configuration.reconnect.wait.milliseconds))
        try check(natsOptions_SetReconnectBufSize(options, Int32(clamping: configuration.reconnect.bufferSize)))
        let signer = try ConnectionOptions.apply(configuration, to: options, logger: logger, check: check)
        // Kept alive here until both connections are made; then by each one's events.
        defer { withExtendedLifetime(signer) {} }

        // Released exactly once: by the closed callback, or below when connecting fails (cnats
        // does not call the closed callback for a connection that never opened).
        let mainEvents = ConnectionEvents(
            logger: logger,
            servers: servers,
            keepAlive: signer,
            reportsLifecycle: true,
            metrics: ConnectionMetrics(connection: configuration.name ?? "default")
        )
        let events = Unmanaged.passRetained(mainEvents).toOpaque()
        try check(
            natsOptions_SetDisconnectedCB(
                options,
                { connection, closure in
                    // cnats reports a deliberate close as a disconnection too; only a lost server is news.
                    guard let connection, natsConnection_Status(connection) != NATS_CONN_STATUS_CLOSED else { return }
                    ConnectionEvents.from(closure)?.disconnected()
                },
                events
            )
        )
        try check(
            natsOptions_SetReconnectedCB(
                options,
                { connection, closure in
                    ConnectionEvents.from(closure)?.reconnected(connection)
                },
                events
            )
        )
        try check(
            natsOptions_SetErrorHandler(
                options,
                { connection, _, status, closure in
                    ConnectionEvents.from(closure)?.asyncError(connection, status)
                },
                events
            )
        )
        try check(
            natsOptions_SetClosedCB(
                options,
                { _, closure in
                    guard let closure else { return }
                    Unmanaged<ConnectionEvents>.fromOpaque(closure).takeRetainedValue().closed()
                },
                events
            )
        )

        var connection: OpaquePointer?
        let status = connectAgainOnDroppedSignature(&connection, options, signer: signer)
        guard status == NATS_OK, let connection else {
            var error = scrubbed(ClientErrors.make(status, context))
            let hungUp =
                (status == NATS_PROTOCOL_ERROR && error.message.contains("Expected 'PONG', got ''"))
                || (status == NATS_IO_ERROR && error.message.contains("SSL_"))
            if configuration.usesTLS, hungUp {
                // After a TLS handshake the server hung up before answering: with TLS 1.3 that is
                // how a refused (or missing) client certificate shows on the client's side.
                let detail = error.message.dropFirst("\(context.operation) failed: ".count)
                error.code = .tlsFailed
                error.message = """
                    \(context.operation) failed: TLS: the server closed the connection after the handshake; \
                    most often it requires a client certificate it trusts (mutual TLS) and none or another \
                    was given (\(detail))
                    """
            }
            natsConnection_Destroy(connection)
            Unmanaged<ConnectionEvents>.fromOpaque(events).release()
            throw error
        }

        let jetStreamSettings = JetStreamSettings(
            configuration.jetStream,
            requestTimeout: configuration.requestTimeout
        )
        var jetStream: OpaquePointer?
        let jsStatus = jetStreamSettings.makeContext(&jetStream, on: connection)
        guard jsStatus == NATS_OK, let jetStream else {
            let error = ClientErrors.make(jsStatus, ClientErrors.Context(operation: "creating a JetStream context"))
            natsConnection_Close(connection)
            natsConnection_Destroy(connection)
            throw error
        }
        // The connection for awaited publishes and fetch requests: the same servers and
        // settings, without the lifecycle callbacks (the main connection reports the server's
        // comings and goings); its own events hear of the permission errors of its publishes.
        _ = natsOptions_SetDisconnectedCB(options, nil, nil)
        _ = natsOptions_SetReconnectedCB(options, nil, nil)
        let promptEvents = ConnectionEvents(
            logger: logger,
            servers: servers,
            keepAlive: signer,
            reportsLifecycle: false
        )
        let prompt = PromptConnection.connect(
            options: options,
            signer: signer,
            events: promptEvents,
            jetStream: jetStreamSettings,
            inboxPrefix: configuration.inboxPrefix
        )
        if prompt == nil {
            logger.debug(
                "could not open the second connection; awaited publishes and fetches share the main one",
                metadata: [LogKey.servers: "\(servers)"]
            )
        }
        logger.debug("connected to NATS", metadata: [LogKey.servers: "\(servers)"])
        mainEvents.metrics?.up.record(1)
        return NATSClient(
            connection: connection,
            jetStream: jetStream,
            prompt: prompt,
            inboxPrefix: configuration.inboxPrefix,
            events: mainEvents,
            jetStreamAPIPrefix: jetStreamSettings.apiSubjectPrefix,
            logger: logger,
            requestTimeout: configuration.requestTimeout,
            pool: pool
        )
    }

    // MARK: State

    /// Closes the connection. Harmless to repeat.
    func close() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            pool.submit {
                self.prompt?.close()
                natsConnection_Close(self.connection)
                self.pipelineInbox.close()
                continuation.resume()
            }
        }
    }

    var isClosed: Bool {
        natsConnection_IsClosed(connection)
    }

    /// Whether the main connection is connected, trying to reconnect or closed.
    var state: NATSConnection.Status.State {
        switch natsConnection_Status(connection) {
        case NATS_CONN_STATUS_CONNECTED, NATS_CONN_STATUS_DRAINING_SUBS, NATS_CONN_STATUS_DRAINING_PUBS: .connected
        case NATS_CONN_STATUS_CLOSED: .closed
        default: .reconnecting
        }
    }

    /// How long a ping to the server takes, waiting at most `timeout`; nil without an answer.
    func roundTrip(timeout: Duration) async -> Duration? {
        try? await pool.run { [self] () throws(MessageStoreError) -> Duration? in
            let started = ContinuousClock.now
            guard natsConnection_FlushTimeout(connection, timeout.milliseconds) == NATS_OK else { return nil }
            return ContinuousClock.now - started
        }
    }

    /// The URL of the server currently connected to, if any, user info shown as `***`.
    var connectedURL: String? {
        var buffer = [CChar](repeating: 0, count: 512)
        guard natsConnection_GetConnectedUrl(connection, &buffer, buffer.count) == NATS_OK else { return nil }
        let url = String(nulTerminated: buffer)
        return url.isEmpty ? nil : Redaction.url(url)
    }

    /// The largest message body the server accepts.
    var maxPayload: Int {
        Int(natsConnection_GetMaxPayload(connection))
    }

    // MARK: Requests

    /// Sends a core NATS request and returns the reply body.
    ///
    /// The request waits on a library thread; a publish the server refuses ends the wait for
    /// the caller at once with `permissionDenied` (cnats would only time out; the thread
    /// itself stays until cnats gives up).
    func request(
        subject: String,
        body: [UInt8],
        timeout: Duration? = nil,
        context: ClientErrors.Context
    ) async throws(MessageStoreError) -> [UInt8] {
        let timeoutMilliseconds = (timeout ?? requestTimeout).milliseconds
        let denied = MessageStoreError(
            code: .permissionDenied,
            message: "\(context.operation) failed: the server does not allow this user to publish to \(subject)",
            subject: context.subject,
            stream: context.stream,
            consumer: context.consumer
        )
        let outcome = await withCheckedContinuation {
            (continuation: CheckedContinuation<Result<[UInt8], MessageStoreError>, Never>) in
            let once = ResumeOnce(continuation)
            let watch = events.watchDenial(of: subject) { once.resume(.failure(denied)) }
            pool.submit {
                var reply: OpaquePointer?
                let status = body.withUnsafeBufferPointer { buffer in
                    natsConnection_Request(
                        &reply,
                        self.connection,
                        subject,
                        buffer.baseAddress,
                        Int32(buffer.count),
                        timeoutMilliseconds
                    )
                }
                defer { natsMsg_Destroy(reply) }
                self.events.stopWatching(watch)
                // After a denial the caller has its answer already; this one is ignored.
                if status == NATS_OK, let reply {
                    once.resume(.success(CMessage.data(of: reply)))
                } else {
                    once.resume(.failure(ClientErrors.make(status, context)))
                }
            }
        }
        return try outcome.get()
    }
}

/// Resumes a continuation with the first result given, ignoring later ones.
private final class ResumeOnce<Value: Sendable>: Sendable {
    private let continuation: Mutex<CheckedContinuation<Value, Never>?>

    init(_ continuation: CheckedContinuation<Value, Never>) {
        self.continuation = Mutex(continuation)
    }

    func resume(_ value: Value) {
        continuation.withLock { $0.take() }?.resume(returning: value)
    }
}

/// A request waiting to hear whether the server refused its publish.
final class DenialWatch: Sendable {
    let subject: String
    private let onDenied: @Sendable () -> Void

    init(subject: String, onDenied: @escaping @Sendable () -> Void) {
        self.subject = subject
        self.onDenied = onDenied
    }

    func deny() {
        onDenied()
    }
}

/// Receives a connection's callbacks on cnats threads: logs its comings and goings, and fails
/// the publishes the server refused for want of permission.
final class ConnectionEvents: Sendable {
    let logger: Logger
    /// The servers, URL user info redacted.
    let servers: String
    /// What the connection may still call back into (an NKey signer), kept until it closes.
    private let keepAlive: (any AnyObject & Sendable)?
    /// Whether this connection reports disconnects and closes (the main one does).
    private let reportsLifecycle: Bool
    /// The acknowledgement inbox on this connection, told of refused publishes.
    private let inbox = Mutex<LazyAckInbox?>(nil)
    /// Requests waiting on their replies, told when the server refuses their subject.
    private let watches = Mutex<[ObjectIdentifier: DenialWatch]>([:])

    /// The connection's state as metrics, on the main connection only.
    let metrics: ConnectionMetrics?

    init(
        logger: Logger,
        servers: String,
        keepAlive: (any AnyObject & Sendable)?,
        reportsLifecycle: Bool,
        metrics: ConnectionMetrics? = nil
    ) {
        self.logger = logger
        self.servers = servers
        self.keepAlive = keepAlive
        self.reportsLifecycle = reportsLifecycle
        self.metrics = metrics
    }

    /// Tells `inbox` of the permission violations the server reports from now on.
    func watch(_ inbox: LazyAckInbox) {
        self.inbox.withLock { $0 = inbox }
    }

    static func from(_ closure: UnsafeMutableRawPointer?) -> ConnectionEvents? {
        guard let closure else { return nil }
        return Unmanaged<ConnectionEvents>.fromOpaque(closure).takeUnretainedValue()
    }

    func disconnected() {
        metrics?.up.record(0)
        metrics?.disconnects.increment()
        logger.warning("disconnected from NATS; reconnecting", metadata: [LogKey.servers: "\(servers)"])
    }

    func reconnected(_ connection: OpaquePointer?) {
        var buffer = [CChar](repeating: 0, count: 512)
        var url = servers
        if let connection, natsConnection_GetConnectedUrl(connection, &buffer, buffer.count) == NATS_OK {
            url = String(nulTerminated: buffer)
        }
        metrics?.up.record(1)
        metrics?.reconnects.increment()
        logger.notice("reconnected to NATS", metadata: [LogKey.servers: "\(Redaction.url(url))"])
    }

    func asyncError(_ connection: OpaquePointer?, _ status: natsStatus) {
        var text: UnsafePointer<CChar>?
        if let connection {
            _ = natsConnection_GetLastError(connection, &text)
        }
        let detail = text.map { String(cString: $0) } ?? ""
        if status == NATS_NOT_PERMITTED, let violation = PermissionViolation(detail) {
            logger.error(
                "the server denied this user \(violation.isPublish ? "publishing" : "subscribing") to \(violation.subject)",
                metadata: [LogKey.servers: "\(servers)", LogKey.status: "\(detail)"]
            )
            if violation.isPublish {
                let denied = watches.withLock { $0.values.filter { $0.subject == violation.subject } }
                for watch in denied { watch.deny() }
            }
            inbox.withLock { $0 }?.ifStarted?.refused(violation)
            return
        }
        logger.warning(
            "asynchronous NATS error",
            metadata: [
                LogKey.servers: "\(servers)",
                LogKey.status: "\(detail.isEmpty ? String(cString: natsStatus_GetText(status)) : detail)",
            ]
        )
    }

    /// Calls `onDenied` (on a cnats thread) if the server refuses a publish to `subject` before
    /// ``stopWatching(_:)``.
    func watchDenial(of subject: String, onDenied: @escaping @Sendable () -> Void) -> DenialWatch {
        let watch = DenialWatch(subject: subject, onDenied: onDenied)
        watches.withLock { $0[ObjectIdentifier(watch)] = watch }
        return watch
    }

    func stopWatching(_ watch: DenialWatch) {
        _ = watches.withLock { $0.removeValue(forKey: ObjectIdentifier(watch)) }
    }

    func closed() {
        metrics?.up.record(0)
        if reportsLifecycle {
            logger.debug("NATS connection closed", metadata: [LogKey.servers: "\(servers)"])
        }
    }
}

/// A connection's swift-metrics instruments, labelled by its name (`default` without one).
struct ConnectionMetrics: Sendable {
    /// 1 while connected, 0 while disconnected or closed.
    let up: Gauge
    let disconnects: Counter
    let reconnects: Counter

    init(connection: String) {
        let dimensions = [("connection", connection)]
        up = Gauge(label: "message_store_connection_up", dimensions: dimensions)
        disconnects = Counter(label: "message_store_disconnects_total", dimensions: dimensions)
        reconnects = Counter(label: "message_store_reconnects_total", dimensions: dimensions)
    }
}

/// Connects with `options`; when the server refused a signature cnats failed to send (see
/// ``ConnectionSigner``), connects again, a few times: each connection signs a new nonce.
func connectAgainOnDroppedSignature(
    _ connection: inout OpaquePointer?,
    _ options: OpaquePointer,
    signer: ConnectionSigner?
) -> natsStatus {
    var attempts = 0
    while true {
        let status = natsConnection_Connect(&connection, options)
        attempts += 1
        guard status == NATS_CONNECTION_AUTH_FAILED, let signer, signer.takeDroppedSignature(), attempts < 4 else {
            return status
        }
        natsConnection_Destroy(connection)
        connection = nil
    }
}

extension NATSClient {
    static func releaseLibrary(timeout: Duration) {
        _ = nats_CloseAndWait(timeout.milliseconds)
    }
}

extension String {
    /// Decodes a C string held in a buffer, up to its first NUL.
    init(nulTerminated buffer: [CChar]) {
        let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        self.init(decoding: bytes, as: UTF8.self)
    }
}

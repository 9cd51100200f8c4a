import CNATS
import Logging

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

    private init(
        connection: OpaquePointer,
        jetStream: OpaquePointer,
        prompt: PromptConnection?,
        logger: Logger,
        requestTimeout: Duration,
        pool: BlockingThreadPool
    ) {
        self.connection = connection
        self.jetStream = jetStream
        self.prompt = prompt
        pipelineInbox = LazyAckInbox(connection: connection)
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
        let servers = configuration.servers.joined(separator: ",")
        let context = ClientErrors.Context(operation: "connecting to \(servers)")
        func check(_ status: natsStatus) throws(MessageStoreError) {
            if status != NATS_OK {
                var error = ClientErrors.make(status, context)
                if error.code == .clientError || error.code == .connectionFailed {
                    error.code = error.code == .clientError ? .invalidConfiguration : error.code
                }
                throw error
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
        if let name = configuration.name {
            try check(natsOptions_SetName(options, name))
        }
        try check(natsOptions_SetTimeout(options, configuration.connectTimeout.milliseconds))
        try check(natsOptions_SetMaxReconnect(options, Int32(clamping: configuration.reconnect.maxAttempts ?? -1)))
        try check(natsOptions_SetReconnectWait(options, configuration.reconnect.wait.milliseconds))
        try check(natsOptions_SetReconnectBufSize(options, Int32(clamping: configuration.reconnect.bufferSize)))
        switch configuration.authentication.method {
        case .none:
            break
        case .userPassword(let user, let password):
            try check(natsOptions_SetUserInfo(options, user, password))
        case .token(let token):
            try check(natsOptions_SetToken(options, token))
        }

        // Released exactly once: by the closed callback, or below when connecting fails (cnats
        // does not call the closed callback for a connection that never opened).
        let events = Unmanaged.passRetained(ConnectionEvents(logger: logger, servers: servers)).toOpaque()
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
                { _, _, status, closure in
                    ConnectionEvents.from(closure)?.asyncError(status)
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
        let status = natsConnection_Connect(&connection, options)
        guard status == NATS_OK, let connection else {
            let error = ClientErrors.make(status, context)
            natsConnection_Destroy(connection)
            Unmanaged<ConnectionEvents>.fromOpaque(events).release()
            throw error
        }

        var jsOptions = jsOptions()
        jsOptions_Init(&jsOptions)
        jsOptions.Wait = configuration.requestTimeout.milliseconds
        var jetStream: OpaquePointer?
        let jsStatus = natsConnection_JetStream(&jetStream, connection, &jsOptions)
        guard jsStatus == NATS_OK, let jetStream else {
            let error = ClientErrors.make(jsStatus, ClientErrors.Context(operation: "creating a JetStream context"))
            natsConnection_Close(connection)
            natsConnection_Destroy(connection)
            throw error
        }
        // The connection for awaited publishes and fetch requests: the same servers and
        // settings, without the callbacks (the main connection reports the server's comings
        // and goings).
        _ = natsOptions_SetDisconnectedCB(options, nil, nil)
        _ = natsOptions_SetReconnectedCB(options, nil, nil)
        _ = natsOptions_SetErrorHandler(options, nil, nil)
        _ = natsOptions_SetClosedCB(options, nil, nil)
        let prompt = PromptConnection.connect(options: options, requestTimeout: configuration.requestTimeout)
        if prompt == nil {
            logger.debug(
                "could not open the second connection; awaited publishes and fetches share the main one",
                metadata: [LogKey.servers: "\(servers)"]
            )
        }
        logger.debug("connected to NATS", metadata: [LogKey.servers: "\(servers)"])
        return NATSClient(
            connection: connection,
            jetStream: jetStream,
            prompt: prompt,
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

    /// The URL of the server currently connected to, if any.
    var connectedURL: String? {
        var buffer = [CChar](repeating: 0, count: 512)
        guard natsConnection_GetConnectedUrl(connection, &buffer, buffer.count) == NATS_OK else { return nil }
        let url = String(nulTerminated: buffer)
        return url.isEmpty ? nil : url
    }

    /// The largest message body the server accepts.
    var maxPayload: Int {
        Int(natsConnection_GetMaxPayload(connection))
    }

    // MARK: Requests

    /// Sends a core NATS request and returns the reply body.
    func request(
        subject: String,
        body: [UInt8],
        timeout: Duration? = nil,
        context: ClientErrors.Context
    ) async throws(MessageStoreError) -> [UInt8] {
        let timeoutMilliseconds = (timeout ?? requestTimeout).milliseconds
        return try await pool.run { () throws(MessageStoreError) -> [UInt8] in
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
            guard status == NATS_OK, let reply else {
                throw ClientErrors.make(status, context)
            }
            return CMessage.data(of: reply)
        }
    }
}

/// Receives the connection's lifecycle callbacks on cnats threads and logs them.
final class ConnectionEvents: Sendable {
    let logger: Logger
    let servers: String

    init(logger: Logger, servers: String) {
        self.logger = logger
        self.servers = servers
    }

    static func from(_ closure: UnsafeMutableRawPointer?) -> ConnectionEvents? {
        guard let closure else { return nil }
        return Unmanaged<ConnectionEvents>.fromOpaque(closure).takeUnretainedValue()
    }

    func disconnected() {
        logger.warning("disconnected from NATS; reconnecting", metadata: [LogKey.servers: "\(servers)"])
    }

    func reconnected(_ connection: OpaquePointer?) {
        var buffer = [CChar](repeating: 0, count: 512)
        var url = servers
        if let connection, natsConnection_GetConnectedUrl(connection, &buffer, buffer.count) == NATS_OK {
            url = String(nulTerminated: buffer)
        }
        logger.notice("reconnected to NATS", metadata: [LogKey.servers: "\(url)"])
    }

    func asyncError(_ status: natsStatus) {
        logger.warning(
            "asynchronous NATS error",
            metadata: [LogKey.servers: "\(servers)", LogKey.status: "\(String(cString: natsStatus_GetText(status)))"]
        )
    }

    func closed() {
        logger.debug("NATS connection closed", metadata: [LogKey.servers: "\(servers)"])
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

extension NATSClient {
    /// Waits until the server has received everything sent so far (acks are buffered briefly by
    /// cnats to coalesce writes).
    func flush(timeout: Duration) async throws(MessageStoreError) {
        let milliseconds = timeout.milliseconds
        try await pool.run { () throws(MessageStoreError) in
            let status = self.withConnection { natsConnection_FlushTimeout($0, milliseconds) }
            if status != NATS_OK {
                throw ClientErrors.make(status, .init(operation: "flushing acknowledgements"))
            }
        }
    }
}

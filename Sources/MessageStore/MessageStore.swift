public import Logging

/// A message store on NATS JetStream: environment-prefixed streams, typed publishing and reads.
///
/// Every subject you pass is an *application subject* such as `orders.command.42`; the store adds
/// the environment prefix on the way out and removes it on the way in. The first token of a
/// subject is its *category*, and each category lives in one stream (`<prefix>-<category>`).
///
/// ```swift
/// let connection = try await NATSConnection.connect()
/// let store = try MessageStore(connection: connection, prefix: "dev", createMissingStreams: true)
/// try await store.ensureStream("orders")
/// let ack = try await store.publish(OrderPlaced(orderId: "42"), to: "orders.event.42", id: "order-42")
/// ```
///
/// The store is a small value: copy it freely and share it between tasks.
public struct MessageStore: Sendable {
    /// How the store names things and behaves.
    public struct Configuration: Sendable {
        /// The environment prefix (`dev`, `staging`, …); a trailing "." is dropped; may be empty.
        public var prefix: String
        /// Whether ``MessageStore/ensureStream(_:options:)`` may create a missing stream.
        /// Defaults to false.
        public var createMissingStreams = false
        /// How long to wait for a publish acknowledgement. Defaults to 5 seconds.
        public var publishTimeout: Duration = .seconds(5)
        /// How publishes ride out a stream that cannot answer for a while, such as a leader
        /// election after a server died. Defaults to retrying for up to 15 seconds, 250 ms apart
        /// at first, doubling up to 1 second; a subject no stream covers fails after 3 attempts.
        public var publishRetry = PublishRetryPolicy()
        /// The most pipelined publishes waiting for their acknowledgement at once.
        /// Defaults to 4,000.
        public var maxPublishesInFlight = 4_000
        /// How message bodies are encoded and decoded. Defaults to ``BodyCoding/fast``.
        public var bodyCoding = BodyCoding.fast

        /// Creates a configuration.
        /// - Parameters:
        ///   - prefix: The environment prefix.
        ///   - createMissingStreams: Whether missing streams may be created. Defaults to false.
        public init(prefix: String, createMissingStreams: Bool = false) {
            self.prefix = prefix
            self.createMissingStreams = createMissingStreams
        }
    }

    /// The connection the store uses.
    public let connection: NATSConnection
    /// The store's configuration.
    public let configuration: Configuration
    /// Where the store logs.
    public let logger: Logger
    let naming: Naming
    /// The store's one way into JetStream.
    let jetStream: JetStream
    /// What every publish of the store goes through.
    let publisher: Publisher

    /// Creates a store.
    /// - Parameters:
    ///   - connection: An open connection.
    ///   - prefix: The environment prefix; a trailing "." is dropped; may be empty.
    ///   - createMissingStreams: Whether ``ensureStream(_:options:)`` may create streams.
    ///     Defaults to false.
    ///   - logger: Defaults to a logger labelled `message-store`.
    /// - Throws: ``MessageStoreError/Code/invalidConfiguration`` when the prefix is not subject-safe.
    public init(
        connection: NATSConnection,
        prefix: String,
        createMissingStreams: Bool = false,
        logger: Logger = Logger(label: "message-store")
    ) throws(MessageStoreError) {
        try self.init(
            connection: connection,
            configuration: Configuration(prefix: prefix, createMissingStreams: createMissingStreams),
            logger: logger
        )
    }

    /// Creates a store from a configuration.
    /// - Throws: ``MessageStoreError/Code/invalidConfiguration`` when the prefix is not subject-safe.
    public init(
        connection: NATSConnection,
        configuration: Configuration,
        logger: Logger = Logger(label: "message-store")
    ) throws(MessageStoreError) {
        naming = try Naming(prefix: configuration.prefix)
        if let problem = configuration.publishRetry.problem {
            throw MessageStoreError(code: .invalidConfiguration, message: problem)
        }
        guard configuration.publishTimeout > .zero, configuration.publishTimeout <= ExponentialDelay.longestNanoseconds
        else {
            throw MessageStoreError(
                code: .invalidConfiguration,
                message:
                    "publishTimeout must be positive and fit Int64 nanoseconds, not \(configuration.publishTimeout)"
            )
        }
        self.connection = connection
        self.configuration = configuration
        self.logger = logger
        jetStream = JetStream(client: connection.client)
        publisher = Publisher(jetStream: jetStream, naming: naming, configuration: configuration, logger: logger)
    }

    /// The environment prefix, without a trailing ".".
    public var prefix: String { naming.prefix }
}

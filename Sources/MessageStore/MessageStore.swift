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
        public var publishRetry = Backoff()
        /// The most pipelined publishes waiting for their acknowledgement at once.
        /// Defaults to 4,000.
        public var maxPublishesInFlight = 4_000

        /// When a publish is sent again, and for how long.
        ///
        /// A publish is retried when nothing stored it (no responders; JetStream temporarily
        /// unavailable, as during a leader election), and, when it has an id (`Nats-Msg-Id`,
        /// de-duplicated by the stream), also when its acknowledgement did not come in time or
        /// its connection failed. Other failures are thrown at once. Retrying ends at
        /// ``deadline``; each attempt waits for its acknowledgement up to the publish timeout.
        public struct Backoff: Sendable, Hashable {
            /// How many attempts that found no responders before the store looks for a stream
            /// covering the subject: when there is none, the publish fails then; when there is
            /// one, it keeps trying until ``deadline``. Defaults to 3.
            public var maxAttempts: Int = 3
            /// The pause after the first failed attempt. Defaults to 250 ms.
            public var initialDelay: Duration = .milliseconds(250)
            /// How much each pause grows. Defaults to 2.
            public var multiplier: Double = 2
            /// The longest pause between attempts. Defaults to 1 second.
            public var maxDelay: Duration = .seconds(1)
            /// How long after the first attempt the store may still send a retry. Zero means no
            /// retries. Defaults to 15 seconds: a replicated stream's followers wait a random 4 to
            /// 9 seconds without their leader before they elect a new one (nats-server's Raft
            /// election timeout), and elections of a three-replica stream measured 6–9.5 s here.
            public var deadline: Duration = .seconds(15)

            /// Creates the default backoff.
            public init() {}

            /// Creates a backoff.
            /// - Parameters:
            ///   - maxAttempts: Attempts before looking for a stream that covers the subject.
            ///   - initialDelay: The first pause.
            ///   - multiplier: How much each pause grows. Defaults to 2.
            ///   - maxDelay: The longest pause. Defaults to 1 second.
            ///   - deadline: How long retries may go on. Defaults to 15 seconds.
            public init(
                maxAttempts: Int,
                initialDelay: Duration,
                multiplier: Double = 2,
                maxDelay: Duration = .seconds(1),
                deadline: Duration = .seconds(15)
            ) {
                self.maxAttempts = maxAttempts
                self.initialDelay = initialDelay
                self.multiplier = multiplier
                self.maxDelay = maxDelay
                self.deadline = deadline
            }

            /// The longest pause or deadline a store accepts: a day.
            public static let longestDelay = Duration.seconds(86_400)

            /// The pause after failed attempt number `attempt` (1-based), at most ``maxDelay``;
            /// it saturates whatever the numbers, and is never negative.
            public func delay(afterAttempt attempt: Int) -> Duration {
                ExponentialDelay.delay(
                    initial: initialDelay,
                    multiplier: multiplier,
                    maximum: min(maxDelay, Self.longestDelay),
                    afterAttempt: attempt
                )
            }

            /// Why this backoff cannot be used, or nil.
            var problem: String? {
                if maxAttempts < 1 { return "publishRetry.maxAttempts must be at least 1" }
                if !multiplier.isFinite || multiplier < 1 {
                    return "publishRetry.multiplier must be a finite number of at least 1, not \(multiplier)"
                }
                for (name, value) in [("initialDelay", initialDelay), ("maxDelay", maxDelay), ("deadline", deadline)]
                where value < .zero || value > Self.longestDelay {
                    return "publishRetry.\(name) must be between zero and \(Self.longestDelay), not \(value)"
                }
                return nil
            }
        }

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

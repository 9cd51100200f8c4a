public import Logging

/// A connection to a NATS server (or cluster) with JetStream.
///
/// Create one per process and share it: it is safe to use from any task. The connection
/// reconnects by itself when the server goes away; close it when the process is done with it.
///
/// It opens two client connections to the server, with the same name and credentials: one
/// for acknowledgements, pipelined publishing and JetStream API requests, whose writes the C
/// client coalesces for up to a millisecond; and one for awaited publishes and pull requests,
/// written at once, since a caller waits on each of them. If the server refuses the second
/// (say, a connection limit), everything goes over the first.
///
/// ```swift
/// let connection = try await NATSConnection.connect()          // NATS_URL or nats://127.0.0.1:4222
/// defer { Task { await connection.close() } }
/// ```
public final class NATSConnection: Sendable {
    /// How to reach and authenticate with the server.
    public struct Configuration: Sendable {
        /// Server URLs. The client tries them in a random order (cnats shuffles the list, so that
        /// clients spread over a cluster), and learns the cluster's other servers from them.
        /// Defaults to ``defaultServers``.
        public var servers: [String]
        /// A name the server shows for this connection. Defaults to none.
        public var name: String?
        /// How long to wait for each server when connecting. Defaults to 2 seconds.
        public var connectTimeout: Duration = .seconds(2)
        /// How long to wait for a JetStream API reply (stream lookups and creation).
        /// Defaults to 5 seconds.
        public var requestTimeout: Duration = .seconds(5)
        /// What to do when the connection drops. Defaults to retrying forever every 2 seconds.
        public var reconnect = Reconnect()
        /// Credentials. Defaults to those the environment names (see
        /// ``Authentication/fromEnvironment``), or none (or those in the URL).
        public var authentication: Authentication
        /// TLS settings. Defaults to those the environment names (see ``TLS/fromEnvironment``):
        /// TLS when a URL says `tls://` or the server requires it, verified against the system's
        /// certificate authorities.
        public var tls: TLS
        /// Where the JetStream API is: a domain or an API prefix. Defaults to the local account's
        /// `$JS.API`.
        public var jetStream = JetStream()
        /// The prefix of every inbox the library makes (request replies, pull subscriptions,
        /// publish acknowledgements), for servers whose permissions allow only a given one.
        /// Defaults to nil, NATS's `_INBOX`.
        public var inboxPrefix: String?

        /// How the connection tries to come back after losing the server.
        public struct Reconnect: Sendable {
            /// How many attempts before giving up, or nil to retry forever. Defaults to nil.
            public var maxAttempts: Int?
            /// The pause between attempts to the same server. Defaults to 2 seconds.
            public var wait: Duration = .seconds(2)
            /// How many bytes of publishes to buffer while reconnecting. Defaults to 8 MiB.
            public var bufferSize: Int = 8 * 1024 * 1024

            /// Creates the default reconnect policy.
            public init() {}
        }

        /// The servers in the `NATS_URL` environment variable (comma-separated), or
        /// `nats://127.0.0.1:4222`.
        public static var defaultServers: [String] {
            if let value = Environment.process["NATS_URL"] {
                let urls = value.split(separator: ",").map { $0.trimmingWhitespace() }.filter { !$0.isEmpty }
                if !urls.isEmpty { return urls }
            }
            return ["nats://127.0.0.1:4222"]
        }

        /// Creates a configuration.
        /// - Parameter servers: Server URLs. Defaults to ``defaultServers``.
        public init(servers: [String] = Configuration.defaultServers) {
            self.init(servers: servers, environment: Environment.process)
        }

        /// Creates a configuration for one server URL, with credentials and TLS settings from the
        /// environment as ``init(servers:)`` takes them.
        public init(url: String) {
            self.init(servers: [url], environment: Environment.process)
        }

        init(servers: [String], environment: Environment) {
            self.servers = servers
            authentication = Authentication.from(environment)
            tls = TLS.from(environment)
        }
    }

    let client: NATSClient

    private init(client: NATSClient) {
        self.client = client
    }

    /// Connects to a NATS server.
    /// - Parameters:
    ///   - configuration: Where and how to connect. Defaults to `NATS_URL` or the local default.
    ///   - logger: Receives connection events (disconnects, reconnects). Defaults to a logger
    ///     labelled `message-store`.
    /// - Throws: ``MessageStoreError`` with code ``MessageStoreError/Code/connectionFailed`` when
    ///   no server could be reached or credentials were refused;
    ///   ``MessageStoreError/Code/invalidConfiguration`` for a timeout or pause that is not
    ///   positive or longer than a day.
    public static func connect(
        _ configuration: Configuration = Configuration(),
        logger: Logger = Logger(label: "message-store")
    ) async throws(MessageStoreError) -> NATSConnection {
        try configuration.validate()
        return NATSConnection(client: try await NATSClient.connect(configuration, logger: logger))
    }

    /// Closes the connection. In-flight requests fail with
    /// ``MessageStoreError/Code/connectionClosed``. Harmless to repeat.
    public func close() async {
        await client.close()
    }

    /// Whether ``close()`` was called (or the connection gave up reconnecting).
    public var isClosed: Bool {
        client.isClosed
    }

    /// The URL of the server currently connected to, or nil while disconnected.
    public var connectedURL: String? {
        client.connectedURL
    }

    /// Releases the NATS C client's global threads and memory, waiting up to `timeout`.
    ///
    /// Call it at most once, at the very end of a process, after every connection is closed and
    /// released, when a leak checker such as valgrind should see a clean exit. Not needed otherwise.
    public static func releaseClientLibrary(timeout: Duration = .seconds(5)) {
        NATSClient.releaseLibrary(timeout: timeout)
    }
}

extension Substring {
    func trimmingWhitespace() -> String {
        String(drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed())
    }
}

public import Logging
public import MessageStore
public import PostgresNIO
public import ServiceLifecycle

/// An inbox in PostgreSQL: a handler's effects and the record that it handled the message commit
/// in one transaction, so a message delivered again (a worker that died before its
/// acknowledgement, a message published twice) is acknowledged without running the handler.
///
/// ```swift
/// let inbox = Inbox(name: "billing")
/// try await inbox.migrate(on: connection, logger: logger)        // once, at deployment
/// let handlers = MessageHandlers().handling(OrderPlaced.self, inbox.once(in: client, logger: logger) { message, transaction in
///     try await transaction.query("INSERT INTO charges (order_id) VALUES (\(message.data.orderId))", logger: logger)
/// })
/// ```
///
/// The handler gets the transaction's connection and must write through it; if it throws, the
/// transaction (the inbox row with it) rolls back and the message is retried as usual. A message
/// is known by its `Nats-Msg-Id`, else by stream and sequence; `name` scopes the record (one per
/// service or per handler), so two services handling the same message each handle it once.
/// Concurrent deliveries of one message (two workers) wait on each other's row: the second finds
/// it recorded once the first commits. Entries stay until ``expire(olderThan:on:logger:)``
/// removes them (or an ``Inbox/Expiry`` service does, now and then).
public struct Inbox: Sendable {
    /// The table's name. Defaults to `message_store_inbox`.
    public let table: String
    /// The scope of the record (a service or handler name).
    public let name: String

    /// An inbox named `name` in `table`.
    ///
    /// - Precondition: `table` is an SQL name; it is written into statements as it is.
    public init(name: String, table: String = "message_store_inbox") {
        precondition(Outbox.isValidTable(table), "the inbox table must be an SQL name, not \(table)")
        self.name = name
        self.table = table
    }

    /// The statements that create the table and its index (idempotent).
    public var schema: [String] {
        [
            """
            CREATE TABLE IF NOT EXISTS \(table) (
                name text NOT NULL,
                message_key text NOT NULL,
                handled_at timestamptz NOT NULL DEFAULT clock_timestamp(),
                PRIMARY KEY (name, message_key)
            )
            """,
            "CREATE INDEX IF NOT EXISTS \(Outbox.identifier(table))_handled_at ON \(table) (handled_at)",
        ]
    }

    /// Creates the table and its index where they do not exist.
    public func migrate(on connection: PostgresConnection, logger: Logger) async throws {
        try await Outbox.run(schema, on: connection, logger: logger)
    }

    /// Wraps `handler` so that it runs in a transaction of `client` that also records the message,
    /// and not at all for a message already recorded.
    public func once<Payload: MessagePayload>(
        in client: PostgresClient,
        logger: Logger,
        _ handler: @escaping @Sendable (ReceivedMessage<Payload>, PostgresConnection) async throws -> Void
    ) -> @Sendable (ReceivedMessage<Payload>) async throws -> Void {
        { [self] message in
            try await client.withTransaction(logger: logger) { transaction in
                guard try await record(message, on: transaction, logger: logger) else {
                    logger.debug(
                        "message already handled: not handled again",
                        metadata: [
                            "message_store.subject": "\(message.subject)",
                            "message_store.sequence": "\(message.sequence)",
                            "message_store.inbox": "\(name)",
                        ]
                    )
                    return
                }
                try await handler(message, transaction)
            }
        }
    }

    /// Records `message` on `connection` (in the caller's transaction); false when it was recorded
    /// already (by a transaction that committed), so its effects are there.
    public func record<Payload: MessagePayload>(
        _ message: ReceivedMessage<Payload>,
        on connection: PostgresConnection,
        logger: Logger
    ) async throws -> Bool {
        let rows = try await connection.query(
            PostgresQuery(
                unsafeSQL: """
                    INSERT INTO \(table) (name, message_key) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING 1
                    """,
                binds: try Outbox.binds(name, Self.key(of: message))
            ),
            logger: logger
        )
        for try await _ in rows.decode(Int32.self) { return true }
        return false
    }

    /// Removes the entries recorded more than `age` ago (of every name); returns how many. Run it
    /// now and then: a message delivered again after that runs again.
    @discardableResult
    public func expire(olderThan age: Duration, on connection: PostgresConnection, logger: Logger) async throws -> Int {
        let rows = try await connection.query(
            PostgresQuery(
                unsafeSQL: """
                    WITH expired AS (
                        DELETE FROM \(table) WHERE handled_at < clock_timestamp() - make_interval(secs => $1) RETURNING 1
                    ) SELECT count(*) FROM expired
                    """,
                binds: try Outbox.binds(age.seconds)
            ),
            logger: logger
        )
        for try await count in rows.decode(Int64.self) { return Int(count) }
        return 0
    }

    /// `id:<Nats-Msg-Id>`, or `seq:<stream>:<sequence>` (also for an id PostgreSQL text cannot hold).
    static func key<Payload: MessagePayload>(of message: ReceivedMessage<Payload>) -> String {
        if let id = message.headers[MessageHeaderName.messageID], !id.isEmpty, !id.utf8.contains(0) {
            return "id:" + id
        }
        return "seq:\(message.stream):\(message.sequence)"
    }
}

extension Inbox {
    /// Removes an inbox table's old entries now and then: a ServiceLifecycle `Service` to run
    /// beside the workers (one is enough for a table; more do no harm).
    public struct Expiry: Service {
        let inbox: Inbox
        let retention: Duration
        let interval: Duration
        let client: PostgresClient
        let logger: Logger

        /// Every `interval` (default an hour), removes the entries of `inbox`'s table recorded
        /// more than `retention` ago (default a week).
        public init(
            _ inbox: Inbox,
            client: PostgresClient,
            retention: Duration = .seconds(7 * 24 * 3_600),
            interval: Duration = .seconds(3_600),
            logger: Logger
        ) {
            self.inbox = inbox
            self.client = client
            self.retention = retention
            self.interval = interval
            self.logger = logger
        }

        public func run() async throws {
            await cancelWhenGracefulShutdown {
                while !Task.isCancelled {
                    do {
                        let removed = try await client.withConnection { connection in
                            try await inbox.expire(olderThan: retention, on: connection, logger: logger)
                        }
                        logger.debug("inbox entries expired", metadata: ["message_store.count": "\(removed)"])
                    } catch {
                        if Task.isCancelled { return }
                        logger.warning(
                            "could not remove expired inbox entries",
                            metadata: ["message_store.inbox": "\(inbox.table)", "message_store.error": "\(error)"]
                        )
                    }
                    try? await Task.sleep(for: interval)
                }
            }
        }
    }
}

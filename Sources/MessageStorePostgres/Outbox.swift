public import Logging
public import MessageStore
public import PostgresNIO

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// A transactional outbox in PostgreSQL: messages staged in the caller's own transaction, beside
/// its business rows, and published by an ``OutboxRelay`` once that transaction has committed.
///
/// Nothing is published unless the transaction commits, and every committed message is published
/// (at least once to the server, exactly once in the stream: its staged id is the `Nats-Msg-Id`,
/// which the stream de-duplicates within its duplicate window).
///
/// ```swift
/// let outbox = Outbox()
/// try await outbox.migrate(on: connection, logger: logger)      // once, at deployment
/// try await connection.withTransaction(logger: logger) { transaction in
///     try await transaction.query("INSERT INTO orders (id, total) VALUES (\(id), \(total))", logger: logger)
///     try await outbox.stage(OrderPlaced(orderId: id), to: "orders.event.\(id)", on: transaction, logger: logger)
/// }
/// ```
///
/// Order: messages to one subject are published in the order their transactions committed.
/// Staging takes a transaction-scoped advisory lock on the subject, so that transactions staging
/// to the same subject commit one after the other, in the order of their rows.
public struct Outbox: Sendable {
    /// The table's name (schema-qualified if wanted). Defaults to `message_store_outbox`.
    public let table: String
    /// The `LISTEN/NOTIFY` channel a commit wakes relays on: the table's name with `_` for every
    /// character that is not a letter, a digit or `_`.
    public let channel: String
    /// How staged messages are encoded (as publishing would encode them).
    public let bodyCoding: BodyCoding

    /// The first key of the advisory locks on subjects (the second is the subject's hash).
    static let subjectLockSpace: Int32 = 0x4D53_4F53
    /// The first key of the relays' advisory locks (the second is the partition).
    static let relayLockSpace: Int32 = 0x4D53_5252

    /// An outbox in `table`.
    ///
    /// - Precondition: `table` is an SQL name (letters, digits, `_`, `.`, `"` for quoting); it is
    ///   written into statements as it is.
    public init(table: String = "message_store_outbox", bodyCoding: BodyCoding = .fast) {
        precondition(Self.isValidTable(table), "the outbox table must be an SQL name, not \(table)")
        self.table = table
        self.bodyCoding = bodyCoding
        channel = Self.identifier(table)
    }

    /// Whether `name` can be the outbox's (or an inbox's) table: ASCII letters, digits, `_`, `.`
    /// and `"`, so that it can be written into a statement as it is.
    public static func isValidTable(_ name: String) -> Bool {
        !name.isEmpty
            && name.unicodeScalars.allSatisfy {
                $0.isASCII && ($0.properties.isAlphabetic || "0123456789_.\"".unicodeScalars.contains($0))
            }
    }

    /// `name` with `_` for every character other than a letter, a digit or `_`: a name for the
    /// objects that belong to a table.
    static func identifier(_ name: String) -> String {
        String(
            name.unicodeScalars.map {
                ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) ? Character($0) : "_"
            }
        )
    }

    /// Runs `statements` in one transaction, under an advisory lock so that two services
    /// migrating at once do not race on `CREATE ... IF NOT EXISTS`.
    static func run(_ statements: [String], on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.withTransaction(logger: logger) { transaction in
            try await transaction.query("SELECT pg_advisory_xact_lock(\(relayLockSpace), -1)", logger: logger)
            for statement in statements {
                try await transaction.query(PostgresQuery(unsafeSQL: statement), logger: logger)
            }
        }
    }

    /// The statements that create the table, its index and the trigger that notifies relays
    /// (idempotent: `IF NOT EXISTS`, `OR REPLACE`).
    ///
    /// | column | |
    /// | --- | --- |
    /// | `id bigserial` | order of staging; relays publish in it |
    /// | `message_id text` | the `Nats-Msg-Id` |
    /// | `subject text` | the application subject (no environment prefix) |
    /// | `type text` | the envelope type |
    /// | `body text` | the envelope, as publishing encodes it |
    /// | `headers text[]` | extra headers, name and value alternating |
    /// | `created_at timestamptz` | when it was staged |
    /// | `published_at timestamptz` | when the server acknowledged it (null: pending) |
    /// | `attempts int`, `last_error text`, `next_attempt_at timestamptz` | failed publishes so far |
    /// | `failed_at timestamptz` | set aside after a permanent failure (`last_error` says why) |
    public var schema: [String] {
        let index = indexName("pending")
        let function = indexName("notify")
        return [
            """
            CREATE TABLE IF NOT EXISTS \(table) (
                id bigserial PRIMARY KEY,
                message_id text NOT NULL,
                subject text NOT NULL,
                type text NOT NULL,
                body text NOT NULL,
                headers text[] NOT NULL DEFAULT '{}',
                created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
                published_at timestamptz,
                attempts integer NOT NULL DEFAULT 0,
                last_error text,
                next_attempt_at timestamptz,
                failed_at timestamptz
            )
            """,
            "CREATE INDEX IF NOT EXISTS \(index) ON \(table) (id) WHERE published_at IS NULL AND failed_at IS NULL",
            """
            CREATE OR REPLACE FUNCTION \(function)() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM pg_notify('\(channel)', '');
                RETURN NULL;
            END
            $$
            """,
            "DROP TRIGGER IF EXISTS \(function) ON \(table)",
            "CREATE TRIGGER \(function) AFTER INSERT OR UPDATE OF failed_at ON \(table) "
                + "FOR EACH STATEMENT EXECUTE FUNCTION \(function)()",
        ]
    }

    private func indexName(_ suffix: String) -> String {
        channel + "_" + suffix
    }

    /// Creates the table, its index and its trigger where they do not exist, in one transaction.
    public func migrate(on connection: PostgresConnection, logger: Logger) async throws {
        try await Self.run(schema, on: connection, logger: logger)
    }

    /// Stages a typed message on `connection`, which should be in the caller's transaction: it is
    /// published once that transaction commits, and never if it rolls back.
    ///
    /// - Parameters:
    ///   - id: The `Nats-Msg-Id`. Defaults to a new UUID.
    /// - Returns: The row's id.
    /// - Throws: ``MessageStoreError`` with ``MessageStoreError/Code/encodingFailed`` when the
    ///   payload does not encode, ``MessageStoreError/Code/invalidSubject`` for a subject that
    ///   cannot be published to, ``MessageStoreError/Code/invalidHeader`` or
    ///   ``MessageStoreError/Code/invalidMessageID`` for what publishing would refuse; PostgreSQL's
    ///   errors as they come.
    @discardableResult
    public func stage(
        _ payload: some MessagePayload,
        to subject: String,
        id: String? = nil,
        metadata: MessageMetadata? = nil,
        headers: MessageHeaders = [:],
        on connection: PostgresConnection,
        logger: Logger
    ) async throws -> Int64 {
        let messageID = id ?? UUID().uuidString
        let body = String(
            decoding: try bodyCoding.encodeEnvelope(payload, metadata: metadata, subject: subject),
            as: UTF8.self
        )
        let type = type(of: payload).messageType
        let flatHeaders = headers.flatMap { [$0.name, $0.value] }
        // One round trip: the subject's lock, then the row.
        let rows = try await connection.query(
            PostgresQuery(
                unsafeSQL: """
                    WITH locked AS (SELECT pg_advisory_xact_lock(\(Self.subjectLockSpace), hashtext($2)))
                    INSERT INTO \(table) (message_id, subject, type, body, headers)
                    SELECT $1, $2, $3, $4, $5 FROM locked RETURNING id
                    """,
                binds: try Self.binds(messageID, subject, type, body, flatHeaders)
            ),
            logger: logger
        )
        for try await rowID in rows.decode(Int64.self) { return rowID }
        throw MessageStoreError(code: .serverError, message: "the outbox insert returned no id", subject: subject)
    }

    static func binds(_ values: any PostgresEncodable...) throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: values.count)
        for value in values { try bindings.append(value, context: .default) }
        return bindings
    }

    /// How many messages wait to be published, and how old the oldest is.
    public func pending(on connection: PostgresConnection, logger: Logger) async throws -> (
        count: Int, oldest: Duration?
    ) {
        let rows = try await connection.query(
            PostgresQuery(
                unsafeSQL: """
                    SELECT count(*), extract(epoch FROM clock_timestamp() - min(created_at))::float8
                    FROM \(table) WHERE published_at IS NULL AND failed_at IS NULL
                    """
            ),
            logger: logger
        )
        for try await (count, age) in rows.decode((Int64, Double?).self) {
            return (Int(count), age.map { .milliseconds(Int64(($0 * 1_000).rounded())) })
        }
        return (0, nil)
    }

    /// A message set aside after a permanent failure.
    public struct FailedMessage: Sendable, Hashable {
        public var rowID: Int64
        public var messageID: String
        public var subject: String
        public var type: String
        public var reason: String
        public var attempts: Int
    }

    /// The messages set aside, oldest first.
    public func failed(on connection: PostgresConnection, logger: Logger, limit: Int = 1_000) async throws
        -> [FailedMessage]
    {
        let rows = try await connection.query(
            PostgresQuery(
                unsafeSQL: """
                    SELECT id, message_id, subject, type, coalesce(last_error, ''), attempts
                    FROM \(table) WHERE failed_at IS NOT NULL ORDER BY id LIMIT $1
                    """,
                binds: try Self.binds(Int64(limit))
            ),
            logger: logger
        )
        var failed: [FailedMessage] = []
        for try await (id, messageID, subject, type, reason, attempts) in rows.decode(
            (Int64, String, String, String, String, Int32).self
        ) {
            failed.append(
                FailedMessage(
                    rowID: id,
                    messageID: messageID,
                    subject: subject,
                    type: type,
                    reason: reason,
                    attempts: Int(attempts)
                )
            )
        }
        return failed
    }

    /// Puts messages set aside back in line (all of them, or those with the given row ids), with
    /// their attempts reset; returns how many.
    @discardableResult
    public func requeue(_ rowIDs: [Int64]? = nil, on connection: PostgresConnection, logger: Logger) async throws -> Int
    {
        let condition = rowIDs == nil ? "" : " AND id = ANY($1)"
        let rows = try await connection.query(
            PostgresQuery(
                unsafeSQL: """
                    WITH requeued AS (
                        UPDATE \(table) SET failed_at = NULL, attempts = 0, next_attempt_at = NULL
                        WHERE failed_at IS NOT NULL\(condition) RETURNING 1
                    ) SELECT count(*) FROM requeued
                    """,
                binds: try rowIDs.map { try Self.binds($0) } ?? PostgresBindings()
            ),
            logger: logger
        )
        for try await count in rows.decode(Int64.self) { return Int(count) }
        return 0
    }
}

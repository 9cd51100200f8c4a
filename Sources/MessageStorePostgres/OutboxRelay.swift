public import Logging
public import MessageStore
import Metrics
public import PostgresNIO
public import ServiceLifecycle
import Synchronization

/// Publishes an ``Outbox``'s committed messages to JetStream: a ServiceLifecycle `Service`.
///
/// It publishes pipelined batches in row order (so per subject in commit order) with each
/// message's staged id as `Nats-Msg-Id`, and marks rows published (or deletes them) once the
/// server acknowledged them. It wakes on the outbox's `LISTEN/NOTIFY` channel when a transaction
/// commits, and polls every ``Configuration/pollInterval`` as well, in case a notification was
/// missed (a reconnect).
///
/// Failures: a publish that may succeed later (the server away, a stream electing its leader)
/// leaves its rows in place and the relay backs off (``Configuration/backoff``), then tries again
/// from the oldest pending row, so nothing of a subject overtakes it; a permanent one (no stream
/// for the subject, a message too large, no permission, a subject or header publishing refuses)
/// sets the row aside with its reason (`failed_at`, `last_error`), to be requeued with
/// ``Outbox/requeue(_:on:logger:)`` or `message-store outbox requeue`.
///
/// High availability: any number of relays may run on one outbox. The rows are divided into
/// ``Configuration/partitions`` partitions by a hash of the subject; each is relayed by the one
/// relay that holds its session advisory lock. The others try to take the partitions they lack
/// every ``Configuration/standbyInterval``: when an active relay dies its connection closes, the
/// server drops its locks, and another relay takes over within about that interval. A row the
/// dead relay published but had not yet marked is published again, and the stream drops it as a
/// duplicate (within its duplicate window, two minutes by default).
public struct OutboxRelay: Service {
    /// What is done with a row once the server acknowledged its message.
    public enum Retention: Sendable, Hashable {
        /// Sets `published_at` (delete such rows yourself, for example daily).
        case markPublished
        /// Deletes the row.
        case delete
    }

    public struct Configuration: Sendable {
        /// The most rows published in one pipelined batch. Defaults to 500.
        public var batchSize = 500
        /// How often the outbox is read when no notification came. Defaults to a second.
        public var pollInterval: Duration = .seconds(1)
        /// How often a relay tries to take the partitions no relay holds. Defaults to a second.
        public var standbyInterval: Duration = .seconds(1)
        /// How many partitions the subjects are divided into (one active relay each). Every
        /// relay of an outbox must use the same number. Defaults to 1.
        public var partitions = 1
        /// Marked published (the default) or deleted.
        public var retention = Retention.markPublished
        /// The wait after a failure that may pass, growing with each one in a row.
        public var backoff = RetrySchedule.exponential(initial: .milliseconds(100), maximum: .seconds(5))
        public init() {}
    }

    let outbox: Outbox
    let store: MessageStore
    let database: PostgresConnection.Configuration
    let configuration: Configuration
    let logger: Logger

    /// A relay of `outbox` to `store`, connecting to PostgreSQL with `database`.
    public init(
        outbox: Outbox,
        store: MessageStore,
        database: PostgresConnection.Configuration,
        configuration: Configuration = Configuration(),
        logger: Logger
    ) {
        precondition(configuration.partitions >= 1, "an outbox relay needs at least one partition")
        precondition(configuration.batchSize >= 1, "an outbox relay's batches need at least one row")
        self.outbox = outbox
        self.store = store
        self.database = database
        self.configuration = configuration
        self.logger = logger
    }

    /// Relays until cancelled or, in a `ServiceGroup`, until graceful shutdown; losing the
    /// database connection is not an end: the relay connects again (its partitions may meanwhile
    /// have gone to another relay).
    public func run() async throws {
        let metrics = OutboxMetrics(table: outbox.table)
        await cancelWhenGracefulShutdown {
            var failures = 0
            while !Task.isCancelled {
                do {
                    let connection = try await PostgresConnection.connect(
                        configuration: database,
                        id: OutboxRelay.nextConnectionID(),
                        logger: logger
                    )
                    failures = 0
                    do {
                        try await Session(relay: self, connection: connection, metrics: metrics).run()
                    } catch {
                        try? await connection.close()
                        throw error
                    }
                    try? await connection.close()
                } catch {
                    if Task.isCancelled { return }
                    failures += 1
                    logger.warning(
                        "outbox relay lost its database connection; connecting again",
                        metadata: ["message_store.outbox": "\(outbox.table)", "message_store.error": "\(error)"]
                    )
                    try? await Task.sleep(for: configuration.backoff.delay(afterAttempt: failures))
                }
            }
        }
    }

    private static let connectionIDs = Atomic<Int>(0)
    static func nextConnectionID() -> Int {
        connectionIDs.wrappingAdd(1, ordering: .relaxed).newValue
    }
}

/// One database connection's time as a relay: the partitions it holds, its wake-ups, its loop.
private struct Session {
    let relay: OutboxRelay
    let connection: PostgresConnection
    let metrics: OutboxMetrics
    var outbox: Outbox { relay.outbox }
    var configuration: OutboxRelay.Configuration { relay.configuration }
    var logger: Logger { relay.logger }

    func run() async throws {
        let wake = WakeSignal()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await connection.listen(on: outbox.channel) { notifications in
                    for try await _ in notifications { wake.signal() }
                }
            }
            group.addTask { try await relay(wake: wake) }
            // Either ending (cancellation, or the connection failing) ends the session.
            defer { group.cancelAll() }
            try await group.next()
        }
    }

    private func relay(wake: WakeSignal) async throws {
        var held: [Int] = []
        var lastTry: ContinuousClock.Instant?
        var transientFailures = 0
        var lastGauges: ContinuousClock.Instant?
        let clock = ContinuousClock()
        while !Task.isCancelled {
            if held.count < configuration.partitions,
                lastTry.map({ clock.now - $0 >= configuration.standbyInterval }) ?? true
            {
                lastTry = clock.now
                held = try await takePartitions(held: held)
            }
            if lastGauges.map({ clock.now - $0 >= .seconds(1) }) ?? true {
                lastGauges = clock.now
                let pending = try await outbox.pending(on: connection, logger: logger)
                metrics.pending.record(pending.count)
                metrics.oldest.record(
                    pending.oldest?.seconds ?? 0
                )
            }
            guard !held.isEmpty else {
                await wake.wait(timeout: configuration.standbyInterval)
                continue
            }
            let outcome = try await relayBatch(partitions: held)
            switch outcome {
            case .full:
                transientFailures = 0
                continue
            case .drained:
                transientFailures = 0
                let wait =
                    held.count < configuration.partitions
                    ? min(configuration.pollInterval, configuration.standbyInterval) : configuration.pollInterval
                await wake.wait(timeout: wait)
            case .retryLater:
                transientFailures += 1
                try await Task.sleep(for: configuration.backoff.delay(afterAttempt: transientFailures))
            }
        }
    }

    /// Tries the advisory locks of the partitions not held; returns those held now.
    private func takePartitions(held: [Int]) async throws -> [Int] {
        var now = held
        for partition in 0..<configuration.partitions where !held.contains(partition) {
            let rows = try await connection.query(
                "SELECT pg_try_advisory_lock(\(Outbox.relayLockSpace), \(Int32(partition)))",
                logger: logger
            )
            for try await taken in rows.decode(Bool.self) where taken {
                now.append(partition)
                logger.info(
                    "outbox relay active",
                    metadata: ["message_store.outbox": "\(outbox.table)", "message_store.partition": "\(partition)"]
                )
            }
        }
        return now.sorted()
    }

    private enum BatchOutcome {
        /// A whole batch went: more may wait.
        case full
        /// Nothing more waits.
        case drained
        /// A publish failed for a reason that may pass: back off.
        case retryLater
    }

    private struct Row {
        var id: Int64
        var messageID: String
        var subject: String
        var type: String
        var body: String
        var headers: [String]
    }

    private func relayBatch(partitions: [Int]) async throws -> BatchOutcome {
        let filter =
            configuration.partitions == 1
            ? "" : " AND (hashtext(subject) & 2147483647) % \(configuration.partitions) = ANY($2)"
        var binds = try Outbox.binds(Int64(configuration.batchSize))
        if configuration.partitions > 1 { binds.append(partitions.map { Int32($0) }, context: .default) }
        let rows = try await connection.query(
            PostgresQuery(
                unsafeSQL: """
                    SELECT id, message_id, subject, type, body, headers FROM \(outbox.table)
                    WHERE published_at IS NULL AND failed_at IS NULL\(filter) ORDER BY id LIMIT $1
                    """,
                binds: binds
            ),
            logger: logger
        )
        var batch: [Row] = []
        for try await (id, messageID, subject, type, body, headers) in rows.decode(
            (Int64, String, String, String, String, [String]).self
        ) {
            batch.append(Row(id: id, messageID: messageID, subject: subject, type: type, body: body, headers: headers))
        }
        guard !batch.isEmpty else { return .drained }
        let messages = batch.map { row in
            var headers = MessageHeaders()
            var index = row.headers.startIndex
            while index + 1 < row.headers.endIndex {
                headers[row.headers[index]] = row.headers[index + 1]
                index += 2
            }
            return OutgoingMessage(
                encodedBody: Array(row.body.utf8),
                type: row.type,
                to: row.subject,
                id: row.messageID,
                headers: headers
            )
        }
        let results = await relay.store.publish(contentsOf: messages)
        var published: [Int64] = []
        var transient: [(Int64, String)] = []
        for (row, result) in zip(batch, results) {
            switch result {
            case .success:
                published.append(row.id)
            case .failure(let error) where Self.isPermanent(error):
                try await setAside(row, error: error)
            case .failure(let error):
                transient.append((row.id, "\(error)"))
            }
        }
        if !published.isEmpty {
            let statement =
                configuration.retention == .delete
                ? "DELETE FROM \(outbox.table) WHERE id = ANY($1)"
                : "UPDATE \(outbox.table) SET published_at = clock_timestamp() WHERE id = ANY($1)"
            try await connection.query(
                PostgresQuery(unsafeSQL: statement, binds: try Outbox.binds(published)),
                logger: logger
            )
            metrics.published.increment(by: published.count)
        }
        guard transient.isEmpty else {
            metrics.retried.increment(by: transient.count)
            try await connection.query(
                PostgresQuery(
                    unsafeSQL: "UPDATE \(outbox.table) SET attempts = attempts + 1, last_error = $2 WHERE id = ANY($1)",
                    binds: try Outbox.binds(transient.map(\.0), transient[0].1)
                ),
                logger: logger
            )
            logger.warning(
                "outbox relay could not publish; trying again",
                metadata: [
                    "message_store.outbox": "\(outbox.table)", "message_store.count": "\(transient.count)",
                    "message_store.error": "\(transient[0].1)",
                ]
            )
            return .retryLater
        }
        return batch.count == configuration.batchSize ? .full : .drained
    }

    private func setAside(_ row: Row, error: MessageStoreError) async throws {
        metrics.failed.increment()
        logger.error(
            "outbox message set aside: it cannot be published",
            metadata: [
                "message_store.outbox": "\(outbox.table)", "message_store.row": "\(row.id)",
                "message_store.subject": "\(row.subject)", "message_store.error": "\(error)",
            ]
        )
        try await connection.query(
            PostgresQuery(
                unsafeSQL: """
                    UPDATE \(outbox.table) SET failed_at = clock_timestamp(), attempts = attempts + 1, last_error = $2
                    WHERE id = $1
                    """,
                binds: try Outbox.binds(row.id, "\(error)")
            ),
            logger: logger
        )
    }

    /// Failures that trying again cannot cure: the row is set aside.
    static func isPermanent(_ error: MessageStoreError) -> Bool {
        switch error.code {
        case .noResponders, .invalidSubject, .messageTooLarge, .permissionDenied, .invalidHeader, .invalidMessageID,
            .streamNotFound, .encodingFailed, .wrongExpectedSequence, .invalidConfiguration:
            true
        default:
            false
        }
    }
}

/// Wakes a relay waiting for work: a notification, or its time-out.
final class WakeSignal: Sendable {
    private struct State {
        var pending = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    func signal() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard let waiter = state.waiter else {
                state.pending = true
                return nil
            }
            state.waiter = nil
            return waiter
        }
        waiter?.resume()
    }

    /// Returns at the next signal (or at once for one that came since the last wait), after
    /// `timeout`, or when the task is cancelled.
    func wait(timeout: Duration) async {
        let timer = Task { [self] in
            try? await Task.sleep(for: timeout)
            signal()
        }
        defer { timer.cancel() }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { state -> Bool in
                    if state.pending {
                        state.pending = false
                        return true
                    }
                    state.waiter = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            signal()
        }
        state.withLock { $0.pending = false }
    }
}

struct OutboxMetrics: Sendable {
    let published: Counter
    let retried: Counter
    let failed: Counter
    let pending: Gauge
    let oldest: Gauge

    init(table: String) {
        let dimensions = [("outbox", table)]
        published = Counter(label: "message_store_outbox_published_total", dimensions: dimensions)
        retried = Counter(label: "message_store_outbox_retried_total", dimensions: dimensions)
        failed = Counter(label: "message_store_outbox_failed_total", dimensions: dimensions)
        pending = Gauge(label: "message_store_outbox_pending", dimensions: dimensions)
        oldest = Gauge(label: "message_store_outbox_oldest_pending_seconds", dimensions: dimensions)
    }
}

extension Duration {
    /// In seconds, for gauges and SQL intervals.
    var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}

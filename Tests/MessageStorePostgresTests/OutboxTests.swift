import Foundation
import Logging
import MessageStore
import MessageStorePostgres
import MessageStoreTestSupport
import MessageStoreTesting
import MetricsTestKit
import PostgresNIO
import Testing

extension Trait where Self == ConditionTrait {
    /// Runs where PostgreSQL's binaries and a nats-server are found (CI installs both).
    static var postgresRequired: Self {
        .enabled(
            if: (PostgresTestServer.isAvailable || NATSServerRequirement.isRequired) && NATSServerRequirement.shouldRun,
            "needs PostgreSQL (Debian's postgresql: scripts/setup.sh --interop) and nats-server"
        )
    }
}

/// A NATS server with a store on it and a PostgreSQL server with a migrated outbox, for `body`
/// (with the NATS server last).
func withOutbox<R>(
    _ body: (MessageStore, PostgresTestServer, PostgresConnection, Outbox, NATSTestServer) async throws -> R
) async throws -> R {
    try await NATSTestServer.withServer { nats in
        try await PostgresTestServer.withServer { postgres in
            let connection = try await NATSConnection.connect(
                NATSConnection.Configuration(url: nats.url),
                logger: testLogger
            )
            let store = try MessageStore(
                connection: connection,
                configuration: MessageStore.Configuration(
                    prefix: "t\(UUID().uuidString.prefix(8).lowercased())",
                    createMissingStreams: true
                ),
                logger: testLogger
            )
            let database = try await postgres.connect()
            let outbox = Outbox()
            do {
                try await outbox.migrate(on: database, logger: testLogger)
                let result = try await body(store, postgres, database, outbox, nats)
                try? await database.close()
                await connection.close()
                return result
            } catch {
                try? await database.close()
                await connection.close()
                throw error
            }
        }
    }
}

/// Runs `relays` for the duration of `body`, then cancels them.
func withRelays<R>(_ relays: [OutboxRelay], _ body: () async throws -> R) async throws -> R {
    try await withThrowingTaskGroup(of: Void.self) { group in
        for relay in relays { group.addTask { try await relay.run() } }
        defer { group.cancelAll() }
        return try await body()
    }
}

func relayConfiguration() -> OutboxRelay.Configuration {
    var configuration = OutboxRelay.Configuration()
    configuration.standbyInterval = .milliseconds(200)
    configuration.backoff = .exponential(initial: .milliseconds(50), maximum: .milliseconds(500))
    return configuration
}

/// A relay of `outbox` to `store` on `postgres`, with the tests' short intervals, changed by
/// `configure`.
func testRelay(
    _ outbox: Outbox,
    _ store: MessageStore,
    _ postgres: PostgresTestServer,
    configure: (inout OutboxRelay.Configuration) -> Void = { _ in }
) -> OutboxRelay {
    var configuration = relayConfiguration()
    configure(&configuration)
    return OutboxRelay(
        outbox: outbox,
        store: store,
        database: postgres.configuration,
        configuration: configuration,
        logger: testLogger
    )
}

/// Stages `Counter(value)` to `orders.<value % 3>` with id `row-<value>` for each of `values`, in
/// one transaction.
func stageRows(_ values: Range<Int>, in outbox: Outbox, on database: PostgresConnection) async throws {
    try await database.withTransaction(logger: testLogger) { transaction in
        for value in values {
            try await outbox.stage(
                Counter(value: value),
                to: "orders.\(value % 3)",
                id: "row-\(value)",
                on: transaction,
                logger: testLogger
            )
        }
    }
}

/// Every message of `category`'s stream, in stream order.
func storedMessages(_ store: MessageStore, on filter: String) async throws -> [StoredMessage] {
    var messages: [StoredMessage] = []
    for try await message in store.messages(on: filter) { messages.append(message) }
    return messages
}

@Suite("Outbox", .postgresRequired)
struct OutboxTests {
    /// A rolled-back transaction publishes nothing; a committed one exactly one message.
    @Test func onlyCommittedTransactionsPublish() async throws {
        try await withOutbox { store, postgres, database, outbox, _ in
            try await store.ensureStream("orders")
            struct Rollback: Error {}
            await #expect(throws: PostgresTransactionError.self) {
                try await database.withTransaction(logger: testLogger) { transaction in
                    try await outbox.stage(
                        Counter(value: 1),
                        to: "orders.1",
                        id: "rolled-back",
                        on: transaction,
                        logger: testLogger
                    )
                    throw Rollback()
                }
            }
            _ = try await database.withTransaction(logger: testLogger) { transaction in
                try await outbox.stage(
                    Counter(value: 2),
                    to: "orders.1",
                    id: "committed",
                    on: transaction,
                    logger: testLogger
                )
            }
            let relay = testRelay(outbox, store, postgres)
            try await withRelays([relay]) {
                try await waitUntil("the committed message published") {
                    try await outbox.pending(on: database, logger: testLogger).count == 0
                }
            }
            let messages = try await storedMessages(store, on: "orders.>")
            #expect(messages.map { $0.headers["Nats-Msg-Id"] } == ["committed"])
            #expect(messages.first?.type == "Counter")
            #expect(try messages.first?.data == .object(["value": .int(2)]))
        }
    }

    /// 10,000 rows over 20 subjects staged by 20 concurrent writers, ten a transaction, while the
    /// relay runs: each stored once, and per subject in the order the rows were committed.
    @Test func rowsArePublishedOncePerSubjectInCommitOrder() async throws {
        try await withOutbox { store, postgres, database, outbox, _ in
            try await store.ensureStream("orders")
            let relay = testRelay(outbox, store, postgres)
            let writers = 20
            let perWriter = 500
            try await withRelays([relay]) {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for writer in 0..<writers {
                        group.addTask {
                            let connection = try await postgres.connect()
                            // Transactions of 10 rows to one subject, the writers' subjects meeting.
                            for first in stride(from: 0, to: perWriter, by: 10) {
                                let subject = "orders.\((writer + first / 10) % 20)"
                                try await connection.withTransaction(logger: testLogger) { transaction in
                                    for value in (first..<first + 10).map({ writer * perWriter + $0 }) {
                                        try await outbox.stage(
                                            Counter(value: value),
                                            to: subject,
                                            id: "row-\(value)",
                                            on: transaction,
                                            logger: testLogger
                                        )
                                    }
                                }
                            }
                            try await connection.close()
                        }
                    }
                    try await group.waitForAll()
                }
                try await waitUntil("every row published", timeout: .seconds(60)) {
                    try await outbox.pending(on: database, logger: testLogger).count == 0
                }
            }
            // Commit order per subject is row order per subject (staging locks the subject).
            var rowOf: [String: Int64] = [:]
            let rows = try await database.query("SELECT message_id, id FROM message_store_outbox", logger: testLogger)
            for try await (messageID, id) in rows.decode((String, Int64).self) { rowOf[messageID] = id }
            let messages = try await storedMessages(store, on: "orders.>")
            let ids = messages.compactMap { $0.headers["Nats-Msg-Id"] }
            #expect(ids.count == writers * perWriter)
            #expect(Set(ids).count == writers * perWriter, "each row once")
            var lastRow: [String: Int64] = [:]
            var outOfOrder: [String] = []
            for message in messages {
                guard let id = message.headers["Nats-Msg-Id"], let row = rowOf[id] else { continue }
                if let last = lastRow[message.subject], last > row {
                    outOfOrder.append("\(message.subject): \(row) after \(last)")
                }
                lastRow[message.subject] = row
            }
            #expect(outOfOrder.isEmpty, "\(outOfOrder.prefix(10))")
        }
    }

    /// A message no stream takes is set aside with its reason while the others go on; requeued
    /// once a stream exists, it is published.
    @Test func permanentFailuresAreSetAsideAndRequeued() async throws {
        try await withOutbox { store, postgres, database, outbox, _ in
            try await store.ensureStream("orders")
            try await database.withTransaction(logger: testLogger) { transaction in
                try await outbox.stage(
                    Counter(value: 1),
                    to: "orders.1",
                    id: "before",
                    on: transaction,
                    logger: testLogger
                )
                try await outbox.stage(
                    Counter(value: 2),
                    to: "unknown.1",
                    id: "no-stream",
                    on: transaction,
                    logger: testLogger
                )
                try await outbox.stage(
                    Counter(value: 3),
                    to: "orders.1",
                    id: "after",
                    on: transaction,
                    logger: testLogger
                )
            }
            let relay = testRelay(outbox, store, postgres) { $0.retention = .delete }
            try await withRelays([relay]) {
                try await waitUntil("the failure set aside", timeout: .seconds(30)) {
                    let failed = try await outbox.failed(on: database, logger: testLogger)
                    let pending = try await outbox.pending(on: database, logger: testLogger)
                    return !failed.isEmpty && pending.count == 0
                }
                let failed = try await outbox.failed(on: database, logger: testLogger)
                #expect(failed.map(\.messageID) == ["no-stream"])
                #expect(failed.first?.reason.contains("no stream") == true, "\(failed.first?.reason ?? "")")
                #expect(
                    try await storedMessages(store, on: "orders.>").compactMap { $0.headers["Nats-Msg-Id"] } == [
                        "before", "after",
                    ]
                )

                try await store.ensureStream("unknown")
                #expect(try await outbox.requeue(on: database, logger: testLogger) == 1)
                try await waitUntil("the requeued message published") {
                    try await store.stream(for: "unknown.1")?.messages == 1
                }
            }
            #expect(try await outbox.failed(on: database, logger: testLogger).isEmpty)
            // Deleted once published.
            let rows = try await database.query("SELECT count(*) FROM message_store_outbox", logger: testLogger)
            for try await count in rows.decode(Int64.self) { #expect(count == 0) }
        }
    }

    /// NATS down for 10 s while rows are committed: they wait, then flow, each once and in order.
    @Test func rowsWaitWhileNATSIsDownThenFlow() async throws {
        try await withOutbox { store, postgres, database, outbox, nats in
            try await store.ensureStream("orders")
            let relay = testRelay(outbox, store, postgres)
            try await withRelays([relay]) {
                try await stageRows(0..<100, in: outbox, on: database)
                try await waitUntil("the first rows published") {
                    try await outbox.pending(on: database, logger: testLogger).count == 0
                }
                await nats.crash()
                let clock = ContinuousClock()
                let down = clock.now
                for round in 0..<10 {
                    try await stageRows(100 + round * 50..<150 + round * 50, in: outbox, on: database)
                }
                // They wait while the server is away.
                #expect(try await outbox.pending(on: database, logger: testLogger).count > 0)
                try await Task.sleep(until: down + .seconds(10))
                #expect(try await outbox.pending(on: database, logger: testLogger).count == 500)
                try await nats.start()
                try await waitUntil("the waiting rows published", timeout: .seconds(30)) {
                    try await outbox.pending(on: database, logger: testLogger).count == 0
                }
            }
            let ids = try await storedMessages(store, on: "orders.>").compactMap { $0.headers["Nats-Msg-Id"] }
            #expect(ids.count == 600 && Set(ids).count == 600, "\(ids.count) stored, \(Set(ids).count) distinct")
            for subject in 0..<3 {
                let values = ids.compactMap { Int($0.dropFirst(4)) }.filter { $0 % 3 == subject }
                #expect(values == values.sorted())
            }
        }
    }

    /// Two relays: one is active; when its database connection dies (its backend terminated, as
    /// when its process dies), the other takes over within the standby interval and the rows go
    /// on, each once and in order.
    @Test func aStandbyRelayTakesOverWhenTheActiveOneDies() async throws {
        try await withOutbox { store, postgres, database, outbox, _ in
            try await store.ensureStream("orders")
            let first = testRelay(outbox, store, postgres)
            let second = testRelay(outbox, store, postgres) { $0.pollInterval = .milliseconds(200) }
            let active = Task { try await first.run() }
            try await stageRows(0..<100, in: outbox, on: database)
            try await waitUntil("the first relay published") {
                try await outbox.pending(on: database, logger: testLogger).count == 0
            }
            try await withRelays([second]) {
                // The active relay's backend ends, as when its process dies: its session lock goes.
                active.cancel()
                _ = try? await active.value
                let clock = ContinuousClock()
                let staged = clock.now
                try await stageRows(100..<200, in: outbox, on: database)
                try await waitUntil("the second relay published") {
                    try await outbox.pending(on: database, logger: testLogger).count == 0
                }
                #expect(clock.now - staged < .seconds(3), "taken over within the standby interval and a poll")
            }
            let ids = try await storedMessages(store, on: "orders.>").compactMap { $0.headers["Nats-Msg-Id"] }
            #expect(ids.count == 200 && Set(ids).count == 200)
            for subject in 0..<3 {
                let values = ids.compactMap { Int($0.dropFirst(4)) }.filter { $0 % 3 == subject }
                #expect(values == values.sorted())
            }
        }
    }
}

@Suite("message-store outbox", .postgresRequired)
struct OutboxCommandTests {
    static func cli(_ arguments: [String]) async throws -> ChildProcess.Output {
        try await ChildProcess.run(
            ChildProcess.builtExecutable(named: "message-store"),
            arguments,
            timeout: .seconds(20)
        )
    }

    /// pending, failed and requeue on a real outbox; a password never appears in what it prints.
    @Test func listsAndRequeuesWhatWasSetAside() async throws {
        try await withOutbox { store, postgres, database, outbox, _ in
            try await store.ensureStream("orders")
            let url = "postgres://postgres@127.0.0.1:\(postgres.port)/postgres"
            try await database.withTransaction(logger: testLogger) { transaction in
                try await outbox.stage(
                    Counter(value: 1),
                    to: "orders.1",
                    id: "fine",
                    on: transaction,
                    logger: testLogger
                )
                try await outbox.stage(
                    Counter(value: 2),
                    to: "nowhere.1",
                    id: "lost",
                    on: transaction,
                    logger: testLogger
                )
            }
            let pending = try await Self.cli(["outbox", "pending", "--database", url, "--json"])
            #expect(pending.status == 0, "\(pending.stderr)")
            #expect(pending.lines.first?.contains("\"pending\":2") == true, "\(pending.lines)")
            let relay = testRelay(outbox, store, postgres)
            try await withRelays([relay]) {
                try await waitUntil("the failure set aside", timeout: .seconds(30)) {
                    try await !outbox.failed(on: database, logger: testLogger).isEmpty
                }
                let failed = try await Self.cli(["outbox", "failed", "--database", url, "--json"])
                #expect(failed.status == 0, "\(failed.stderr)")
                #expect(failed.lines.count == 1 && failed.lines[0].contains("\"id\":\"lost\""), "\(failed.lines)")
                #expect(failed.lines.first?.contains("no stream") == true, "\(failed.lines)")
                try await store.ensureStream("nowhere")
                let requeued = try await Self.cli(["outbox", "requeue", "--database", url])
                #expect(requeued.lines == ["requeued 1 message(s)"], "\(requeued.stderr)")
                try await waitUntil("the requeued message published") {
                    try await store.stream(for: "nowhere.1")?.messages == 1
                }
            }
            let none = try await Self.cli(["outbox", "pending", "--database", url])
            #expect(none.lines == ["0 pending"])
            // A server that is not there: a clear error, the URL's password nowhere in it.
            let wrong = try await Self.cli([
                "outbox", "pending", "--database", "postgres://nobody:sekrit-pw@127.0.0.1:1/x",
            ])
            #expect(wrong.status != 0)
            #expect(wrong.stderr.contains("cannot connect to PostgreSQL at 127.0.0.1:1 as nobody"), "\(wrong.stderr)")
            #expect(!(wrong.stdout + wrong.stderr).contains("sekrit"))
        }
    }
}

@Suite("Outbox metrics", .postgresRequired)
struct OutboxMetricsTests {
    /// Published, set aside and pending, labelled by the table (one of this test's own).
    @Test func theRelayCountsWhatItPublishesAndSetsAside() async throws {
        let metrics = sharedTestMetrics
        try await withOutbox { store, postgres, database, _, _ in
            try await store.ensureStream("orders")
            let outbox = Outbox(table: "metrics_outbox")
            try await outbox.migrate(on: database, logger: testLogger)
            try await database.withTransaction(logger: testLogger) { transaction in
                for value in 0..<10 {
                    try await outbox.stage(
                        Counter(value: value),
                        to: "orders.\(value)",
                        on: transaction,
                        logger: testLogger
                    )
                }
                try await outbox.stage(Counter(value: 10), to: "nowhere.1", on: transaction, logger: testLogger)
            }
            let dimensions = [("outbox", "metrics_outbox")]
            let relay = testRelay(outbox, store, postgres)
            try await withRelays([relay]) {
                try await waitUntil("published and set aside", timeout: .seconds(30)) {
                    let published = try? metrics.expectCounter("message_store_outbox_published_total", dimensions)
                    let failed = try? metrics.expectCounter("message_store_outbox_failed_total", dimensions)
                    return published?.totalValue == 10 && failed?.totalValue == 1
                }
                // The gauges are read at most once a second: 11 waiting at the start, then none.
                try await waitUntil("the pending gauge at zero") {
                    (try? metrics.expectGauge("message_store_outbox_pending", dimensions))?.lastValue == 0
                }
            }
            let pending = try metrics.expectGauge("message_store_outbox_pending", dimensions)
            #expect(pending.values.first == 11, "\(pending.values)")
            #expect(try metrics.expectGauge("message_store_outbox_oldest_pending_seconds", dimensions).lastValue == 0)
        }
    }
}

import Foundation
import MessageStore
import MessageStorePostgres
import MessageStoreTestSupport
import MessageStoreTesting
import PostgresNIO
import Testing

/// Relay and inbox worker processes (Tests/PostgresWorker) killed with SIGKILL, counted with an
/// independent reader (the stream, the tables).
@Suite("Outbox and inbox under crashes", .postgresRequired)
struct OutboxFaultTests {
    /// 20,000 committed rows; relay processes killed at random points, five times, then one
    /// that finishes: every row in the stream exactly once, per subject in row order.
    @Test func relaysKilledAtRandomPointsPublishEveryRowOnceInOrder() async throws {
        try await withOutbox { store, postgres, database, outbox, nats in
            try await store.ensureStream("orders")
            let total = 20_000
            // Rows written by SQL, in one statement: the envelope publishing would make.
            try await database.query(
                """
                INSERT INTO message_store_outbox (message_id, subject, type, body)
                SELECT 'row-' || g, 'orders.' || (g % 50), 'Counter', '{"type":"Counter","data":{"value":' || g || '}}'
                FROM generate_series(1, \(total)) AS g
                """,
                logger: testLogger
            )
            let environment = [
                "NATS_URL": nats.url, "PREFIX": store.prefix, "PG_PORT": String(postgres.port),
                "MODE": "relay",
            ]
            var generator = SystemRandomNumberGenerator()
            var kills = 0
            for _ in 1...5 {
                let relay = try WorkerProcess(executable: "PostgresWorker", environment: environment)
                try await relay.lines.wait(for: "the relay to start") { $0.contains("ready") }
                // Some way into its work: between a fifth and two thirds of what is left.
                let before = try await store.stream(for: "orders.1")?.messages ?? 0
                let left = UInt64(total) - before
                let target = before + UInt64.random(in: left / 5...left * 2 / 3, using: &generator)
                try await waitUntil("the relay to get on") {
                    try await store.stream(for: "orders.1")?.messages ?? 0 >= target
                }
                relay.send(SIGKILL)
                try await relay.waitForExit()
                kills += 1
            }
            let last = try WorkerProcess(executable: "PostgresWorker", environment: environment)
            try await waitUntil("every row published", timeout: .seconds(60)) {
                try await outbox.pending(on: database, logger: testLogger).count == 0
            }
            last.send(SIGTERM)
            try await last.waitForExit()

            let messages = try await storedMessages(store, on: "orders.>")
            let rows = messages.compactMap { $0.headers["Nats-Msg-Id"].flatMap { Int($0.dropFirst(4)) } }
            #expect(kills == 5)
            #expect(rows.count == total, "stored \(rows.count) for \(total) rows")
            #expect(Set(rows).count == total, "each row once")
            var lastRow: [Int: Int] = [:]
            var outOfOrder = 0
            for row in rows {
                if let previous = lastRow[row % 50], previous > row { outOfOrder += 1 }
                lastRow[row % 50] = row
            }
            #expect(outOfOrder == 0)
        }
    }

    /// A worker killed after its handler's transaction committed and before its acknowledgement:
    /// the redelivered message finds itself in the inbox and does not run again; every job's
    /// effect is in the table exactly once.
    @Test func anInboxWorkerKilledAfterItsCommitDoesNotRunTheMessageAgain() async throws {
        try await withOutbox { store, postgres, database, _, nats in
            try await store.ensureStream("jobs")
            try await Inbox(name: "jobs").migrate(on: database, logger: testLogger)
            try await database.query("CREATE TABLE effects (value integer NOT NULL)", logger: testLogger)
            let total = 20
            let killedAfter = 5
            let jobs = (1...total).map { OutgoingMessage(InboxJob(value: $0), to: "jobs.\($0)", id: "job-\($0)") }
            for result in await store.publish(contentsOf: jobs) { _ = try result.get() }
            var environment = [
                "NATS_URL": nats.url, "PREFIX": store.prefix, "PG_PORT": String(postgres.port),
                "MODE": "inbox", "CONSUMER": "inbox", "DIE_AFTER": String(killedAfter),
            ]
            let first = try WorkerProcess(executable: "PostgresWorker", environment: environment)
            try await first.waitForExit()
            environment["DIE_AFTER"] = nil
            let second = try WorkerProcess(executable: "PostgresWorker", environment: environment)
            try await waitUntil("everything acknowledged") {
                let consumer = try await store.consumers(of: "jobs").first { $0.name == "inbox" }
                return consumer.map { $0.pending == 0 && $0.ackPending == 0 } ?? false
            }
            second.send(SIGTERM)
            try await second.waitForExit()
            #expect(
                second.lines.events.contains { $0.hasPrefix("delivered \(killedAfter) ") },
                "it was delivered again"
            )
            #expect(!second.lines.events.contains { $0.hasPrefix("handled \(killedAfter) ") }, "and not handled again")
            var effects: [Int] = []
            let rows = try await database.query("SELECT value FROM effects ORDER BY value", logger: testLogger)
            for try await value in rows.decode(Int32.self) { effects.append(Int(value)) }
            #expect(effects == Array(1...total), "each effect once")
        }
    }
}

struct InboxJob: MessagePayload {
    static let messageType = "Job"
    var value: Int
}

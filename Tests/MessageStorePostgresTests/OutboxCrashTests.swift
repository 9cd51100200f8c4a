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
struct OutboxCrashTests {
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

    /// Two relay processes at a time: the active one is killed (SIGKILL) on its way through 500
    /// rows and 500 more are committed, three times, a new standby started each time. The standby takes over within
    /// the bound (its standby interval, 200 ms here, and a poll), and every row is stored once, in
    /// order per subject.
    @Test func aStandbyRelayProcessTakesOverFromAKilledActiveOne() async throws {
        try await withOutbox { store, postgres, database, outbox, nats in
            try await store.ensureStream("orders")
            let environment = [
                "NATS_URL": nats.url, "PREFIX": store.prefix, "PG_PORT": String(postgres.port), "MODE": "relay",
            ]
            func insert(_ rows: ClosedRange<Int>) async throws {
                try await database.query(
                    """
                    INSERT INTO message_store_outbox (message_id, subject, type, body)
                    SELECT 'row-' || g, 'orders.' || (g % 10), 'Counter', '{"type":"Counter","data":{"value":' || g || '}}'
                    FROM generate_series(\(rows.lowerBound), \(rows.upperBound)) AS g
                    """,
                    logger: testLogger
                )
            }
            func stored() async throws -> UInt64 { try await store.stream(for: "orders.1")?.messages ?? 0 }
            // The first relay is the active one once it has published.
            var active = try WorkerProcess(executable: "PostgresWorker", environment: environment)
            try await insert(1...1_000)
            try await waitUntil("the first relay active") { try await stored() == 1_000 }
            var takeovers: [Duration] = []
            for round in 1...3 {
                let standby = try WorkerProcess(executable: "PostgresWorker", environment: environment)
                try await standby.lines.wait(for: "the standby to start") { $0.contains("ready") }
                let first = round * 1_000 + 1
                try await insert(first...first + 499)
                try await waitUntil("the active relay on its way") { try await stored() >= UInt64(first + 100) }
                active.send(SIGKILL)
                let killed = ContinuousClock.now
                try await active.waitForExit()
                // Committed after the kill: only the standby can publish these.
                try await insert(first + 500...first + 999)
                try await waitUntil("the standby to publish the rows") { try await stored() == UInt64(first + 999) }
                takeovers.append(ContinuousClock.now - killed)
                active = standby
            }
            active.send(SIGTERM)
            try await active.waitForExit()
            print("outbox relay takeovers after SIGKILL: \(takeovers)")
            #expect(takeovers.allSatisfy { $0 < .seconds(3) }, "takeovers: \(takeovers)")
            let rows = try await storedMessages(store, on: "orders.>").compactMap {
                $0.headers["Nats-Msg-Id"].flatMap { Int($0.dropFirst(4)) }
            }
            #expect(
                rows.count == 4_000 && Set(rows).count == 4_000,
                "\(rows.count) stored, \(Set(rows).count) distinct"
            )
            for subject in 0..<10 {
                let ofSubject = rows.filter { $0 % 10 == subject }
                #expect(ofSubject == ofSubject.sorted(), "orders.\(subject) in row order")
            }
            #expect(try await outbox.pending(on: database, logger: testLogger).count == 0)
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

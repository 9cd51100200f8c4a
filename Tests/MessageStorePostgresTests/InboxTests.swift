import Foundation
import MessageStore
import MessageStorePostgres
import MessageStoreTestSupport
import MessageStoreTesting
import PostgresNIO
import ServiceLifecycle
import Testing

@Suite("Inbox", .postgresRequired)
struct InboxTests {
    /// A PostgresClient of `postgres`, running for the duration of `body`.
    static func withClient<R>(_ postgres: PostgresTestServer, _ body: (PostgresClient) async throws -> R) async throws
        -> R
    {
        let client = PostgresClient(
            configuration: PostgresClient.Configuration(
                host: "127.0.0.1",
                port: postgres.port,
                username: "postgres",
                password: nil,
                database: "postgres",
                tls: .disable
            )
        )
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            return try await body(client)
        }
    }

    static func worker(
        _ store: MessageStore,
        consumer: String,
        _ handler: @escaping @Sendable (ReceivedMessage<Counter>) async throws -> Void
    ) throws -> Subscription {
        var configuration = Subscription.Configuration()
        configuration.maxConcurrentHandlers = 8
        configuration.retrySchedule = .fixed(.milliseconds(20))
        return try store.subscription(
            to: "orders.>",
            consumer: consumer,
            handlers: MessageHandlers().handling(Counter.self, handler),
            configuration: configuration
        )
    }

    static func run(_ worker: Subscription, until done: () async throws -> Bool) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await worker.run() }
            try await waitUntil("the worker's messages handled", done)
            worker.stop()
            try await group.waitForAll()
        }
    }

    static func effects(_ database: PostgresConnection) async throws -> [Int] {
        var values: [Int] = []
        let rows = try await database.query("SELECT value FROM effects ORDER BY value", logger: testLogger)
        for try await value in rows.decode(Int32.self) { values.append(Int(value)) }
        return values
    }

    /// Two consumers with one inbox name: each message's effect once, written in the handler's
    /// transaction; a handler that fails rolls its effect and its record back and is retried.
    @Test func consumersSharingAnInboxHaveEachEffectOnce() async throws {
        try await withOutbox { store, postgres, database, _, _ in
            try await store.ensureStream("orders")
            let inbox = Inbox(name: "effects")
            try await inbox.migrate(on: database, logger: testLogger)
            try await database.query("CREATE TABLE effects (value integer NOT NULL)", logger: testLogger)
            let total = 100
            let messages = (0..<total).map {
                OutgoingMessage(
                    Counter(value: $0),
                    to: "orders.\($0 % 5)",
                    id: $0.isMultiple(of: 2) ? "order-\($0)" : nil
                )
            }
            for result in await store.publish(contentsOf: messages) { _ = try result.get() }
            let failedOnce = Recorder<Int>()
            struct Flaky: Error {}
            try await Self.withClient(postgres) { client in
                let once = inbox.once(in: client, logger: testLogger) {
                    (message: ReceivedMessage<Counter>, transaction: PostgresConnection) in
                    try await transaction.query(
                        "INSERT INTO effects (value) VALUES (\(message.data.value))",
                        logger: testLogger
                    )
                    // Every tenth message fails its first attempt after its write.
                    if message.data.value.isMultiple(of: 10) && message.attempt == 1 {
                        failedOnce.record(message.data.value)
                        throw Flaky()
                    }
                }
                for consumer in ["first", "second"] {
                    try await Self.run(try Self.worker(store, consumer: consumer, once)) {
                        let description = try await store.consumers(of: "orders").first { $0.name == consumer }
                        return description.map { $0.pending == 0 && $0.ackPending == 0 } ?? false
                    }
                }
            }
            #expect(failedOnce.events.count == total / 10)
            #expect(try await Self.effects(database) == Array(0..<total))
            // Expiry: nothing is older than a minute; the expiry service with no retention removes all.
            #expect(try await inbox.expire(olderThan: .seconds(60), on: database, logger: testLogger) == 0)
            try await Self.withClient(postgres) { client in
                let expiry = Inbox.Expiry(
                    inbox,
                    client: client,
                    retention: .zero,
                    interval: .milliseconds(50),
                    logger: testLogger
                )
                let running = Task { try await expiry.run() }
                defer { running.cancel() }
                try await waitUntil("the entries expired") {
                    let rows = try await database.query("SELECT count(*) FROM message_store_inbox", logger: testLogger)
                    for try await count in rows.decode(Int64.self) { return count == 0 }
                    return false
                }
            }
        }
    }
}

@Suite("Outbox example", .postgresRequired)
struct OutboxExampleTests {
    /// The OutboxService example against servers of its own: the rolled-back order is never
    /// charged, the others once each, and the replaying worker charges nothing.
    @Test func theOutboxServiceChargesEachCommittedOrderOnce() async throws {
        try await NATSTestServer.withServer { nats in
            try await PostgresTestServer.withServer { postgres in
                var environment = ProcessInfo.processInfo.environment
                environment["NATS_URL"] = nats.url
                environment["PGHOST"] = "127.0.0.1"
                environment["PGPORT"] = String(postgres.port)
                environment["PGUSER"] = "postgres"
                let output = try await ChildProcess.run(
                    ChildProcess.builtExecutable(named: "OutboxService"),
                    [],
                    environment: environment,
                    timeout: .seconds(30)
                )
                #expect(output.status == 0, "\(output.lines.suffix(20))")
                // Filtered outside the expectations: a closure inside #expect and another after it
                // in one function were taken for each other (the second filter returned what the
                // first closure selects; Swift 6.3, debug).
                let lines = output.lines
                let committed = lines.filter { $0.hasPrefix("shop:") && $0.contains("committed") }
                let rolledBack = lines.filter { $0.hasPrefix("shop:") && $0.contains("-4 rolled back") }
                let charged = lines.filter { $0.hasPrefix("billing: charged") }
                let replayCharged = lines.filter { $0.hasPrefix("billing-replay: charged") }
                let charges = lines.filter { $0.hasPrefix("charges:") }
                let chargedOnce = charges.filter { $0.hasSuffix("charged 1 time(s)") }
                #expect(committed.count == 3, "\(lines)")
                #expect(rolledBack.count == 1, "\(lines)")
                #expect(charged.count == 3, "\(lines)")
                #expect(replayCharged.isEmpty, "\(lines)")
                #expect(charges.count == 3 && chargedOnce.count == 3, "\(charges)")
            }
        }
    }
}

import MessageStoreTestSupport
import MessageStoreTesting
import Testing

@testable import MessageStore

@Suite("Health", .serverRequired)
struct HealthTests {
    /// A worker whose handler waits until `release` yields.
    static func worker(
        _ store: MessageStore,
        consumer: String = "health",
        started: Recorder<Int>,
        release: AsyncStream<Void>
    ) throws -> Subscription {
        try store.subscription(
            to: "orders.>",
            consumer: consumer,
            handlers: MessageHandlers().handling(Counter.self) { message in
                started.record(message.data.value)
                for await _ in release { break }
            }
        )
    }

    @Test func aRunningWorkerOnAConnectedServerIsHealthy() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            let (release, releaser) = AsyncStream.makeStream(of: Void.self)
            releaser.finish()
            let started = Recorder<Int>()
            let worker = try Self.worker(store, started: started, release: release)
            try await store.publish(Counter(value: 1), to: "orders.1")
            try await withRunning(worker) {
                try await started.wait(forCount: 1)
                try await waitUntil("the message is acknowledged") {
                    worker.status.sinceLastAcknowledgement != nil
                }
                // The acknowledgement is sent without waiting for the server: wait until the
                // server has counted it.
                var report = await store.connection.health(of: [worker])
                try await waitUntil("the server counts the acknowledgement") {
                    report = await store.connection.health(of: [worker])
                    return report.subscriptions.first?.consumer == .counts(pending: 0, ackPending: 0, redelivered: 0)
                }
                #expect(report.level == .healthy, "\(report.reasons)")
                #expect(report.reasons.isEmpty)
                #expect(report.connection.state == .connected)
                #expect(report.connection.roundTripTime != nil)
                #expect(report.connection.server != nil)
                let status = try #require(report.subscriptions.first)
                #expect(status.consumerName == "health")
                #expect(status.state == .running)
                #expect(status.sinceLastFetch != nil)
                #expect(status.handlersInFlight == 0)
                #expect(status.consumer == .counts(pending: 0, ackPending: 0, redelivered: 0))
            }
            let stopped = await store.connection.health(of: [worker])
            #expect(stopped.level == .unhealthy)
            #expect(stopped.reasons == ["subscription health on orders.> is not running"])
        }
    }

    @Test func aStuckHandlerIsUnhealthy() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            let (release, releaser) = AsyncStream.makeStream(of: Void.self)
            let started = Recorder<Int>()
            let worker = try Self.worker(store, started: started, release: release)
            try await store.publish(Counter(value: 1), to: "orders.1")
            try await withRunning(worker) {
                try await started.wait(forCount: 1)
                #expect(worker.status.handlersInFlight == 1)
                try await waitUntil("the handler runs longer than the bound") {
                    (worker.status.oldestHandlerInFlight ?? .zero) > .milliseconds(200)
                }
                let report = await store.connection.health(of: [worker], maxHandlerDuration: .milliseconds(200))
                #expect(report.level == .unhealthy)
                #expect(report.reasons.count == 1)
                #expect(
                    report.reasons.first?.hasPrefix("a handler of subscription health on orders.> has run for") == true
                )
                #expect(report.subscriptions.first?.consumer == .counts(pending: 0, ackPending: 1, redelivered: 0))
                releaser.finish()
            }
        }
    }

    @Test func aDeletedConsumerIsUnhealthy() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            let (release, releaser) = AsyncStream.makeStream(of: Void.self)
            releaser.finish()
            let worker = try Self.worker(store, started: Recorder<Int>(), release: release)
            try await withRunning(worker) {
                try await store.jetStream.deleteConsumer(stream: "\(store.prefix)-orders", name: "health")
                let report = await store.connection.health(of: [worker])
                #expect(report.level == .unhealthy)
                #expect(
                    report.reasons.contains("the durable consumer of subscription health on orders.> no longer exists")
                )
                #expect(report.subscriptions.first?.consumer == .missing)
            }
        }
    }

    @Test func withTheServerDownTheProbeAnswersWithinItsBound() async throws {
        try await withStore { store, server in
            try await store.ensureStream("orders")
            let (release, releaser) = AsyncStream.makeStream(of: Void.self)
            releaser.finish()
            let worker = try Self.worker(store, started: Recorder<Int>(), release: release)
            try await withRunning(worker) {
                // Frozen: the connection still looks connected, but nothing answers.
                server.freeze()
                var report: HealthReport?
                let frozen = await elapsed {
                    report = await store.connection.health(of: [worker], timeout: .milliseconds(500))
                }
                #expect(frozen < .milliseconds(1_500), "a probe against a frozen server took \(frozen)")
                #expect(report?.level != .healthy)
                #expect(report?.connection.roundTripTime == nil)
                server.thaw()

                // Gone: the connection notices and the probe says so at once.
                try await server.stop(keepingStore: true)
                try await waitUntil("the connection notices") {
                    await store.connection.status().state == .reconnecting
                }
                let down = await elapsed {
                    report = await store.connection.health(of: [worker], timeout: .milliseconds(500))
                }
                #expect(down < .milliseconds(1_500), "a probe with the server down took \(down)")
                #expect(report?.level == .unhealthy)
                #expect(report?.reasons.first == "not connected to a NATS server")
                #expect(report?.subscriptions.first?.consumer == .unknown)
                try await server.start()
            }
        }
    }
}

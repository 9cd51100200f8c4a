import Foundation
import MessageStoreTestSupport
import MessageStoreTesting
import Metrics
import MetricsTestKit
import Testing

@testable import MessageStore

// Each test here creates its subscription after touching `sharedTestMetrics` (the process's one
// metrics bootstrap, in MessageStoreTestSupport) and uses its own consumer.

@Suite("Metrics", .serverRequired)
struct MetricsTests {
    @Test func countsHandledRetriedTerminatedAndDeadLettered() async throws {
        let metrics = sharedTestMetrics
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            let consumer = "metrics-\(uniquePrefix())"
            let seen = Recorder<Int>()
            let handlers = MessageHandlers().handling(OrderPlaced.self) { message in
                seen.record(message.attempt)
                if message.data.orderId == "bad" { throw HandlerFailure() }
            }
            var configuration = Subscription.Configuration()
            configuration.retrySchedule = .immediate
            configuration.deadLetterSubject = "dlq"
            let worker = try store.subscription(
                to: "orders.>",
                consumer: consumer,
                handlers: handlers,
                configuration: configuration
            )
            try await store.publish(OrderPlaced(orderId: "good", amount: 1), to: "orders.1")
            try await store.publish(OrderPlaced(orderId: "bad", amount: 1), to: "orders.2")
            try await store.publish(Counter(value: 1), to: "orders.3")
            try await withRunning(worker) {
                try await seen.wait(forCount: 4)
                try await waitUntil("dead letter") { try await store.lastMessageRaw(on: "dlq.orders.2") != nil }
                try await waitUntil("counted") {
                    (try? metrics.expectCounter(
                        "message_store_terminated_total",
                        [("consumer", consumer), ("type", "OrderPlaced")]
                    ))?
                    .totalValue == 1
                }
            }
            let dimensions = [("consumer", consumer), ("type", "OrderPlaced")]
            #expect(try metrics.expectCounter("message_store_handled_total", dimensions).totalValue == 1)
            #expect(try metrics.expectCounter("message_store_failed_total", dimensions).totalValue == 3)
            #expect(try metrics.expectCounter("message_store_retried_total", dimensions).totalValue == 2)
            #expect(try metrics.expectCounter("message_store_terminated_total", dimensions).totalValue == 1)
            #expect(try metrics.expectCounter("message_store_dead_lettered_total", dimensions).totalValue == 1)
            #expect(try metrics.expectCounter("message_store_skipped_total", [("consumer", consumer)]).totalValue == 1)
            #expect(try metrics.expectTimer("message_store_handler_duration_seconds", dimensions).values.count == 4)
        }
    }
}

@Suite("Publish, connection and in-flight metrics", .serverRequired)
struct ObservabilityMetricsTests {
    @Test func publishesAreCountedByOutcomeAndTimed() async throws {
        let metrics = sharedTestMetrics
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            let prefix = [("prefix", store.prefix)]
            try await store.publish(Counter(value: 1), to: "orders.1", id: "a")
            try await store.publish(Counter(value: 1), to: "orders.1", id: "a")
            _ = await #expect(throws: MessageStoreError.self) {
                try await store.publish(Counter(value: 2), to: "orders.1", expectedLastSubjectSequence: 7)
            }
            let results = await store.publish(contentsOf: [
                OutgoingMessage(Counter(value: 3), to: "orders.2"),
                OutgoingMessage(Counter(value: 4), to: "orders.2"),
            ])
            #expect(results.allSatisfy { (try? $0.get()) != nil })
            // The attempt ledger's and snapshots' writes are not publishes of the application.
            #expect(try metrics.expectCounter("message_store_published_total", prefix).totalValue == 3)
            #expect(try metrics.expectCounter("message_store_publish_duplicates_total", prefix).totalValue == 1)
            #expect(
                try metrics.expectCounter(
                    "message_store_publish_failures_total",
                    prefix + [("reason", "wrongExpectedSequence")]
                ).totalValue == 1
            )
            // Awaited publishes only: a pipelined batch has no one latency per message.
            #expect(try metrics.expectTimer("message_store_publish_duration_seconds", prefix).values.count == 3)
        }
    }

    @Test func handlersInFlightAreAMeter() async throws {
        let metrics = sharedTestMetrics
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            let consumer = "in-flight-\(uniquePrefix())"
            let started = Recorder<Int>()
            let (release, releaser) = AsyncStream.makeStream(of: Void.self)
            let handlers = MessageHandlers().handling(Counter.self) { message in
                started.record(message.data.value)
                for await _ in release { break }
            }
            var configuration = Subscription.Configuration()
            configuration.maxConcurrentHandlers = 2
            let worker = try store.subscription(
                to: "orders.>",
                consumer: consumer,
                handlers: handlers,
                configuration: configuration
            )
            try await store.publish(Counter(value: 1), to: "orders.1")
            try await store.publish(Counter(value: 2), to: "orders.2")
            try await withRunning(worker) {
                try await started.wait(forCount: 2)
                let meter = try metrics.expectMeter("message_store_handlers_in_flight", [("consumer", consumer)])
                #expect(meter.lastValue == 2)
                releaser.yield()
                releaser.yield()
                releaser.finish()
                try await waitUntil("both handlers return") { meter.lastValue == 0 }
            }
        }
    }

    @Test func theConsumersCountsArePolledIntoGauges() async throws {
        let metrics = sharedTestMetrics
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            let consumer = "gauges-\(uniquePrefix())"
            let started = Recorder<Int>()
            let (release, releaser) = AsyncStream.makeStream(of: Void.self)
            let handlers = MessageHandlers().handling(Counter.self) { message in
                started.record(message.data.value)
                for await _ in release { break }
            }
            var configuration = Subscription.Configuration()
            configuration.consumerMetricsInterval = .milliseconds(50)
            let worker = try store.subscription(
                to: "orders.>",
                consumer: consumer,
                handlers: handlers,
                configuration: configuration
            )
            for value in 1...3 { try await store.publish(Counter(value: value), to: "orders.\(value)") }
            try await withRunning(worker) {
                try await started.wait(forCount: 1)
                let dimensions = [("consumer", consumer)]
                // Three messages on the server, none acknowledged: the first is being handled.
                func gauge(_ name: String) -> Double? {
                    try? metrics.expectGauge("message_store_consumer_\(name)", dimensions).lastValue
                }
                func counts() -> (pending: Double, ackPending: Double, redelivered: Double)? {
                    guard let pending = gauge("pending"), let ackPending = gauge("ack_pending"),
                        let redelivered = gauge("redelivered")
                    else { return nil }
                    return (pending, ackPending, redelivered)
                }
                try await waitUntil("the gauges show three unacknowledged messages") {
                    guard let counts = counts() else { return false }
                    return counts.pending + counts.ackPending == 3 && counts.ackPending >= 1
                }
                #expect(counts()?.redelivered == 0)
                for _ in 1...3 { releaser.yield() }
                releaser.finish()
                try await started.wait(forCount: 3)
                try await waitUntil("the gauges show every message acknowledged") {
                    guard let counts = counts() else { return false }
                    return counts.pending == 0 && counts.ackPending == 0
                }
            }
        }
    }

    @Test func theConnectionsStateAndReconnectsAreCounted() async throws {
        let metrics = sharedTestMetrics
        try await NATSTestServer.withServer { server in
            let name = "metrics-\(uniquePrefix())"
            var configuration = NATSConnection.Configuration(url: server.url)
            configuration.name = name
            configuration.reconnect.wait = .milliseconds(100)
            let connection = try await NATSConnection.connect(configuration, logger: testLogger)
            let dimensions = [("connection", name)]
            let up = try metrics.expectGauge("message_store_connection_up", dimensions)
            #expect(up.lastValue == 1)
            try await server.stop(keepingStore: true)
            try await waitUntil("the disconnect is seen") { up.lastValue == 0 }
            #expect(try metrics.expectCounter("message_store_disconnects_total", dimensions).totalValue == 1)
            try await server.start()
            try await waitUntil("the reconnect is seen") { up.lastValue == 1 }
            #expect(try metrics.expectCounter("message_store_reconnects_total", dimensions).totalValue == 1)
            await connection.close()
            try await waitUntil("the close is seen") { up.lastValue == 0 }
        }
    }
}

import MessageStoreTestSupport
import Metrics
import MetricsTestKit
import Testing

@testable import MessageStore

/// swift-metrics is bootstrapped once per process; instruments made before stay no-ops, so each
/// test here creates its subscription after touching `sharedTestMetrics` and uses its own consumer.
let sharedTestMetrics: TestMetrics = {
    let metrics = TestMetrics()
    MetricsSystem.bootstrap(metrics)
    return metrics
}()

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
                        "message_store_terminated",
                        [("consumer", consumer), ("type", "OrderPlaced")]
                    ))?
                    .totalValue == 1
                }
            }
            let dimensions = [("consumer", consumer), ("type", "OrderPlaced")]
            #expect(try metrics.expectCounter("message_store_handled", dimensions).totalValue == 1)
            #expect(try metrics.expectCounter("message_store_failed", dimensions).totalValue == 3)
            #expect(try metrics.expectCounter("message_store_retried", dimensions).totalValue == 2)
            #expect(try metrics.expectCounter("message_store_terminated", dimensions).totalValue == 1)
            #expect(try metrics.expectCounter("message_store_dead_lettered", dimensions).totalValue == 1)
            #expect(try metrics.expectCounter("message_store_skipped", [("consumer", consumer)]).totalValue == 1)
            #expect(try metrics.expectTimer("message_store_handler_duration", dimensions).values.count == 4)
        }
    }
}

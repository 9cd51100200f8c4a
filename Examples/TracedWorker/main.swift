// TracedWorker: tracing, metrics and health wired into a ServiceGroup.
//
//   swift run TracedWorker
//
// A checkout publishes two orders inside a span of its own; an order worker handles each (its
// log line carries the trace and span ids) and publishes a charge that continues the trace; a
// payment worker fails one charge once and handles it on the second attempt. Every span is
// printed as it ends (ConsoleTracer: swap in swift-otel to export them), a health probe sums up
// the workers while they run and after they stop, and the metrics are printed in Prometheus'
// text format as a /metrics endpoint would serve them.

import ExampleSupport
import Logging
import MessageStore
import Metrics
import Prometheus
import ServiceLifecycle
import Synchronization
import Tracing
import UnixSignals

let tracer = ConsoleTracer()
InstrumentationSystem.bootstrap(tracer)
let registry = PrometheusCollectorRegistry()
MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))

/// Says when every charge has been handled.
final class Charges: Sendable {
    private let handled = Atomic<Int>(0)
    private let failedOnce = Mutex<Set<String>>([])
    let done: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    init() {
        (done, continuation) = AsyncStream.makeStream()
    }

    /// Whether this is the first try for an order that fails once.
    func failsNow(_ orderId: String) -> Bool {
        orderId == "T-2" && failedOnce.withLock { $0.insert(orderId).inserted }
    }

    func handledOne(expecting count: Int) {
        if handled.add(1, ordering: .relaxed).newValue == count { continuation.yield() }
    }
}

struct CardDeclined: Error, CustomStringConvertible {
    var description: String { "the card was declined (this time)" }
}

func show(_ report: HealthReport) {
    say("  health: \(report.level)" + (report.reasons.isEmpty ? "" : " (\(report.reasons.joined(separator: "; ")))"))
    for status in report.subscriptions {
        var line = "    \(status.consumerName): \(status.state), \(status.handlersInFlight) handler(s) in flight"
        if case .counts(let pending, let ackPending, _) = status.consumer {
            line += ", \(pending) pending, \(ackPending) ack pending on the server"
        }
        say(line)
    }
}

try await runExample("TracedWorker") { store in
    let orders = ["T-1", "T-2"]
    let charges = Charges()
    // On stdout with the story; the metadata provider adds trace_id and span_id.
    let logger = Logger(label: "order-worker") { label in
        StreamLogHandler.standardOutput(label: label, metadataProvider: .messageStoreTraceContext)
    }

    // Retries after 200 ms and the consumer gauges polled five times a second, for the story.
    var configuration = Subscription.Configuration()
    configuration.retrySchedule = .fixed(.milliseconds(200))
    configuration.consumerMetricsInterval = .milliseconds(200)
    let orderWorker = try store.subscription(
        to: "checkout.order.>",
        consumer: "traced-order-worker",
        handlers: MessageHandlers().handling(PlaceOrder.self) { message in
            // The log line carries trace_id and span_id: the metadata provider reads the span
            // the handler runs in.
            logger.info("placing order", metadata: ["order": "\(message.data.orderId)"])
            // Published inside the handler: a child of its span, so the trace goes on.
            try await store.publish(
                ChargeCard(orderId: message.data.orderId, amount: 10 * message.data.quantity),
                to: "checkout.charge.\(message.data.orderId)",
                metadata: .following(message)
            )
        },
        configuration: configuration
    )
    let paymentWorker = try store.subscription(
        to: "checkout.charge.>",
        consumer: "traced-payment-worker",
        handlers: MessageHandlers().handling(ChargeCard.self) { message in
            if charges.failsNow(message.data.orderId) { throw CardDeclined() }
            say("  charged \(message.data.amount) for \(message.data.orderId) (attempt \(message.attempt))")
            charges.handledOne(expecting: orders.count)
        },
        configuration: configuration
    )

    var serviceLogger = Logger(label: "services")
    serviceLogger.logLevel = .warning
    let group = ServiceGroup(
        configuration: .init(
            services: [.init(service: orderWorker), .init(service: paymentWorker)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: serviceLogger
        )
    )
    try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }

        say("Checkout: publishing \(orders.count) orders in one span")
        try await withSpan("checkout", ofKind: .server) { _ in
            for (index, order) in orders.enumerated() {
                try await store.publish(
                    PlaceOrder(orderId: order, item: "tea", quantity: index + 1),
                    to: "checkout.order.\(order)"
                )
            }
        }
        for await _ in charges.done { break }
        say("Every charge handled; a readiness probe asks:")
        show(await store.connection.health(of: [orderWorker, paymentWorker], timeout: .seconds(1)))

        await group.triggerGracefulShutdown()
        try await tasks.next()
        tasks.cancelAll()
    }
    say("Workers stopped; the probe now says:")
    show(await store.connection.health(of: [orderWorker, paymentWorker], timeout: .seconds(1)))

    say("Metrics, as /metrics would serve them (non-zero values only, no histogram buckets;")
    say("the consumer gauges are what the server said at the last poll):")
    let lines = registry.emitToString().split(separator: "\n").filter { line in
        line.hasPrefix("message_store_") && !line.contains("_bucket{") && !line.hasSuffix(" 0")
            && !line.hasSuffix(" 0.0")
    }
    for line in lines.sorted() { say("  \(line)") }
}

import Metrics
import Synchronization

/// The subscription's swift-metrics instruments, labelled by consumer and message type.
///
/// Instruments for the registered types are made up front; others (unknown or unreadable types)
/// share the type label `other`, so a peer cannot grow the number of time series.
final class SubscriptionMetrics: Sendable {
    /// A class, so that looking up a type's instruments for every message retains one reference
    /// rather than six.
    final class PerType: Sendable {
        let handled: Counter
        let failed: Counter
        let retried: Counter
        let terminated: Counter
        let deadLettered: Counter
        let duration: Metrics.Timer

        init(consumer: String, type: String) {
            let dimensions = [("consumer", consumer), ("type", type)]
            handled = Counter(label: "message_store_handled_total", dimensions: dimensions)
            failed = Counter(label: "message_store_failed_total", dimensions: dimensions)
            retried = Counter(label: "message_store_retried_total", dimensions: dimensions)
            terminated = Counter(label: "message_store_terminated_total", dimensions: dimensions)
            deadLettered = Counter(label: "message_store_dead_lettered_total", dimensions: dimensions)
            duration = Metrics.Timer(label: "message_store_handler_duration_seconds", dimensions: dimensions)
        }
    }

    let skipped: Counter
    /// Handlers running now.
    let inFlight: Meter
    private let byType: [String: PerType]
    private let other: PerType

    init(consumer: String, types: [String]) {
        skipped = Counter(label: "message_store_skipped_total", dimensions: [("consumer", consumer)])
        inFlight = Meter(label: "message_store_handlers_in_flight", dimensions: [("consumer", consumer)])
        byType = Dictionary(uniqueKeysWithValues: types.map { ($0, PerType(consumer: consumer, type: $0)) })
        other = PerType(consumer: consumer, type: "other")
    }

    func forType(_ type: String?) -> PerType {
        type.flatMap { byType[$0] } ?? other
    }
}

/// The durable consumer's counts as the server reports them, polled by a running subscription
/// every ``Subscription/Configuration/consumerMetricsInterval``.
struct ConsumerGauges: Sendable {
    let pending: Gauge
    let ackPending: Gauge
    let redelivered: Gauge

    init(consumer: String) {
        let dimensions = [("consumer", consumer)]
        pending = Gauge(label: "message_store_consumer_pending", dimensions: dimensions)
        ackPending = Gauge(label: "message_store_consumer_ack_pending", dimensions: dimensions)
        redelivered = Gauge(label: "message_store_consumer_redelivered", dimensions: dimensions)
    }

    /// Whether an application bootstrapped swift-metrics: with no backend, nothing is polled.
    static var metricsBootstrapped: Bool {
        !(MetricsSystem.factory is NOOPMetricsHandler)
    }

    func record(pending: UInt64, ackPending: Int, redelivered: Int) {
        self.pending.record(Int64(clamping: pending))
        self.ackPending.record(ackPending)
        self.redelivered.record(redelivered)
    }
}

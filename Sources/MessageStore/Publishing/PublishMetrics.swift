import Metrics
import Synchronization

/// The publisher's swift-metrics instruments: publishes stored, de-duplicated and failed (by
/// the error's code, a bounded set), and how long awaited publishes took, retries included.
/// The store's own records (the attempt ledger, snapshots) are not counted. Labelled by the
/// store's environment prefix.
final class PublishMetrics: Sendable {
    let stored: Counter
    let duplicates: Counter
    let duration: Metrics.Timer
    private let prefix: String
    private let failures = Mutex<[MessageStoreError.Code: Counter]>([:])

    init(prefix: String) {
        self.prefix = prefix
        let dimensions = [("prefix", prefix)]
        stored = Counter(label: "message_store_published_total", dimensions: dimensions)
        duplicates = Counter(label: "message_store_publish_duplicates_total", dimensions: dimensions)
        duration = Metrics.Timer(label: "message_store_publish_duration_seconds", dimensions: dimensions)
    }

    func record(_ result: Result<PublishAck, MessageStoreError>) {
        switch result {
        case .success(let ack):
            (ack.isDuplicate ? duplicates : stored).increment()
        case .failure(let error):
            failed(error.code).increment()
        }
    }

    private func failed(_ code: MessageStoreError.Code) -> Counter {
        failures.withLock { counters in
            if let counter = counters[code] { return counter }
            let counter = Counter(
                label: "message_store_publish_failures_total",
                dimensions: [("prefix", prefix), ("reason", "\(code)")]
            )
            counters[code] = counter
            return counter
        }
    }
}

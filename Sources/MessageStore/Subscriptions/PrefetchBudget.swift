import Synchronization

/// How many messages a worker asks for at a time: no more than its handlers can start within
/// the prefetch horizon (a second, or half the ack wait when that is shorter), judged from how
/// long handlers have taken lately, and never more than the configured batch size.
///
/// Fast handlers get whole batches (throughput); slow ones get a few messages at a time, so a
/// worker does not hoard messages that other workers of the consumer could be handling, and a
/// crash or a stop sends few messages back.
final class PrefetchBudget: Sendable {
    let maxBatch: Int
    let concurrency: Int
    let batchesInFlight: Int
    let horizon: Duration
    /// A moving average of handler durations in nanoseconds; 0 before the first.
    private let averageNanoseconds = Atomic<Int64>(0)

    init(maxBatch: Int, concurrency: Int, batchesInFlight: Int, ackWait: Duration) {
        self.maxBatch = max(maxBatch, 1)
        self.concurrency = max(concurrency, 1)
        self.batchesInFlight = max(batchesInFlight, 1)
        horizon = min(.seconds(1), ackWait / 2)
    }

    /// Takes one handler's duration into the average (an eighth of the way towards it).
    func record(_ duration: Duration) {
        let sample = max(duration.nanoseconds, 1)
        let average = averageNanoseconds.load(ordering: .relaxed)
        let next = average == 0 ? sample : average &+ (sample &- average) / 8
        // Concurrent handlers may overwrite each other's update: an average loses nothing by it.
        averageNanoseconds.store(max(next, 1), ordering: .relaxed)
    }

    /// The batch size for the next fetch.
    var batchSize: Int {
        let average = averageNanoseconds.load(ordering: .relaxed)
        guard average > 0 else { return maxBatch }
        let startable = horizon.nanoseconds / average * Int64(concurrency) / Int64(batchesInFlight)
        return Int(clamping: min(max(startable, 1), Int64(maxBatch)))
    }
}

import CNATS
import Logging

/// Pulls batches from a ``PullSubscription`` on a thread of its own and hands them to Swift.
///
/// Drains with no-wait batch requests while messages are available; when the consumer is empty it
/// long-polls for a single message, so an idle worker sees a new message as soon as it is stored.
/// At most `maxBatchesInFlight` batches wait for the Swift side at a time. While the server is
/// away, it backs off instead of spinning, and logs once per outage.
final class FetchLoop: @unchecked Sendable {
    // @unchecked: the mutable fields are guarded by `condition`.
    private let subscription: PullSubscription
    /// The most messages to take in the next request; asked before each one.
    private let batchSize: @Sendable () -> Int
    /// Told of every batch on the fetch thread, before it is handed to Swift.
    private let fetched: @Sendable ([FetchedMessage]) -> Void
    private let longPoll: Duration
    private let maxBatchesInFlight: Int
    private let logger: Logger
    /// Whether ``stop()`` unsubscribes, which ends a request under way at once; otherwise the
    /// request is let finish (a long poll: until it expires), so that nothing the server sends
    /// for it is lost on an inbox nobody reads, to come back only after the ack wait.
    private let endsRequestsAtStop: Bool
    private let condition = ConditionLock()
    private var batchesInFlight = 0
    private var stopping = false
    private let continuation: AsyncStream<[FetchedMessage]>.Continuation

    /// The batches fetched, in order; finishes when the loop stops.
    let batches: AsyncStream<[FetchedMessage]>

    init(
        subscription: PullSubscription,
        batchSize: @escaping @Sendable () -> Int,
        longPoll: Duration,
        maxBatchesInFlight: Int = 2,
        endsRequestsAtStop: Bool = true,
        logger: Logger,
        fetched: @escaping @Sendable ([FetchedMessage]) -> Void = { _ in }
    ) {
        self.subscription = subscription
        self.endsRequestsAtStop = endsRequestsAtStop
        self.batchSize = batchSize
        self.fetched = fetched
        self.longPoll = longPoll
        self.maxBatchesInFlight = maxBatchesInFlight
        self.logger = logger
        (batches, continuation) = AsyncStream.makeStream(bufferingPolicy: .unbounded)
    }

    func start() {
        Threads.start(name: "ms-fetch") { [self] in run() }
    }

    /// Called by the Swift side when it has finished a batch, so another may be fetched.
    func batchDone() {
        condition.lock()
        batchesInFlight -= 1
        condition.signal()
        condition.unlock()
    }

    /// Stops fetching: ends ``batches`` after the current fetch, which it wakes at once when
    /// `endsRequestsAtStop`.
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
        if endsRequestsAtStop { subscription.unsubscribe() }
    }

    private var isStopping: Bool {
        condition.lock()
        defer { condition.unlock() }
        return stopping
    }

    private func run() {
        defer { continuation.finish() }
        var drained = false
        var failures = 0
        while true {
            condition.lock()
            while batchesInFlight >= maxBatchesInFlight && !stopping {
                _ = condition.wait(seconds: 1)
            }
            let stop = stopping
            condition.unlock()
            if stop { return }

            switch subscription.fetch(batch: max(batchSize(), 1), longPoll: drained ? longPoll : nil) {
            case .messages(let messages):
                fetched(messages)
                if failures > 0 {
                    logger.notice("fetching resumed", metadata: metadata)
                    failures = 0
                }
                drained = false
                condition.lock()
                batchesInFlight += 1
                condition.unlock()
                continuation.yield(messages)
            case .empty:
                if failures > 0 && drained {
                    logger.notice("fetching resumed", metadata: metadata)
                    failures = 0
                }
                drained = true
            case .finished:
                return
            case .failed(let error):
                if isStopping { return }
                failures += 1
                if failures == 1 {
                    logger.warning(
                        "fetching failed; retrying until the server answers",
                        metadata: metadata.merging([LogKey.error: "\(error)"]) { $1 }
                    )
                }
                // Back off from 50 ms to 2 s so an absent server costs nothing.
                let pause = min(50 << min(failures - 1, 6), 2_000)
                condition.lock()
                if !stopping { _ = condition.wait(milliseconds: pause) }
                condition.unlock()
                drained = false
            }
        }
    }

    private var metadata: Logger.Metadata {
        [LogKey.stream: "\(subscription.stream)", LogKey.consumer: "\(subscription.consumer)"]
    }
}

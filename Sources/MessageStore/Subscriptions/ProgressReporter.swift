import Synchronization

/// Keeps every message a worker holds alive on the server: each fetched message not yet settled,
/// whether its handler runs or it still waits for one, gets "still working" (`+WPI`) once per
/// interval, so the server does not redeliver it meanwhile. It also gives the waiting ones back
/// when the worker stops.
///
/// One loop serves the whole subscription, on a thread of its own: handlers that keep every
/// thread of the cooperative pool busy (synchronous, CPU-bound work) are the ones that run long,
/// and they must not hold their own reports back. Messages are registered a fetched batch at a
/// time and dropped once all of a batch is settled, so a message costs nothing here on its way
/// through the dispatcher.
final class ProgressReporter: @unchecked Sendable {
    // @unchecked: `stopping` is guarded by `wakeUp`; the batches are behind their Mutex.
    private struct Batch {
        var messages: [FetchedMessage]
        /// When the server last heard about these messages: their fetch, then each report.
        var reported: ContinuousClock.Instant
    }

    let interval: Duration
    private let batches = Mutex<[Batch]>([])
    /// Guards `stopping` and wakes the reporting thread when it is set.
    private let wakeUp = ConditionLock()
    private var stopping = false

    init(interval: Duration) {
        self.interval = interval
    }

    /// Registers messages just fetched: the server's ack timer for them started now.
    func track(_ messages: [FetchedMessage]) {
        guard !messages.isEmpty else { return }
        let batch = Batch(messages: messages, reported: .now)
        batches.withLock { batches in
            // Batches done with go at once, not at the next report: a fast worker fetches many
            // between two reports, and each holds its messages' bodies.
            Self.forgetSettled(&batches)
            batches.append(batch)
        }
    }

    /// Drops the batches whose messages are all settled. Each check stops at the first message
    /// still held, so a message is looked at about once after it is settled.
    private static func forgetSettled(_ batches: inout [Batch]) {
        batches.removeAll { batch in batch.messages.allSatisfy(\.isSettled) }
    }

    /// Gives back at once every registered message whose handler has not started, except those
    /// `keep` says must stay (the server would not deliver them again).
    /// - Returns: How many were given back.
    @discardableResult
    func giveBackWaiting(except keep: (FetchedMessage) -> Bool) -> Int {
        let messages = batches.withLock { $0.flatMap(\.messages) }
        var count = 0
        for message in messages where !keep(message) && message.giveBackIfWaiting() {
            count += 1
        }
        return count
    }

    /// How many messages the reporter keeps, settled ones of batches not yet forgotten included.
    var keptCount: Int {
        batches.withLock { $0.reduce(0) { $0 + $1.messages.count } }
    }

    /// Starts reporting, every `interval / 2`, on a thread of its own, until ``stop()``.
    func start() {
        Threads.start(name: "ms-progress") { [self] in run() }
    }

    /// Stops reporting; the thread ends without waiting for the next tick (a round of reports
    /// already under way finishes; it skips messages already settled). Harmless to repeat.
    func stop() {
        wakeUp.lock()
        stopping = true
        wakeUp.signal()
        wakeUp.unlock()
    }

    private func run() {
        let tick = max((interval / 2).nanoseconds, 1_000_000)
        wakeUp.lock()
        while !stopping {
            _ = wakeUp.wait(nanoseconds: tick)
            if stopping { break }
            wakeUp.unlock()
            reportDue(now: .now)
            wakeUp.lock()
        }
        wakeUp.unlock()
    }

    /// Reports the unsettled messages of every batch not heard of for an interval, and forgets
    /// batches that are all settled.
    func reportDue(now: ContinuousClock.Instant) {
        let due = batches.withLock { batches -> [FetchedMessage] in
            Self.forgetSettled(&batches)
            var due: [FetchedMessage] = []
            for index in batches.indices where now - batches[index].reported >= interval {
                due += batches[index].messages
                batches[index].reported = now
            }
            return due
        }
        for message in due {
            message.reportProgress()
        }
    }
}

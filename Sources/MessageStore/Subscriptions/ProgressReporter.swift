import Synchronization

/// Keeps every message a worker holds alive on the server: each fetched message not yet settled,
/// whether its handler runs or it still waits for one, gets "still working" (`+WPI`) once per
/// interval, so the server does not redeliver it meanwhile. It also gives the waiting ones back
/// when the worker stops.
///
/// The reports are sent from a thread, not a task: handlers that keep every thread of the
/// cooperative pool busy (synchronous, CPU-bound work) are the ones that run long, and they must
/// not hold their own reports back. One ``ProgressThread`` per connection serves all its running
/// subscriptions. Messages are registered a fetched batch at a time and dropped once all of a
/// batch is settled, so a message costs nothing here on its way through the dispatcher.
final class ProgressReporter: Sendable {
    private struct Batch {
        var messages: [FetchedMessage]
        /// When the server last heard about these messages: their fetch, then each report.
        var reported: ContinuousClock.Instant
    }

    let interval: Duration
    private let batches = Mutex<[Batch]>([])
    /// The connection's thread that calls ``reportDue(now:)`` while this reporter is started.
    private let thread: ProgressThread

    init(interval: Duration, thread: ProgressThread) {
        self.interval = interval
        self.thread = thread
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

    /// Starts reporting, at least every `interval / 2`, until ``stop()``.
    func start() {
        thread.add(self)
    }

    /// Stops reporting without waiting for the next tick (a round of reports already under way
    /// finishes; it skips messages already settled). Harmless to repeat.
    func stop() {
        thread.remove(self)
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

/// The thread that sends the progress reports of every running subscription of a connection.
///
/// It runs while at least one reporter is started, waking at half the shortest interval among
/// them (each reporter reports only what is due for its own interval), and ends when the last
/// one stops, so a connection without running workers has no such thread.
final class ProgressThread: @unchecked Sendable {
    // @unchecked: `reporters` and `isRunning` are guarded by `wakeUp`.
    private let wakeUp = ConditionLock()
    private var reporters: [ObjectIdentifier: ProgressReporter] = [:]
    private var isRunning = false

    func add(_ reporter: ProgressReporter) {
        wakeUp.lock()
        reporters[ObjectIdentifier(reporter)] = reporter
        let start = !isRunning
        isRunning = true
        // A shorter interval than the thread waits for now: wake it to wait less.
        wakeUp.signal()
        wakeUp.unlock()
        if start {
            Threads.start(name: "ms-progress") { [self] in run() }
        }
    }

    func remove(_ reporter: ProgressReporter) {
        wakeUp.lock()
        reporters[ObjectIdentifier(reporter)] = nil
        wakeUp.signal()
        wakeUp.unlock()
    }

    /// How many reporters are started (for tests).
    var reporterCount: Int {
        wakeUp.lock()
        defer { wakeUp.unlock() }
        return reporters.count
    }

    private func run() {
        wakeUp.lock()
        var lastRound = ContinuousClock.now
        while !reporters.isEmpty {
            let tick = reporters.values.map { max($0.interval / 2, .milliseconds(1)) }.min() ?? .seconds(1)
            let untilDue = tick - (ContinuousClock.now - lastRound)
            if untilDue > .zero {
                _ = wakeUp.wait(nanoseconds: max(untilDue.nanoseconds, 1))
                continue
            }
            let current = Array(reporters.values)
            wakeUp.unlock()
            lastRound = .now
            for reporter in current {
                reporter.reportDue(now: lastRound)
            }
            wakeUp.lock()
        }
        isRunning = false
        wakeUp.unlock()
    }
}

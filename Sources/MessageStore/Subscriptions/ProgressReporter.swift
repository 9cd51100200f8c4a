import Synchronization

/// Sends "still working" (`+WPI`) for every message whose handler has run longer than one
/// interval, once per interval, so the server does not redeliver it to another worker meanwhile.
///
/// One loop serves the whole subscription, on a thread of its own: handlers that keep every
/// thread of the cooperative pool busy (synchronous, CPU-bound work) are the ones that run long,
/// and they must not hold their own reports back. Starting and ending a handler only touches a
/// small locked table, so fast handlers cost almost nothing.
final class ProgressReporter: @unchecked Sendable {
    // @unchecked: `stopping` is guarded by `wakeUp`; the table is behind its Mutex.
    struct Token: Hashable {
        fileprivate let id: UInt64
    }

    private struct Entry {
        var message: FetchedMessage
        var started: ContinuousClock.Instant
    }

    private struct State {
        var nextID: UInt64 = 0
        var running: [UInt64: Entry] = [:]
    }

    let interval: Duration
    private let state = Mutex(State())
    /// Guards `stopping` and wakes the reporting thread when it is set.
    private let wakeUp = ConditionLock()
    private var stopping = false

    init(interval: Duration) {
        self.interval = interval
    }

    func begin(_ message: FetchedMessage) -> Token {
        state.withLock { state in
            state.nextID &+= 1
            state.running[state.nextID] = Entry(message: message, started: .now)
            return Token(id: state.nextID)
        }
    }

    func end(_ token: Token) {
        _ = state.withLock { $0.running.removeValue(forKey: token.id) }
    }

    /// Starts reporting, every `interval / 2`, on a thread of its own, until ``stop()``.
    func start() {
        BlockingThreadPool.startDedicatedThread(name: "ms-progress") { [self] in run() }
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
            let now = ContinuousClock.now
            let due = state.withLock { state in
                state.running.values.filter { now - $0.started >= interval }.map(\.message)
            }
            for message in due {
                message.reportProgress()
            }
            wakeUp.lock()
        }
        wakeUp.unlock()
    }
}

import Synchronization

/// What a subscription did last, for ``Subscription/status``: when it last received a batch and
/// acknowledged a message, and when each handler running now started. Kept across runs.
final class SubscriptionActivity: Sendable {
    private struct State {
        var stream: String?
        var lastFetch: ContinuousClock.Instant?
        var lastAcknowledgement: ContinuousClock.Instant?
        var nextToken = 0
        var running: [Int: ContinuousClock.Instant] = [:]
    }

    private let state = Mutex(State())

    /// The stream of the running (or last run) subscription.
    var stream: String? {
        get { state.withLock { $0.stream } }
        set { state.withLock { $0.stream = newValue } }
    }

    func fetched() {
        let now = ContinuousClock.now
        state.withLock { $0.lastFetch = now }
    }

    func acknowledged() {
        let now = ContinuousClock.now
        state.withLock { $0.lastAcknowledgement = now }
    }

    /// Notes a handler starting; pass the token to ``handlerFinished(_:)``.
    func handlerStarted() -> Int {
        let now = ContinuousClock.now
        return state.withLock { state in
            state.nextToken &+= 1
            state.running[state.nextToken] = now
            return state.nextToken
        }
    }

    func handlerFinished(_ token: Int) {
        _ = state.withLock { $0.running.removeValue(forKey: token) }
    }

    /// Ages as of now.
    func snapshot() -> (
        sinceLastFetch: Duration?, sinceLastAcknowledgement: Duration?, handlersInFlight: Int,
        oldestHandler: Duration?
    ) {
        let now = ContinuousClock.now
        return state.withLock { state in
            (
                state.lastFetch.map { now - $0 },
                state.lastAcknowledgement.map { now - $0 },
                state.running.count,
                state.running.values.min().map { now - $0 }
            )
        }
    }
}

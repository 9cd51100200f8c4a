import Synchronization

// Health: the connection's and subscriptions' state, and one call that sums them up for a
// readiness probe, answering within a bounded time even when the server is down (SPEC "Health").

extension NATSConnection {
    /// The connection's state as a readiness probe sees it.
    public struct Status: Sendable, Hashable {
        /// Whether the connection can reach a server.
        public enum State: String, Sendable, Hashable {
            /// Connected to a server.
            case connected
            /// The server went away; the client is trying the servers again.
            case reconnecting
            /// Closed, by ``NATSConnection/close()`` or after giving up reconnecting.
            case closed
        }

        /// Whether the connection can reach a server.
        public var state: State
        /// The server connected to, user info shown as `***`; nil unless connected.
        public var server: String?
        /// How long a ping to the server took; nil when it did not answer in time or the
        /// connection is not connected.
        public var roundTripTime: Duration?
    }

    /// The connection's state, with a round trip to the server that waits at most `timeout`.
    public func status(timeout: Duration = .milliseconds(500)) async -> Status {
        let state = client.state
        guard state == .connected else { return Status(state: state, server: nil, roundTripTime: nil) }
        // Raced against the deadline too: the ping waits for a free pool thread first.
        let client = client
        let roundTrip = await Deadline.first(within: timeout) { await client.roundTrip(timeout: timeout) }
        return Status(state: state, server: connectedURL, roundTripTime: roundTrip ?? nil)
    }

    /// Sums up the connection and `subscriptions` for a readiness or liveness probe, within
    /// about `timeout` whatever the server does: the ping and every consumer look-up run at
    /// once, each raced against `timeout`, at high priority so that a service whose own tasks
    /// keep the cooperative pool busy still answers in time.
    ///
    /// Unhealthy: the connection is not connected or closed; a subscription is not running; its
    /// durable consumer no longer exists; a handler has run longer than `maxHandlerDuration`
    /// (default: the subscription's ack wait, after which the server would deliver the message
    /// again were it not for the progress reports). Degraded: the server did not answer a ping
    /// or a consumer look-up within `timeout`; a subscription is starting or stopping.
    /// - Parameters:
    ///   - subscriptions: The workers to include. Defaults to none.
    ///   - timeout: How long to wait for the server's answers. Defaults to 1 second.
    ///   - maxHandlerDuration: How long a handler may run before it counts as stuck. Defaults
    ///     to each subscription's ``Subscription/Configuration/ackWait``.
    public func health(
        of subscriptions: [Subscription] = [],
        timeout: Duration = .seconds(1),
        maxHandlerDuration: Duration? = nil
    ) async -> HealthReport {
        // The ping and every consumer look-up at once, so the whole call takes about `timeout`
        // however many subscriptions there are.
        let connected = client.state == .connected
        async let pinged = status(timeout: timeout)
        let statuses = await withTaskGroup(of: (Int, Subscription.Status).self) { group in
            for (index, subscription) in subscriptions.enumerated() {
                group.addTask { (index, await subscription.status(consumerInfo: connected, timeout: timeout)) }
            }
            var statuses: [Subscription.Status?] = Array(repeating: nil, count: subscriptions.count)
            for await (index, status) in group { statuses[index] = status }
            return statuses.compactMap { $0 }
        }
        let connection = await pinged
        var report = HealthReport(level: .healthy, reasons: [], connection: connection, subscriptions: [])
        switch connection.state {
        case .closed: report.flag(.unhealthy, "the NATS connection is closed")
        case .reconnecting: report.flag(.unhealthy, "not connected to a NATS server")
        case .connected:
            if connection.roundTripTime == nil {
                report.flag(.degraded, "the NATS server did not answer a ping within \(timeout)")
            }
        }
        for (subscription, status) in zip(subscriptions, statuses) {
            report.subscriptions.append(status)
            let name = "subscription \(subscription.consumer) on \(subscription.filter)"
            switch status.state {
            case .stopped: report.flag(.unhealthy, "\(name) is not running")
            case .starting: report.flag(.degraded, "\(name) is starting")
            case .stopping: report.flag(.degraded, "\(name) is stopping")
            case .running: break
            }
            let bound = maxHandlerDuration ?? subscription.configuration.ackWait
            if let oldest = status.oldestHandlerInFlight, oldest > bound {
                report.flag(.unhealthy, "a handler of \(name) has run for \(oldest), longer than \(bound)")
            }
            switch status.consumer {
            case .missing: report.flag(.unhealthy, "the durable consumer of \(name) no longer exists")
            case .unknown where connected && status.state == .running:
                report.flag(.degraded, "the consumer of \(name) could not be read within \(timeout)")
            default: break
            }
        }
        return report
    }
}

/// What ``NATSConnection/health(of:timeout:maxHandlerDuration:)`` found.
public struct HealthReport: Sendable {
    /// How well the service can do its work.
    public enum Level: Int, Sendable, Hashable, Comparable {
        /// Everything works.
        case healthy
        /// It works, but something is slow or in transition.
        case degraded
        /// It cannot do its work: take it out of rotation or restart it.
        case unhealthy

        public static func < (lhs: Level, rhs: Level) -> Bool { lhs.rawValue < rhs.rawValue }
    }

    /// The worst level found.
    public var level: Level
    /// Why the level is not healthy, one sentence each.
    public var reasons: [String]
    /// The connection's state.
    public var connection: NATSConnection.Status
    /// Each subscription's state, in the order given.
    public var subscriptions: [Subscription.Status]

    mutating func flag(_ level: Level, _ reason: String) {
        self.level = max(self.level, level)
        reasons.append(reason)
    }
}

extension Subscription {
    /// A subscription's state as a probe sees it.
    public struct Status: Sendable {
        /// Whether the subscription is working.
        public enum State: String, Sendable, Hashable {
            /// ``Subscription/run()`` is not running (never started, returned or failed).
            case stopped
            /// Making sure the stream and the consumer exist.
            case starting
            /// Fetching and handling messages.
            case running
            /// Finishing the handler in hand after a stop.
            case stopping
        }

        /// The durable consumer as the server counts it, when asked.
        public enum Consumer: Sendable, Hashable {
            /// Not asked (not connected, or never started) or no answer in time.
            case unknown
            /// The server no longer has the consumer (it was deleted).
            case missing
            /// Messages not yet delivered, delivered and unacknowledged, and redelivered.
            case counts(pending: UInt64, ackPending: Int, redelivered: Int)
        }

        /// The durable consumer's name.
        public var consumerName: String
        /// Whether the subscription is working.
        public var state: State
        /// How long ago the last batch of messages arrived; nil if none has.
        public var sinceLastFetch: Duration?
        /// How long ago the last message was acknowledged after its handler returned.
        public var sinceLastAcknowledgement: Duration?
        /// Handlers running now.
        public var handlersInFlight: Int
        /// How long the longest-running handler has run, nil when none runs.
        public var oldestHandlerInFlight: Duration?
        /// The consumer's counts from the server.
        public var consumer: Consumer
    }

    /// The subscription's state, without asking the server (the consumer's counts are
    /// ``Status/Consumer/unknown``; ``NATSConnection/health(of:timeout:maxHandlerDuration:)``
    /// asks).
    public var status: Status {
        Status(
            consumer: consumer,
            state: lifecycleState,
            activity: activity.snapshot(),
            counts: .unknown
        )
    }

    func status(consumerInfo: Bool, timeout: Duration) async -> Status {
        var counts = Status.Consumer.unknown
        if consumerInfo, let stream = activity.stream {
            counts =
                await Deadline.first(within: timeout) { [store, consumer] in
                    do {
                        guard let info = try await store.jetStream.consumerInfo(stream: stream, name: consumer) else {
                            return .missing
                        }
                        return .counts(
                            pending: info.numPending,
                            ackPending: info.numAckPending,
                            redelivered: info.numRedelivered
                        )
                    } catch {
                        return .unknown
                    }
                } ?? .unknown
        }
        return Status(consumer: consumer, state: lifecycleState, activity: activity.snapshot(), counts: counts)
    }
}

extension Subscription.Status {
    init(
        consumer name: String,
        state: State,
        activity: (
            sinceLastFetch: Duration?, sinceLastAcknowledgement: Duration?, handlersInFlight: Int,
            oldestHandler: Duration?
        ),
        counts: Consumer
    ) {
        self.init(
            consumerName: name,
            state: state,
            sinceLastFetch: activity.sinceLastFetch,
            sinceLastAcknowledgement: activity.sinceLastAcknowledgement,
            handlersInFlight: activity.handlersInFlight,
            oldestHandlerInFlight: activity.oldestHandler,
            consumer: counts
        )
    }
}

/// Bounded waits.
enum Deadline {
    /// `body`'s result, or nil when it takes longer than `timeout`; `body` is cancelled then and
    /// not waited for (a blocking request may still finish on its own thread). When `body` wins,
    /// the timer is cancelled.
    ///
    /// `body` and the timer run at high priority: a probe must answer in time while the
    /// service's own tasks keep the cooperative pool busy (measured with the whole test suite
    /// running alongside: a 500 ms probe took 1.5–1.7 s at the caller's priority, 0.7–0.85 s at
    /// high priority).
    static func first<T: Sendable>(within timeout: Duration, _ body: @escaping @Sendable () async -> T) async -> T? {
        let answer = Answer<T>()
        return await withCheckedContinuation { continuation in
            answer.set(continuation)
            let work = Task(priority: .high) {
                let value = await body()
                answer.resume(returning: value)
            }
            answer.setTimer(
                Task(priority: .high) {
                    try? await Task.sleep(for: timeout)
                    guard !Task.isCancelled else { return }
                    work.cancel()
                    answer.resume(returning: nil)
                }
            )
        }
    }

    /// A continuation resumed once, by whichever comes first; the timer cancelled then.
    private final class Answer<T: Sendable>: Sendable {
        private struct State {
            var continuation: CheckedContinuation<T?, Never>?
            var timer: Task<Void, Never>?
            var answered = false
        }

        private let state = Mutex(State())

        func set(_ continuation: CheckedContinuation<T?, Never>) {
            state.withLock { $0.continuation = continuation }
        }

        func setTimer(_ timer: Task<Void, Never>) {
            let answered = state.withLock { state in
                if !state.answered { state.timer = timer }
                return state.answered
            }
            if answered { timer.cancel() }
        }

        func resume(returning value: T?) {
            let (continuation, timer) = state.withLock { state in
                state.answered = true
                defer {
                    state.continuation = nil
                    state.timer = nil
                }
                return (state.continuation, state.timer)
            }
            timer?.cancel()
            continuation?.resume(returning: value)
        }
    }
}

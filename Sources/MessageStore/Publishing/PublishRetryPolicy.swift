extension MessageStore.Configuration {
    /// When a publish is sent again, and for how long.
    ///
    /// A publish is retried when nothing stored it (no responders; JetStream temporarily
    /// unavailable, as during a leader election), and, when it has an id (`Nats-Msg-Id`,
    /// de-duplicated by the stream), also when its acknowledgement did not come in time or
    /// its connection failed. Other failures are thrown at once. Retrying ends at
    /// ``deadline``; each attempt waits for its acknowledgement up to the publish timeout. The
    /// pauses between attempts are a ``RetrySchedule``, the same type that spaces a worker's
    /// retries.
    public struct PublishRetryPolicy: Sendable, Hashable {
        /// How many attempts that found no responders before the store looks for a stream
        /// covering the subject: when there is none, the publish fails then; when there is
        /// one, it keeps trying until ``deadline``. Defaults to 3.
        public var maxAttempts: Int = 3
        /// The pauses between attempts. Defaults to 250 ms at first, doubling, at most 1 second.
        public var schedule = Self.defaultSchedule
        /// How long after the first attempt the store may still send a retry. Zero means no
        /// retries. Defaults to 15 seconds: a replicated stream's followers wait a random 4 to
        /// 9 seconds without their leader before they elect a new one (nats-server's Raft
        /// election timeout), and elections of a three-replica stream measured 6–9.5 s here.
        public var deadline: Duration = .seconds(15)

        /// 250 ms at first, doubling, at most 1 second.
        public static let defaultSchedule = RetrySchedule.exponential(
            initial: .milliseconds(250),
            multiplier: 2,
            maximum: .seconds(1)
        )

        /// The longest pause or deadline a store accepts: a day.
        public static let longestDelay = Duration.seconds(86_400)

        /// Creates the default policy.
        public init() {}

        /// Creates a policy.
        /// - Parameters:
        ///   - maxAttempts: Attempts before looking for a stream that covers the subject.
        ///     Defaults to 3.
        ///   - schedule: The pauses between attempts. Defaults to ``defaultSchedule``.
        ///   - deadline: How long retries may go on. Defaults to 15 seconds.
        public init(
            maxAttempts: Int = 3,
            schedule: RetrySchedule = Self.defaultSchedule,
            deadline: Duration = .seconds(15)
        ) {
            self.maxAttempts = maxAttempts
            self.schedule = schedule
            self.deadline = deadline
        }

        /// The pause after failed attempt number `attempt` (1-based), at most the schedule's
        /// maximum and ``longestDelay``; it saturates whatever the numbers, and is never negative.
        public func delay(afterAttempt attempt: Int) -> Duration {
            ExponentialDelay.delay(
                initial: schedule.initial,
                multiplier: schedule.multiplier,
                maximum: min(schedule.maximum, Self.longestDelay),
                afterAttempt: attempt
            )
        }

        /// Why this policy cannot be used, or nil.
        var problem: String? {
            if maxAttempts < 1 { return "publishRetry.maxAttempts must be at least 1" }
            let multiplier = schedule.multiplier
            if !multiplier.isFinite || multiplier < 1 {
                return "publishRetry.schedule's multiplier must be a finite number of at least 1, not \(multiplier)"
            }
            for (name, value) in [
                ("schedule's initial delay", schedule.initial), ("schedule's maximum delay", schedule.maximum),
                ("deadline", deadline),
            ]
            where value < .zero || value > Self.longestDelay {
                return "publishRetry.\(name) must be between zero and \(Self.longestDelay), not \(value)"
            }
            return nil
        }
    }
}

/// How long to wait before the next attempt: the one backoff type of the library.
///
/// A worker's failed message waits this long before it is delivered again
/// (``Subscription/Configuration/retrySchedule``): the delay travels with the negative
/// acknowledgement, so the server holds the message back and no worker is blocked meanwhile. A
/// publish that nothing stored waits this long before it is sent again
/// (``MessageStore/Configuration/PublishRetryPolicy/schedule``).
public struct RetrySchedule: Sendable, Hashable {
    let initial: Duration
    let multiplier: Double
    let maximum: Duration

    /// Delays that grow by `multiplier` after each failed attempt, up to `maximum`.
    ///
    /// A subscription refuses a schedule with a negative or non-finite part, a multiplier below 1
    /// or a maximum beyond what the server takes (about 292 years) with
    /// ``MessageStoreError/Code/invalidConfiguration``; a store refuses one for its publish retry
    /// with a delay over a day
    /// (``MessageStore/Configuration/PublishRetryPolicy/longestDelay``).
    /// - Parameters:
    ///   - initial: The delay after the first failure. Defaults to 1 second.
    ///   - multiplier: The growth per attempt, 1 or more. Defaults to 2.
    ///   - maximum: The longest delay. Defaults to 60 seconds.
    public static func exponential(
        initial: Duration = .seconds(1),
        multiplier: Double = 2,
        maximum: Duration = .seconds(60)
    ) -> RetrySchedule {
        RetrySchedule(initial: initial, multiplier: multiplier, maximum: maximum)
    }

    /// The same delay after every failure.
    public static func fixed(_ delay: Duration) -> RetrySchedule {
        RetrySchedule(initial: delay, multiplier: 1, maximum: delay)
    }

    /// No delay: a failed message is redelivered at once.
    public static let immediate = RetrySchedule.fixed(.zero)

    /// The delay after failed attempt number `attempt` (1-based).
    ///
    /// It saturates, whatever the schedule: never below zero, never above the maximum, and an
    /// infinite growth gives the maximum.
    public func delay(afterAttempt attempt: Int) -> Duration {
        ExponentialDelay.delay(initial: initial, multiplier: multiplier, maximum: maximum, afterAttempt: attempt)
    }

    /// Checks that the schedule is one the server can carry out.
    /// - Throws: ``MessageStoreError/Code/invalidConfiguration`` naming the part that is wrong.
    func validate() throws(MessageStoreError) {
        func invalid(_ text: String) -> MessageStoreError {
            MessageStoreError(code: .invalidConfiguration, message: "invalid retrySchedule: \(text)")
        }
        guard multiplier.isFinite, multiplier >= 1 else {
            throw invalid("the multiplier must be a finite number of 1 or more, not \(multiplier)")
        }
        guard initial >= .zero, maximum >= .zero else { throw invalid("delays may not be negative") }
        guard maximum <= ExponentialDelay.longestNanoseconds else {
            throw invalid("the maximum delay \(maximum) is longer than the server takes (Int64 nanoseconds)")
        }
    }
}

/// `initial × multiplierⁿ`, computed so that no input traps or loops: the arithmetic of
/// ``RetrySchedule`` and ``MessageStore/Configuration/PublishRetryPolicy``.
enum ExponentialDelay {
    /// The longest duration whose nanoseconds fit an Int64, which is what the server and the C
    /// client take.
    static let longestNanoseconds = Duration.nanoseconds(Int64.max)

    static func delay(initial: Duration, multiplier: Double, maximum: Duration, afterAttempt attempt: Int) -> Duration {
        let maximum = min(max(maximum, .zero), longestNanoseconds)
        let start = min(max(initial, .zero), maximum)
        guard attempt > 1, start > .zero, multiplier != 1 else { return start }
        guard !multiplier.isNaN else { return start }
        guard multiplier > 0 else { return .zero }
        // A multiplier below 1 shrinks the delay towards zero, above 1 it grows towards the
        // maximum: both stay inside [0, maximum], where Duration × Double cannot trap.
        let factor = power(multiplier, attempt - 1)
        let seconds = self.seconds(start) * factor
        guard seconds.isFinite, seconds < self.seconds(maximum) else { return maximum }
        return start * factor
    }

    /// `base` to the power `exponent` (≥ 0) by squaring: at most 64 steps for any exponent.
    static func power(_ base: Double, _ exponent: Int) -> Double {
        var result = 1.0
        var base = base
        var exponent = exponent
        while exponent > 0 {
            if exponent & 1 == 1 { result *= base }
            exponent >>= 1
            if exponent > 0 { base *= base }
            if result.isInfinite || result == 0 { break }
        }
        return result
    }

    static func seconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

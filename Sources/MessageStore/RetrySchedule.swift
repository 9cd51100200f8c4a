/// How long a failed message waits before its next attempt.
///
/// The delay travels with the negative acknowledgement, so the server holds the message back and
/// no worker is blocked meanwhile.
public struct RetrySchedule: Sendable, Hashable {
    private let initial: Duration
    private let multiplier: Double
    private let maximum: Duration

    /// Delays that grow by `multiplier` after each failed attempt, up to `maximum`.
    /// - Parameters:
    ///   - initial: The delay after the first failure. Defaults to 1 second.
    ///   - multiplier: The growth per attempt. Defaults to 2.
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
    public func delay(afterAttempt attempt: Int) -> Duration {
        var delay = initial
        for _ in 1..<max(attempt, 1) {
            delay = delay * multiplier
            if delay >= maximum { return maximum }
        }
        return min(delay, maximum)
    }
}

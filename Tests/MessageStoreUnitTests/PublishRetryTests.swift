import Testing

@testable import MessageStore

@Suite("Publish retry decisions (no server)")
struct PublishRetryTests {
    typealias Policy = MessageStore.Configuration.PublishRetryPolicy

    static func error(_ code: MessageStoreError.Code, jetStream: Int? = nil) -> MessageStoreError {
        MessageStoreError(code: code, message: "failed", subject: "orders.1", jetStreamErrorCode: jetStream)
    }

    @Test func nothingStoredIsAlwaysRetriedAMaybeStoredMessageOnlyWithAnID() {
        for hasID in [false, true] {
            #expect(PublishRetry.kind(of: Self.error(.noResponders), hasMessageID: hasID) == .unavailable)
            #expect(
                PublishRetry.kind(of: Self.error(.serverError, jetStream: 10008), hasMessageID: hasID) == .unavailable
            )
            #expect(
                PublishRetry.kind(of: Self.error(.clientError, jetStream: 10009), hasMessageID: hasID) == .unavailable
            )
            // Definite refusals and a closed connection are not retried.
            #expect(PublishRetry.kind(of: Self.error(.serverError, jetStream: 10077), hasMessageID: hasID) == nil)
            #expect(PublishRetry.kind(of: Self.error(.serverError), hasMessageID: hasID) == nil)
            #expect(
                PublishRetry.kind(of: Self.error(.wrongExpectedSequence, jetStream: 10071), hasMessageID: hasID) == nil
            )
            #expect(PublishRetry.kind(of: Self.error(.messageTooLarge), hasMessageID: hasID) == nil)
            #expect(PublishRetry.kind(of: Self.error(.connectionClosed), hasMessageID: hasID) == nil)
            #expect(PublishRetry.kind(of: Self.error(.invalidSubject), hasMessageID: hasID) == nil)
        }
        // The message may be stored: sending it again is safe only when the stream de-duplicates it.
        #expect(PublishRetry.kind(of: Self.error(.publishTimedOut), hasMessageID: false) == nil)
        #expect(PublishRetry.kind(of: Self.error(.publishTimedOut), hasMessageID: true) == .unacknowledged)
        #expect(PublishRetry.kind(of: Self.error(.connectionFailed), hasMessageID: false) == nil)
        #expect(PublishRetry.kind(of: Self.error(.connectionFailed), hasMessageID: true) == .unacknowledged)
    }

    @Test func attemptsBackOffThenLookForTheStreamThenGoOnUntilTheDeadline() {
        let policy = Policy()
        func step(_ attempt: Int, _ kind: PublishRetry.Kind, at elapsed: Duration, checked: Bool = false)
            -> PublishRetry.Step
        {
            PublishRetry.step(after: attempt, kind: kind, elapsed: elapsed, streamChecked: checked, policy: policy)
        }
        #expect(step(1, .unavailable, at: .zero) == .retry(after: .milliseconds(250)))
        #expect(step(2, .unavailable, at: .milliseconds(250)) == .retry(after: .milliseconds(500)))
        // After maxAttempts the store asks once whether a stream covers the subject…
        #expect(step(3, .unavailable, at: .milliseconds(750)) == .lookUpStream)
        // …and, when one does, goes on at the longest pause, not stopping at maxAttempts.
        #expect(step(3, .unavailable, at: .milliseconds(800), checked: true) == .retry(after: .seconds(1)))
        #expect(step(12, .unavailable, at: .seconds(9), checked: true) == .retry(after: .seconds(1)))
        // A timed-out message with an id needs no lookup: its stream answered before.
        #expect(step(3, .unacknowledged, at: .seconds(5)) == .retry(after: .seconds(1)))
        // The last pause ends at the deadline, where one more attempt is made; then it stops.
        #expect(step(20, .unavailable, at: .milliseconds(14_600), checked: true) == .retry(after: .milliseconds(400)))
        #expect(step(21, .unavailable, at: .seconds(15), checked: true) == .giveUp)
        #expect(step(2, .unacknowledged, at: .seconds(16)) == .giveUp)
    }

    @Test func aZeroDeadlineMeansNoRetries() {
        let policy = Policy(
            maxAttempts: 3,
            schedule: .exponential(initial: .milliseconds(250), multiplier: 2, maximum: .seconds(1)),
            deadline: .zero
        )
        #expect(
            PublishRetry.step(after: 1, kind: .unavailable, elapsed: .zero, streamChecked: false, policy: policy)
                == .giveUp
        )
    }

    @Test func pausesDoubleUpToTheLongestPauseWithoutOverflowing() {
        let policy = Policy()
        #expect(policy.deadline == .seconds(15))
        #expect(policy.schedule == .exponential(initial: .milliseconds(250), multiplier: 2, maximum: .seconds(1)))
        #expect(
            (1...4).map(policy.delay(afterAttempt:)) == [
                .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(1),
            ]
        )
        let steep = Policy(
            maxAttempts: 3,
            schedule: .exponential(initial: .seconds(1), multiplier: 1e300, maximum: Policy.longestDelay)
        )
        #expect(steep.delay(afterAttempt: 1_000_000) == Policy.longestDelay)
        // A longer maximum is refused at creation; the pause saturates at a day all the same.
        #expect(
            Policy(
                maxAttempts: 3,
                schedule: .exponential(initial: .seconds(1), multiplier: 2, maximum: .seconds(86_400 * 365))
            ).problem != nil
        )
        let flat = Policy(
            maxAttempts: 3,
            schedule: .exponential(initial: .milliseconds(100), multiplier: 1, maximum: .seconds(1))
        )
        #expect(flat.delay(afterAttempt: 50) == .milliseconds(100))
    }

    @Test func unusableBackoffsAreNamed() {
        #expect(Policy().problem == nil)
        #expect(
            Policy(maxAttempts: 0, schedule: .exponential(initial: .zero, multiplier: 2, maximum: .seconds(1))).problem?
                .contains("maxAttempts") == true
        )
        for multiplier in [Double.nan, .infinity, -.infinity, 0.5, -2] {
            #expect(
                Policy(
                    maxAttempts: 3,
                    schedule: .exponential(initial: .zero, multiplier: multiplier, maximum: .seconds(1))
                ).problem?.contains("multiplier")
                    == true
            )
        }
        #expect(
            Policy(
                maxAttempts: 3,
                schedule: .exponential(initial: .milliseconds(-1), multiplier: 2, maximum: .seconds(1))
            ).problem?.contains("initial delay") == true
        )
        #expect(
            Policy(maxAttempts: 3, schedule: .exponential(initial: .zero, multiplier: 2, maximum: .seconds(-1)))
                .problem?.contains("maximum delay") == true
        )
        #expect(
            Policy(
                maxAttempts: 3,
                schedule: .exponential(initial: .zero, multiplier: 2, maximum: .seconds(1)),
                deadline: .seconds(-1)
            ).problem?.contains("deadline") == true
        )
    }

    @Test func theFinalErrorSaysWhatWasSeen() {
        let policy = Policy()
        let noResponders = Self.error(.noResponders)
        let none = PublishRetry.finalError(
            noResponders,
            kind: .unavailable,
            lookup: PublishRetry.StreamLookup.none,
            natsSubject: "dev.orders.1",
            attempts: 3,
            elapsed: .milliseconds(760),
            policy: policy
        )
        #expect(none.code == .noResponders)
        #expect(none.message.hasPrefix("no stream covers dev.orders.1"))
        #expect(none.message.contains("3 attempt(s) over 0.8 s"))
        #expect(none.message.contains("ensureStream(\"orders\")"))
        #expect(none.subject == "orders.1")

        let covered = PublishRetry.finalError(
            noResponders,
            kind: .unavailable,
            lookup: .covered(by: "dev-orders"),
            natsSubject: "dev.orders.1",
            attempts: 17,
            elapsed: .milliseconds(15_020),
            policy: policy
        )
        #expect(covered.code == .streamUnavailable)
        #expect(covered.isRetriable)
        #expect(covered.stream == "dev-orders")
        #expect(
            covered.message.hasPrefix("the stream dev-orders for orders.1 is temporarily unavailable: no responders")
        )
        #expect(covered.message.contains("15.0 s"))
        #expect(!covered.message.contains("ensureStream"))

        let election = PublishRetry.finalError(
            Self.error(.serverError, jetStream: 10008),
            kind: .unavailable,
            lookup: .unknown,
            natsSubject: "dev.orders.1",
            attempts: 17,
            elapsed: .seconds(15),
            policy: policy
        )
        #expect(election.code == .streamUnavailable)
        #expect(election.message.contains("JetStream error 10008"))

        let timedOut = PublishRetry.finalError(
            Self.error(.publishTimedOut),
            kind: .unacknowledged,
            lookup: nil,
            natsSubject: "dev.orders.1",
            attempts: 4,
            elapsed: .seconds(20),
            policy: policy
        )
        #expect(timedOut.code == .publishTimedOut)
        #expect(timedOut.message.contains("may or may not be stored"))
    }
}

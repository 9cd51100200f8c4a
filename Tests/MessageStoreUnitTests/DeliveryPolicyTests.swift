import Testing

@testable import MessageStore

/// The delivery decision without a server: every boundary of attempts, deliveries and envelopes.
@Suite("Delivery policy")
struct DeliveryPolicyTests {
    let policy = DeliveryPolicy(
        maxAttempts: 3,
        maxDeliveries: 23,
        retrySchedule: .exponential(initial: .seconds(1), multiplier: 2, maximum: .seconds(60)),
        deadLetterUnknownTypes: false
    )

    func facts(
        delivery: Int,
        runs: Int? = 0,
        envelope: DeliveryPolicy.Envelope = .handled(type: "Job"),
        stopping: Bool = false
    ) -> DeliveryPolicy.Facts {
        DeliveryPolicy.Facts(deliveryCount: delivery, recordedRuns: runs, envelope: envelope, stopping: stopping)
    }

    @Test func firstDeliveryIsTheFirstAttemptAndRecordsNothingBeforeRunning() {
        #expect(DeliveryPolicy.needsRecordedRuns(deliveryCount: 1) == false)
        // Whatever a stale record says, a first delivery has never run.
        #expect(
            policy.admit(facts(delivery: 1, runs: 7))
                == .run(attempt: 1, isLastAttempt: false, recordBeforeRunning: false)
        )
    }

    @Test func aRedeliveryIsTheAttemptAfterTheRecordedRunsAndIsRecordedFirst() {
        #expect(DeliveryPolicy.needsRecordedRuns(deliveryCount: 2))
        #expect(
            policy.admit(facts(delivery: 2, runs: 1))
                == .run(attempt: 2, isLastAttempt: false, recordBeforeRunning: true)
        )
        #expect(
            policy.admit(facts(delivery: 5, runs: 2))
                == .run(attempt: 3, isLastAttempt: true, recordBeforeRunning: true)
        )
    }

    @Test func deliveriesThatNeverRanUseNoAttempt() {
        // Returned unstarted four times (stops, crashes while queued): still the first attempt.
        #expect(
            policy.admit(facts(delivery: 5, runs: 0))
                == .run(attempt: 1, isLastAttempt: false, recordBeforeRunning: true)
        )
    }

    @Test func aMessageThatRanEveryAttemptAndCameBackIsTerminatedUnrun() {
        // The worker died during the last attempt (the run was recorded before it started).
        guard case .terminate(.tooManyDeliveries, let reason) = policy.admit(facts(delivery: 4, runs: 3)) else {
            Issue.record("not terminated")
            return
        }
        #expect(reason.contains("started 3 times"))
        guard case .terminate(.tooManyDeliveries, _) = policy.admit(facts(delivery: 9, runs: 5)) else {
            Issue.record("not terminated")
            return
        }
    }

    @Test func theServersLastDeliveryIsAlwaysTheLastAttempt() {
        #expect(
            policy.admit(facts(delivery: 23, runs: 0))
                == .run(attempt: 1, isLastAttempt: true, recordBeforeRunning: true)
        )
        // Failing then: terminated, not retried (the server would not deliver it again).
        let settlement = policy.settle(
            attempt: 1,
            isLastAttempt: true,
            recorded: true,
            outcome: .failed(description: "boom")
        )
        guard case .terminate(.handlerFailed, let reason) = settlement else {
            Issue.record("not terminated: \(settlement)")
            return
        }
        #expect(reason.contains("max deliveries 23"))
        #expect(reason.contains("boom"))
    }

    @Test func anUnreadableRecordPostponesUnlessTheServerGivesUp() {
        #expect(policy.admit(facts(delivery: 3, runs: nil)) == .postpone(after: .seconds(1)))
        // No record and no later delivery: run it as the last attempt, counting every delivery as one.
        #expect(
            policy.admit(facts(delivery: 23, runs: nil))
                == .run(attempt: 3, isLastAttempt: true, recordBeforeRunning: true)
        )
    }

    @Test func stoppingGivesBackUnstartedExceptOnTheServersLastDelivery() {
        #expect(policy.admit(facts(delivery: 1, stopping: true)) == .returnUnstarted)
        #expect(policy.admit(facts(delivery: 4, runs: 3, stopping: true)) == .returnUnstarted)
        #expect(
            policy.admit(facts(delivery: 23, runs: 1, stopping: true))
                == .run(attempt: 2, isLastAttempt: true, recordBeforeRunning: true)
        )
    }

    @Test func poisonIsTerminatedAtOnceWithItsCause() {
        guard
            case .terminate(.malformedEnvelope, let reason) = policy.admit(
                facts(delivery: 1, envelope: .malformed(detail: "not JSON"))
            )
        else {
            Issue.record("malformed not terminated")
            return
        }
        #expect(reason.contains("not JSON"))
        guard
            case .terminate(.undecodableData, let detail) = policy.admit(
                facts(delivery: 1, envelope: .undecodable(type: "Job", detail: "missing id"))
            )
        else {
            Issue.record("undecodable not terminated")
            return
        }
        #expect(detail.contains("Job") && detail.contains("missing id"))
    }

    @Test func unknownTypesAreSkippedOrDeadLetteredAsConfigured() {
        #expect(policy.admit(facts(delivery: 1, envelope: .unknownType("Other"))) == .skip)
        var strict = policy
        strict.deadLetterUnknownTypes = true
        #expect(
            strict.admit(facts(delivery: 1, envelope: .unknownType("Other")))
                == .terminate(.unknownType, reason: "no handler for message type Other")
        )
    }

    @Test func successAcknowledgesOnEveryAttempt() {
        for attempt in 1...3 {
            #expect(
                policy.settle(attempt: attempt, isLastAttempt: attempt == 3, recorded: attempt > 1, outcome: .succeeded)
                    == .ack
            )
        }
    }

    @Test func aFailureBeforeTheLastAttemptIsRetriedAfterTheScheduleAndRecordedWhenNotYet() {
        // First attempt: nothing recorded before it ran, so the failure records one run.
        #expect(
            policy.settle(attempt: 1, isLastAttempt: false, recorded: false, outcome: .failed(description: "x"))
                == .retry(after: .seconds(1), record: 1)
        )
        // A redelivery's run was recorded before it started.
        #expect(
            policy.settle(attempt: 2, isLastAttempt: false, recorded: true, outcome: .failed(description: "x"))
                == .retry(after: .seconds(2), record: nil)
        )
    }

    @Test func aFailureOnTheLastAttemptTerminates() {
        let settlement = policy.settle(
            attempt: 3,
            isLastAttempt: true,
            recorded: true,
            outcome: .failed(description: "still broken")
        )
        #expect(settlement == .terminate(.handlerFailed, reason: "the handler failed on attempt 3 of 3: still broken"))
    }

    @Test func terminationAskedByTheHandlerTerminatesOnAnyAttempt() {
        #expect(
            policy.settle(attempt: 1, isLastAttempt: false, recorded: false, outcome: .terminated(reason: "gone"))
                == .terminate(.terminatedByHandler, reason: "gone")
        )
    }

    @Test func anInterruptedRunGoesBackUncounted() {
        // Nothing was recorded for a first delivery's run; a recorded run is taken back.
        #expect(
            policy.settle(attempt: 1, isLastAttempt: false, recorded: false, outcome: .interrupted)
                == .giveBack(record: nil)
        )
        #expect(
            policy.settle(attempt: 2, isLastAttempt: false, recorded: true, outcome: .interrupted)
                == .giveBack(record: 1)
        )
    }

    @Test func theDefaultConfigurationLeavesRoomForTwentyUnstartedDeliveries() {
        let configuration = Subscription.Configuration()
        #expect(configuration.deliveryPolicy.maxAttempts == 3)
        #expect(configuration.deliveryPolicy.maxDeliveries == 23)
        var huge = Subscription.Configuration()
        huge.maxAttempts = .max
        #expect(huge.effectiveMaxDeliveries == .max)
    }

    @Test func prefetchShrinksWithSlowHandlersAndStaysWholeForFastOnes() {
        let budget = PrefetchBudget(maxBatch: 256, concurrency: 1, batchesInFlight: 2, ackWait: .seconds(30))
        #expect(budget.batchSize == 256)
        budget.record(.microseconds(20))
        #expect(budget.batchSize == 256)
        for _ in 0..<100 { budget.record(.milliseconds(150)) }
        // A second of 150 ms handlers, over two batches in flight.
        #expect(budget.batchSize == 3)
        let parallel = PrefetchBudget(maxBatch: 256, concurrency: 8, batchesInFlight: 1, ackWait: .seconds(30))
        parallel.record(.milliseconds(100))
        #expect(parallel.batchSize == 80)
        let short = PrefetchBudget(maxBatch: 256, concurrency: 1, batchesInFlight: 1, ackWait: .milliseconds(400))
        short.record(.milliseconds(100))
        #expect(short.batchSize == 2)
    }

    @Test func ledgerNamesEscapeWhatBucketsAndKeysCannotHold() {
        #expect(AttemptLedger.bucketName(prefix: "") == "message-store-attempts")
        #expect(AttemptLedger.bucketName(prefix: "dev") == "message-store-attempts-dev")
        #expect(AttemptLedger.bucketName(prefix: "a.b") == "message-store-attempts-a_2eb")
        #expect(AttemptLedger.bucketName(prefix: "a_2eb") != AttemptLedger.bucketName(prefix: "a.b"))
        #expect(AttemptLedger.escapeKeyToken("dev-orders") == "dev-orders")
        #expect(AttemptLedger.escapeKeyToken("2026-12-01T21:33:55.9Z") == "2026-12-01T21=3a33=3a55=2e9Z")
        #expect(AttemptLedger.escapeKeyToken("a=3a") == "a=3d3a")
    }

    @Test func aLedgerTrustsItsOwnCountOnlyForTheVeryNextDelivery() {
        let recent = RecentRuns()
        #expect(recent.runs(sequence: 7, deliveredAgainAs: 2) == nil)
        recent.remember(runs: 1, sequence: 7, deliveryCount: 1)
        // The next delivery: nobody else had the message since this worker wrote its count.
        #expect(recent.runs(sequence: 7, deliveredAgainAs: 2) == 1)
        // A delivery in between went elsewhere (or was lost): the bucket must be read.
        #expect(recent.runs(sequence: 7, deliveredAgainAs: 3) == nil)
        #expect(recent.runs(sequence: 8, deliveredAgainAs: 2) == nil)
        recent.remember(runs: 2, sequence: 7, deliveryCount: 2)
        #expect(recent.runs(sequence: 7, deliveredAgainAs: 3) == 2)
        recent.forget(sequence: 7)
        #expect(recent.runs(sequence: 7, deliveredAgainAs: 3) == nil)
    }

    @Test func aLedgerForgetsACountTheBucketDidNotStoreButNotALaterOne() {
        let recent = RecentRuns()
        recent.remember(runs: 1, sequence: 7, deliveryCount: 1)
        recent.remember(runs: 2, sequence: 7, deliveryCount: 2)
        // The first write's failure arrives after the second was sent: the second stands.
        recent.forget(PendingRecord.Written(runs: 1, sequence: 7, deliveryCount: 1))
        #expect(recent.runs(sequence: 7, deliveredAgainAs: 3) == 2)
        recent.forget(PendingRecord.Written(runs: 2, sequence: 7, deliveryCount: 2))
        #expect(recent.runs(sequence: 7, deliveredAgainAs: 3) == nil)
    }

    @Test func aSentPublishGivesItsOutcomeWhetherItArrivesBeforeOrAfterTheWait() async throws {
        let ack = PublishAck(stream: "s", sequence: 3, isDuplicate: false)
        let early = SentPublish(subject: "a")
        early.settle(.success(ack))
        #expect(try await early.outcome().get() == ack)
        #expect(early.failure == nil)

        let late = SentPublish(subject: "b")
        async let outcome = late.outcome()
        let deadline = ContinuousClock.now + .seconds(10)
        while !late.isAwaited && ContinuousClock.now < deadline { await Task.yield() }
        #expect(late.isAwaited)
        // Settled from elsewhere, as the inbox's delivery thread does, while the wait is suspended.
        Task.detached { late.settle(.success(ack)) }
        #expect(try await outcome.get() == ack)

        let refused = SentPublish(
            subject: "c",
            failedWith: MessageStoreError(code: .permissionDenied, message: "no", subject: "c")
        )
        #expect(refused.failure?.code == .permissionDenied)
        #expect(throws: MessageStoreError.self) { try refused.failure.map { throw $0 } }
    }

    @Test func aLedgerRemembersABoundedNumberOfCountsOldestForgottenFirst() {
        let recent = RecentRuns()
        let total = UInt64(RecentRuns.capacity * 3)
        for sequence in 1...total {
            recent.remember(runs: 1, sequence: sequence, deliveryCount: 1)
        }
        let kept = (1...total).filter { recent.runs(sequence: $0, deliveredAgainAs: 2) != nil }
        #expect(kept.count == RecentRuns.capacity)
        #expect(kept.first == total - UInt64(RecentRuns.capacity) + 1)
        #expect(kept.last == total)
    }
}

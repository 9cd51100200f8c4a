/// The delivery decision of a worker, as a pure function of what is known about one delivery:
/// whether to run the handler (and which attempt that is), and what to tell the server afterwards.
///
/// Attempts count runs of the handler, not deliveries. The server counts every delivery, including
/// those that never reached a handler: messages prefetched and returned at a graceful stop, or
/// still queued in a worker that crashed. So the worker keeps its own count, the *recorded runs*
/// (``AttemptLedger``), and the server's count only bounds the whole thing:
///
/// - a first delivery has never run: it is attempt 1, and nothing is recorded before it runs (the
///   hot path costs nothing);
/// - a redelivery reads the recorded runs `r`: it is attempt `r + 1`, recorded *before* the handler
///   starts (the count is on the wire before it runs; the server's acknowledgement is not waited
///   for), so a handler that kills the process is still counted;
/// - a failure that will be retried is recorded ahead of the negative acknowledgement, on the same
///   connection;
/// - a count the server fails to store leaves an older one: one more attempt, never one fewer;
/// - a message whose handler already ran `maxAttempts` times and comes back (the worker died during
///   its last attempt) is terminated without running;
/// - the server's last delivery (`maxDeliveries`) is always the last attempt, whatever was
///   recorded: a message is never left undelivered on the server without a dead letter.
///
/// Only a handler that killed the process during a *first* delivery goes unrecorded: it runs at
/// most once more than `maxAttempts`, and its attempt numbers count from the delivery after that
/// crash.
struct DeliveryPolicy: Sendable, Equatable {
    var maxAttempts: Int
    /// The server's MaxDeliver for the consumer.
    var maxDeliveries: Int
    var retrySchedule: RetrySchedule
    var deadLetterUnknownTypes: Bool

    /// What the envelope of a delivery turned out to be.
    enum Envelope: Equatable {
        case handled(type: String)
        case unknownType(String)
        case malformed(detail: String)
        case undecodable(type: String, detail: String)
    }

    /// What is known about a delivery before its handler runs.
    struct Facts: Equatable {
        /// The server's delivery count (1 on the first delivery).
        var deliveryCount: Int
        /// How many runs of the handler are recorded for this message; nil when the record could
        /// not be read. Only read for redeliveries: a first delivery has none.
        var recordedRuns: Int?
        var envelope: Envelope
        /// Whether the worker is stopping, so the message must go back unstarted.
        var stopping: Bool
    }

    /// Why a message is given up.
    typealias Cause = DeadLetter.Cause

    /// What to do before running a handler.
    enum Admission: Equatable {
        /// Run the handler: attempt number, whether it is the last, and whether this run must be
        /// recorded before the handler starts.
        case run(attempt: Int, isLastAttempt: Bool, recordBeforeRunning: Bool)
        /// Acknowledge without running (no handler for the type).
        case skip
        /// Give the message back at once, unstarted: no attempt used.
        case returnUnstarted
        /// Terminate (and dead-letter) without running.
        case terminate(Cause, reason: String)
        /// The record of runs could not be read: offer it again later, unstarted.
        case postpone(after: Duration)
    }

    /// How a handler run ended.
    enum Outcome: Equatable {
        case succeeded
        case failed(description: FailureDescription)
        /// The handler asked for termination (by throwing ``MessageTermination`` or calling
        /// `terminate(reason:)`).
        case terminated(reason: String)
        /// The worker interrupted the handler (shutdown deadline, task cancellation): the run does
        /// not count.
        case interrupted
    }

    /// What to tell the server after a run.
    enum Settlement: Equatable {
        case ack
        /// Negatively acknowledge with this delay, after recording this many runs (nil: the record
        /// already says so).
        case retry(after: Duration, record: Int?)
        /// Give it back at once, not counted: the record goes back to this many runs (nil: nothing
        /// was recorded for this run).
        case giveBack(record: Int?)
        case terminate(Cause, reason: String)
    }

    /// Whether the recorded runs of a delivery must be read before deciding.
    static func needsRecordedRuns(deliveryCount: Int) -> Bool {
        deliveryCount > 1
    }

    func admit(_ facts: Facts) -> Admission {
        let serverGivesUp = facts.deliveryCount >= maxDeliveries
        // Given back now, it would never be delivered again: the server's last delivery runs.
        if facts.stopping && !serverGivesUp { return .returnUnstarted }
        var runs = 0
        if Self.needsRecordedRuns(deliveryCount: facts.deliveryCount) {
            if let recorded = facts.recordedRuns {
                runs = max(recorded, 0)
            } else if serverGivesUp {
                // No record, and no delivery after this one: the most attempts it may have had.
                runs = min(facts.deliveryCount, maxAttempts) - 1
            } else {
                return .postpone(after: retrySchedule.delay(afterAttempt: 1))
            }
        }
        if runs >= maxAttempts {
            return .terminate(
                .tooManyDeliveries,
                reason: "its handler was started \(runs) times, the \(maxAttempts) attempts allowed, "
                    + "and it was delivered again (a worker probably died during the last attempt)"
            )
        }
        switch facts.envelope {
        case .malformed(let detail):
            return .terminate(
                .malformedEnvelope,
                reason: "not a valid envelope (a JSON object with a string \"type\" and an object \"data\"): \(detail)"
            )
        case .undecodable(let type, let detail):
            return .terminate(.undecodableData, reason: "the data of the \(type) message does not decode: \(detail)")
        case .unknownType(let type):
            return deadLetterUnknownTypes
                ? .terminate(.unknownType, reason: "no handler for message type \(type)") : .skip
        case .handled:
            let attempt = runs + 1
            return .run(
                attempt: attempt,
                isLastAttempt: attempt >= maxAttempts || serverGivesUp,
                recordBeforeRunning: Self.needsRecordedRuns(deliveryCount: facts.deliveryCount)
            )
        }
    }

    /// What to do after attempt `attempt` of a run admitted with `isLastAttempt` ended with
    /// `outcome`; `recorded` says whether the run was recorded before it started.
    func settle(attempt: Int, isLastAttempt: Bool, recorded: Bool, outcome: Outcome) -> Settlement {
        switch outcome {
        case .succeeded:
            return .ack
        case .terminated(let reason):
            return .terminate(.terminatedByHandler, reason: reason)
        case .interrupted:
            return .giveBack(record: recorded ? attempt - 1 : nil)
        case .failed(let description):
            if isLastAttempt {
                let limit =
                    attempt >= maxAttempts
                    ? "\(maxAttempts)"
                    : "\(maxAttempts), and the server delivers it no more (max deliveries \(maxDeliveries))"
                return .terminate(
                    .handlerFailed,
                    reason: "the handler failed on attempt \(attempt) of \(limit): \(description.text)"
                )
            }
            return .retry(after: retrySchedule.delay(afterAttempt: attempt), record: recorded ? nil : attempt)
        }
    }
}

/// What a handler threw, described only when the text is read: the first description of an
/// error type goes through the runtime's reflection and costs more than the rest of an attempt,
/// and an attempt that will be retried needs none before its negative acknowledgement.
struct FailureDescription: Equatable, Sendable, ExpressibleByStringLiteral {
    private let error: (any Error)?
    private let literal: String

    init(_ error: any Error) {
        self.error = error
        literal = ""
    }

    init(stringLiteral text: String) {
        error = nil
        literal = text
    }

    var text: String {
        error.map { "\($0)" } ?? literal
    }

    static func == (left: FailureDescription, right: FailureDescription) -> Bool {
        left.text == right.text
    }
}

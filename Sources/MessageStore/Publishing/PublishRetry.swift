/// Which failed publishes are sent again, and when to stop: the decisions behind
/// ``MessageStore/Configuration/publishRetry``, as pure functions of what a publish saw.
///
/// A failover looks like this from a publisher: while a replicated stream elects a new leader
/// (4–7 s for three replicas here), nobody listens on its subjects and every publish gets
/// *no responders* at once; a publisher whose server died also loses the acknowledgements in
/// flight (a timeout) until cnats reconnects to another. Publishes are therefore retried
/// until an overall deadline, not for a number of attempts.
enum PublishRetry {
    /// Why a failure may be sent again.
    enum Kind: Equatable, Sendable {
        /// Nothing stored the message: no responders, or JetStream said it is temporarily
        /// unavailable (leader election). Always safe to send again.
        case unavailable
        /// The message may have been stored: the acknowledgement did not come in time, or the
        /// connection failed while it was on its way. Sent again only when it has an id
        /// (`Nats-Msg-Id`), which the stream de-duplicates.
        case unacknowledged
    }

    /// Whether and why a publish that failed with `error` may be sent again.
    static func kind(of error: MessageStoreError, hasMessageID: Bool) -> Kind? {
        switch error.code {
        case .noResponders:
            return .unavailable
        case .serverError, .clientError:
            guard error.jetStreamError?.meansUnavailable == true else { return nil }
            return .unavailable
        case .publishTimedOut, .connectionFailed:
            return hasMessageID ? .unacknowledged : nil
        default:
            return nil
        }
    }

    /// What to do after a failed attempt.
    enum Step: Equatable, Sendable {
        /// Send again after this pause.
        case retry(after: Duration)
        /// Find out whether any stream covers the subject, then decide again.
        case lookUpStream
        /// Stop: the deadline has passed.
        case giveUp
    }

    /// The step after attempt number `attempt` (1-based) failed for a retriable reason, with
    /// `elapsed` since the first attempt began.
    ///
    /// Once ``MessageStore/Configuration/PublishRetryPolicy/maxAttempts`` attempts found no responders, the
    /// store looks for the stream once (`streamChecked` false): a subject no stream covers fails
    /// then, as it always did; one whose stream exists keeps trying until the deadline.
    static func step(
        after attempt: Int,
        kind: Kind,
        elapsed: Duration,
        streamChecked: Bool,
        policy: MessageStore.Configuration.PublishRetryPolicy
    ) -> Step {
        if kind == .unavailable, !streamChecked, attempt >= policy.maxAttempts {
            return .lookUpStream
        }
        guard elapsed < policy.deadline else { return .giveUp }
        // The last pause ends at the deadline, so that one attempt is made there.
        return .retry(after: min(policy.delay(afterAttempt: attempt), policy.deadline - elapsed))
    }

    /// What the store learnt about the stream for a subject.
    enum StreamLookup: Equatable, Sendable {
        /// This stream covers the subject.
        case covered(by: String)
        /// The server says no stream covers the subject.
        case none
        /// The lookup failed too (the cluster is busy electing): assume the stream exists.
        case unknown
    }

    /// The error a caller sees when retrying ends, saying what was seen.
    /// - Parameters:
    ///   - last: The last attempt's error.
    ///   - kind: Why it was retried.
    ///   - lookup: What the stream lookup found, if one was made.
    ///   - attempts: How many attempts were made.
    ///   - elapsed: How long they took.
    static func finalError(
        _ last: MessageStoreError,
        kind: Kind,
        lookup: StreamLookup?,
        natsSubject: String,
        attempts: Int,
        elapsed: Duration,
        policy: MessageStore.Configuration.PublishRetryPolicy
    ) -> MessageStoreError {
        var error = last
        let subject = last.subject ?? natsSubject
        let tried = "\(attempts) attempt(s) over \(describe(elapsed))"
        switch (kind, lookup) {
        case (.unavailable, .none?):
            error.code = .noResponders
            error.message =
                "no stream covers \(natsSubject): no stream answered a publish to it after \(tried); "
                + "make sure a stream covers the subject (ensureStream(\"\(Naming.category(of: subject))\"))"
        case (.unavailable, _):
            let stream: String
            if case .covered(let name)? = lookup {
                stream = "the stream \(name)"
                error.stream = name
            } else {
                stream = "the stream (if any)"
            }
            error.code = .streamUnavailable
            error.message =
                "\(stream) for \(subject) is temporarily unavailable: \(reason(last)) for \(tried) "
                + "(a leader election, or too few of its servers up); publishRetry.deadline is "
                + "\(describe(policy.deadline))"
        case (.unacknowledged, _):
            error.message =
                "publishing to \(subject) was not acknowledged after \(tried); the message may or may not "
                + "be stored (its id de-duplicates a later publish): \(last.message)"
        }
        return error
    }

    private static func reason(_ error: MessageStoreError) -> String {
        if error.code == .noResponders { return "no responders" }
        return "JetStream error \(error.jetStreamErrorCode.map(String.init) ?? "") (\(error.message))"
    }

    /// A duration in seconds with one decimal, such as `10.2 s`.
    static func describe(_ duration: Duration) -> String {
        let tenths = (duration / .milliseconds(100)).rounded()
        return "\(Int(tenths) / 10).\(Int(tenths) % 10) s"
    }
}

import CoreMetrics
import Logging

/// The one publisher behind every publish: typed and raw messages, pipelined batches, dead
/// letters, snapshots and the attempt ledger all go through it, so each gets the same wire form
/// and rides out an unavailable stream the same way (``MessageStore/Configuration/publishRetry``;
/// the decisions are ``PublishRetry``'s, this carries them out).
struct Publisher: Sendable {
    let jetStream: JetStream
    let naming: Naming
    /// How long a publish waits for its acknowledgement unless told otherwise.
    let timeout: Duration
    let retry: MessageStore.Configuration.PublishRetryPolicy
    /// The most pipelined publishes waiting for their acknowledgement at once.
    let maxInFlight: Int
    let logger: Logger
    let bodyCoding: BodyCoding
    let metrics: PublishMetrics

    init(jetStream: JetStream, naming: Naming, configuration: MessageStore.Configuration, logger: Logger) {
        self.jetStream = jetStream
        self.naming = naming
        timeout = configuration.publishTimeout
        retry = configuration.publishRetry
        maxInFlight = max(1, configuration.maxPublishesInFlight)
        self.logger = logger
        bodyCoding = configuration.bodyCoding
        metrics = PublishMetrics(prefix: naming.prefix)
    }

    /// Publishes `messages` with their acknowledgements in flight together, then sends again
    /// what failed for a reason the retry policy retries; one result per message, in order.
    func publish(
        contentsOf messages: [OutgoingMessage],
        timeout: Duration? = nil
    ) async -> [Result<PublishAck, MessageStoreError>] {
        guard let tracer = MessageTracing.tracer else {
            let results = await publishUntraced(contentsOf: messages, timeout: timeout)
            results.forEach(metrics.record)
            return results
        }
        // One PRODUCER span a message, its context in the message's own headers, so that a
        // message sent again carries it too.
        var messages = messages
        let spans = messages.indices.map { index in
            let (subject, messageType) = (messages[index].subject, messages[index].messageType)
            return MessageTracing.startPublish(
                tracer,
                subject: subject,
                messageType: messageType,
                headers: &messages[index].headers
            )
        }
        let results = await publishUntraced(contentsOf: messages, timeout: timeout)
        for (span, result) in zip(spans, results) {
            MessageTracing.end(span, with: result)
            metrics.record(result)
        }
        return results
    }

    private func publishUntraced(
        contentsOf messages: [OutgoingMessage],
        timeout: Duration?
    ) async -> [Result<PublishAck, MessageStoreError>] {
        let started = ContinuousClock.now
        let publisher = jetStream.startPipelined(
            count: messages.count,
            timeout: timeout ?? self.timeout,
            maxInFlight: maxInFlight
        )
        // Encode in chunks and hand each to the sending thread at once, so that encoding the
        // next chunk overlaps with sending this one.
        let chunkSize = 64
        var chunk: [(Int, Publication)] = []
        chunk.reserveCapacity(chunkSize)
        var previous: Publication?
        for (index, message) in messages.enumerated() {
            do {
                let publication = try makePublication(message, after: previous)
                chunk.append((index, publication))
                previous = publication
            } catch {
                publisher.fail(index: index, with: error)
            }
            if chunk.count == chunkSize {
                publisher.send(chunk)
                chunk.removeAll(keepingCapacity: true)
            }
        }
        publisher.send(chunk)
        publisher.finish()
        var results = await publisher.results()
        nameSubjects(in: &results, of: messages.lazy.map(\.subject))
        return await retryFailed(
            results,
            of: messages,
            timeout: timeout ?? self.timeout,
            since: started
        )
    }

    /// Failures settled by an acknowledgement, a timeout or a close carry no subject; gives
    /// every failure its message's own.
    func nameSubjects(in results: inout [Result<PublishAck, MessageStoreError>], of subjects: some Collection<String>) {
        for (index, subject) in zip(results.indices, subjects) {
            if case .failure(var error) = results[index], error.subject != subject {
                error.subject = subject
                results[index] = .failure(error)
            }
        }
    }

    /// The message as it is sent. `previous`, the publication made just before, saves checking
    /// and prefixing the subject again when it is the same.
    func makePublication(
        _ message: OutgoingMessage,
        after previous: Publication? = nil
    ) throws(MessageStoreError) -> Publication {
        let natsSubject =
            // Compared as bytes, as NATS compares subjects: String equality would take
            // canonically equivalent spellings ("é" and "e\u{301}") for the same subject.
            if let previous, previous.subject.utf8.elementsEqual(message.subject.utf8) {
                previous.natsSubject
            } else {
                try naming.publishSubject(message.subject)
            }
        let body: [UInt8]
        if let encoded = message.encoded {
            body = encoded.body
        } else {
            body = try Envelope.encode(
                message.payload,
                metadata: message.metadata,
                subject: message.subject,
                coding: bodyCoding
            )
        }
        var headers = message.headers
        if let id = message.id {
            headers[MessageHeaderName.messageID] = id
        }
        if let expected = message.expectedLastSubjectSequence {
            headers[MessageHeaderName.expectedLastSubjectSequence] = String(expected)
        }
        return Publication(subject: message.subject, natsSubject: natsSubject, body: body, headers: headers)
    }

    /// Publishes `publication` and waits for its acknowledgement, sending it again as
    /// ``MessageStore/Configuration/publishRetry`` says. Every awaited publish comes here: typed, raw, dead
    /// letters and snapshots.
    ///
    /// With a tracer bootstrapped and `traced`, the publish runs in a PRODUCER span whose context
    /// goes out in the headers; the store's own records (the attempt ledger, snapshots) are
    /// neither traced nor counted in ``PublishMetrics``.
    func publish(
        _ publication: Publication,
        timeout: Duration? = nil,
        messageType: String? = nil,
        traced: Bool = true
    ) async throws(MessageStoreError) -> PublishAck {
        guard traced else { return try await publishRetrying(publication, timeout: timeout) }
        let started = ContinuousClock.now
        var publication = publication
        let span = MessageTracing.tracer.map { tracer in
            MessageTracing.startPublish(
                tracer,
                subject: publication.subject,
                messageType: messageType,
                headers: &publication.headers
            )
        }
        let result: Result<PublishAck, MessageStoreError>
        do {
            result = .success(try await publishRetrying(publication, timeout: timeout))
        } catch {
            result = .failure(error)
        }
        metrics.duration.recordNanoseconds((ContinuousClock.now - started).nanoseconds)
        metrics.record(result)
        if let span { MessageTracing.end(span, with: result) }
        return try result.get()
    }

    private func publishRetrying(
        _ publication: Publication,
        timeout: Duration?
    ) async throws(MessageStoreError) -> PublishAck {
        let timeout = timeout ?? self.timeout
        let policy = retry
        let hasMessageID = publication.headers[MessageHeaderName.messageID] != nil
        let clock = ContinuousClock()
        let start = clock.now
        var attempt = 1
        var lookup: PublishRetry.StreamLookup?
        while true {
            let error: MessageStoreError
            do {
                return try await jetStream.publish(publication, timeout: timeout)
            } catch let failure {
                error = failure
            }
            guard let kind = PublishRetry.kind(of: error, hasMessageID: hasMessageID) else { throw error }
            var step = PublishRetry.step(
                after: attempt,
                kind: kind,
                elapsed: clock.now - start,
                streamChecked: lookup != nil,
                policy: policy
            )
            if step == .lookUpStream || (step == .giveUp && kind == .unavailable && lookup == nil) {
                lookup = await streamLookups(for: [publication.natsSubject])[publication.natsSubject]
                if lookup != PublishRetry.StreamLookup.none {
                    step = PublishRetry.step(
                        after: attempt,
                        kind: kind,
                        elapsed: clock.now - start,
                        streamChecked: true,
                        policy: policy
                    )
                } else {
                    step = .giveUp
                }
            }
            guard case .retry(let pause) = step else {
                throw PublishRetry.finalError(
                    error,
                    kind: kind,
                    lookup: lookup,
                    natsSubject: publication.natsSubject,
                    attempts: attempt,
                    elapsed: clock.now - start,
                    policy: policy
                )
            }
            logger.debug(
                "publish not stored; retrying",
                metadata: [
                    LogKey.subject: "\(publication.subject)", LogKey.attempt: "\(attempt)",
                    "delay": "\(pause)", "reason": "\(error.code)",
                ]
            )
            try await pauseBeforeRetry(pause, subject: publication.subject, lastError: error)
            attempt += 1
        }
    }

    /// Sends again, together and in order, the messages of a pipelined batch that failed for a
    /// reason ``MessageStore/Configuration/publishRetry`` retries, until its deadline; returns the results
    /// with theirs in place.
    func retryFailed(
        _ results: [Result<PublishAck, MessageStoreError>],
        of messages: [OutgoingMessage],
        timeout: Duration,
        since start: ContinuousClock.Instant
    ) async -> [Result<PublishAck, MessageStoreError>] {
        let policy = retry
        let clock = ContinuousClock()
        var results = results
        var attempt = 1
        var lookups: [String: PublishRetry.StreamLookup]?
        while true {
            var pending: [(index: Int, publication: Publication, kind: PublishRetry.Kind)] = []
            for (index, result) in results.enumerated() {
                guard case .failure(let error) = result else { continue }
                let message = messages[index]
                guard
                    let kind = PublishRetry.kind(
                        of: error,
                        hasMessageID: message.id != nil || message.headers[MessageHeaderName.messageID] != nil
                    )
                else { continue }
                // Encoded again rather than kept from the first round: a large batch's bodies
                // are let go once sent.
                do {
                    pending.append((index, try makePublication(message), kind))
                } catch {
                    results[index] = .failure(error)
                }
            }
            guard !pending.isEmpty else { return results }
            let roundKind: PublishRetry.Kind =
                pending.contains { $0.kind == .unavailable } ? .unavailable : .unacknowledged
            var step = PublishRetry.step(
                after: attempt,
                kind: roundKind,
                elapsed: clock.now - start,
                streamChecked: lookups != nil,
                policy: policy
            )
            if step == .lookUpStream || (step == .giveUp && roundKind == .unavailable && lookups == nil) {
                let found = await streamLookups(
                    for: pending.lazy.filter { $0.kind == .unavailable }.map(\.publication.natsSubject)
                )
                lookups = found
                // A subject no stream covers fails now; the others go on.
                pending.removeAll { item in
                    guard item.kind == .unavailable,
                        found[item.publication.natsSubject] == PublishRetry.StreamLookup.none,
                        case .failure(let error) = results[item.index]
                    else { return false }
                    results[item.index] = .failure(
                        PublishRetry.finalError(
                            error,
                            kind: item.kind,
                            lookup: PublishRetry.StreamLookup.none,
                            natsSubject: item.publication.natsSubject,
                            attempts: attempt,
                            elapsed: clock.now - start,
                            policy: policy
                        )
                    )
                    return true
                }
                if pending.isEmpty { return results }
                step = PublishRetry.step(
                    after: attempt,
                    kind: roundKind,
                    elapsed: clock.now - start,
                    streamChecked: true,
                    policy: policy
                )
            }
            guard case .retry(let pause) = step else {
                for item in pending {
                    guard case .failure(let error) = results[item.index] else { continue }
                    results[item.index] = .failure(
                        PublishRetry.finalError(
                            error,
                            kind: item.kind,
                            lookup: lookups?[item.publication.natsSubject],
                            natsSubject: item.publication.natsSubject,
                            attempts: attempt,
                            elapsed: clock.now - start,
                            policy: policy
                        )
                    )
                }
                return results
            }
            do {
                try await pauseBeforeRetry(pause, subject: nil, lastError: nil)
            } catch {
                for item in pending {
                    guard case .failure(let last) = results[item.index] else { continue }
                    var cancelled = error
                    cancelled.subject = last.subject
                    cancelled.message += "; the last attempt failed: \(last.message)"
                    results[item.index] = .failure(cancelled)
                }
                return results
            }
            logger.debug(
                "pipelined publishes not stored; retrying",
                metadata: [LogKey.attempt: "\(attempt)", "count": "\(pending.count)", "delay": "\(pause)"]
            )
            var again = await resend(pending.map(\.publication), timeout: timeout)
            nameSubjects(in: &again, of: pending.lazy.map(\.publication.subject))
            for (item, result) in zip(pending, again) {
                results[item.index] = result
            }
            attempt += 1
        }
    }

    /// Publishes `publications` as one pipelined batch, results in the same order.
    private func resend(_ publications: [Publication], timeout: Duration) async -> [Result<
        PublishAck, MessageStoreError
    >] {
        let publisher = jetStream.startPipelined(
            count: publications.count,
            timeout: timeout,
            maxInFlight: maxInFlight
        )
        let chunkSize = 64
        var start = 0
        while start < publications.count {
            let end = min(start + chunkSize, publications.count)
            publisher.send((start..<end).map { ($0, publications[$0]) })
            start = end
        }
        publisher.finish()
        return await publisher.results()
    }

    /// Sleeps `pause` before a retry; throws ``MessageStoreError/Code/cancelled`` at once when
    /// the task is cancelled.
    private func pauseBeforeRetry(
        _ pause: Duration,
        subject: String?,
        lastError: MessageStoreError?
    ) async throws(MessageStoreError) {
        do {
            try Task.checkCancellation()
            try await Task.sleep(for: pause)
        } catch {
            var message = "publishing\(subject.map { " to \($0)" } ?? "") was cancelled while waiting to retry"
            if let lastError { message += "; the last attempt failed: \(lastError.message)" }
            throw MessageStoreError(code: .cancelled, message: message, subject: subject, underlying: error)
        }
    }

    /// For each NATS subject, whether a stream stores it; at most ``maxStreamLookups`` distinct
    /// subjects are looked up, the others are ``PublishRetry/StreamLookup/unknown``. A lookup
    /// that fails says unknown too.
    func streamLookups(for natsSubjects: some Sequence<String>) async -> [String: PublishRetry.StreamLookup] {
        var lookups: [String: PublishRetry.StreamLookup] = [:]
        for subject in natsSubjects where lookups[subject] == nil {
            guard lookups.count < Self.maxStreamLookups else {
                lookups[subject] = .unknown
                continue
            }
            do {
                let names = try await jetStream.streamNames(storing: subject)
                lookups[subject] = names.first.map { .covered(by: $0) } ?? PublishRetry.StreamLookup.none
            } catch {
                lookups[subject] = .unknown
            }
        }
        return lookups
    }

    /// The most distinct subjects of a pipelined batch looked up for a stream.
    static let maxStreamLookups = 32
}

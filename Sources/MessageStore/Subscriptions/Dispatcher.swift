import CoreMetrics
import Logging
import Tracing

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Runs the per-message pipeline of a subscription: parse → handler lookup → typed decode →
/// handler → acknowledge, retry later, or terminate and dead-letter. What to do at each step is
/// ``DeliveryPolicy``'s decision; this type carries it out.
final class Dispatcher: Sendable {
    /// What the dispatcher needs of its subscription.
    struct Context: Sendable {
        let consumer: String
        /// The application subject filter, for span names.
        let filter: String
        let handlers: MessageHandlers
        let configuration: Subscription.Configuration
        /// What delivered subjects start with before the application subject: the store's
        /// prefix, or a partition's subjects for a member of a partitioned group.
        let deliveredPrefix: String
        /// How message bodies are decoded.
        let bodyCoding: BodyCoding
        let logger: Logger
        /// Publishes dead letters.
        let publisher: Publisher
        /// Tells the server which messages are still being handled.
        let progressThread: ProgressThread
        /// Whether the subscription is stopping (the worker gives back what has not started).
        let isStopping: @Sendable () -> Bool
        /// Where handler starts and acknowledgements are noted, for the subscription's status.
        let activity: SubscriptionActivity
        /// For ``DurableMessages``: every well-formed message goes to the caller instead of a
        /// handler. Nil for a worker.
        var sink: DurableSink? = nil

        /// The application subject of a delivered message.
        func applicationSubject(_ natsSubject: String) -> String {
            Naming.cutting(deliveredPrefix, from: natsSubject)
        }
    }

    let context: Context
    let stream: String
    let deadLetterPrefix: String?
    let decoder: BodyDecoder
    let metrics: SubscriptionMetrics
    let progress: ProgressReporter
    let policy: DeliveryPolicy
    let ledger: AttemptLedger
    let prefetch: PrefetchBudget
    /// Where handling spans go: the tracer active when the subscription started, nil for none.
    let tracer: (any Tracer)?
    /// The name of every handling span.
    let spanName: String
    /// The handlers by message type, batch handlers bound to this worker's collectors.
    let handlerTable: [String: AnyMessageHandler]
    /// Counts the messages that could still join a batch; nil without batch handlers.
    let batching: BatchGate?
    private let configuration: Subscription.Configuration
    private let logger: Logger

    init(
        context: Context,
        stream: String,
        deadLetterPrefix: String?,
        ledger: AttemptLedger,
        prefetch: PrefetchBudget
    ) {
        self.context = context
        self.stream = stream
        self.deadLetterPrefix = deadLetterPrefix
        self.ledger = ledger
        self.prefetch = prefetch
        configuration = context.configuration
        logger = context.logger
        decoder = Envelope.makeDispatchDecoder(for: context.handlers, coding: context.bodyCoding)
        metrics = SubscriptionMetrics(consumer: context.consumer, types: context.handlers.messageTypes)
        progress = ProgressReporter(
            interval: configuration.progressInterval ?? configuration.ackWait / 3,
            thread: context.progressThread
        )
        policy = context.configuration.deliveryPolicy
        tracer = MessageTracing.tracer
        spanName = MessageTracing.processSpanName(filter: context.filter, consumer: context.consumer)
        if context.handlers.hasBatches {
            let gate = BatchGate(slots: configuration.maxConcurrentHandlers)
            batching = gate
            handlerTable = context.handlers.bound(to: gate)
        } else {
            batching = nil
            handlerTable = context.handlers.table
        }
    }

    /// Processes a fetched batch; once the subscription is stopping, messages not yet started go
    /// back to the server at once for another worker.
    func process(_ batch: [FetchedMessage]) async {
        if configuration.maxConcurrentHandlers == 1 {
            batching?.queued(batch.count)
            for message in batch {
                batching?.started()
                await process(message)
                batching?.leave()
            }
            return
        }
        // The whole fetch is counted in at once: a batch being formed does not start while a
        // message of it could still get a slot and join (see ``BatchGate``).
        batching?.queued(batch.count)
        await withTaskGroup(of: Void.self) { group in
            var running = 0
            for message in batch {
                if running >= configuration.maxConcurrentHandlers {
                    await group.next()
                    running -= 1
                }
                if context.isStopping() && !isServersLastDelivery(message) {
                    message.giveBackIfWaiting()
                    batching?.givenBack()
                    continue
                }
                batching?.started()
                group.addTask {
                    await self.process(message)
                    self.batching?.leave()
                }
                running += 1
            }
        }
    }

    /// Whether the server will not deliver `message` again if it is given back.
    func isServersLastDelivery(_ message: FetchedMessage) -> Bool {
        message.deliveryCount >= policy.maxDeliveries
    }

    func process(_ message: FetchedMessage) async {
        await process(message, retryingInPlace: false)
    }

    /// Handles one message. With `retryingInPlace` (ordered dispatch), a failed attempt is not
    /// given back to the server: the message is kept (the progress reports keep it alive), run
    /// again after its retry delay, and this call returns only once it is settled, so the later
    /// messages of its key wait for it.
    func process(_ message: FetchedMessage, retryingInPlace: Bool) async {
        // Given back already (the worker is stopping), or taken by another path.
        guard message.start() else { return }
        let subject = context.applicationSubject(message.natsSubject)
        // Log metadata is built only when a line is actually logged: swift-log takes it as an
        // autoclosure, and formatting it for every message would cost more than dispatching it.
        var log = LogContext(
            consumer: context.consumer,
            subject: subject,
            sequence: message.streamSequence,
            attempt: message.deliveryCount
        )

        var dispatched: Envelope.Dispatched?
        let envelope: DeliveryPolicy.Envelope
        do throws(Envelope.DispatchFailure) {
            let decoded = try Envelope.decodeForDispatch(message.body, using: decoder)
            dispatched = decoded
            let handled =
                context.sink != nil || (handlerTable[decoded.type] != nil && decoded.payload != nil)
            envelope = handled ? .handled(type: decoded.type) : .unknownType(decoded.type)
        } catch {
            switch error {
            case .malformedEnvelope(let detail): envelope = .malformed(detail: detail)
            case .undecodableData(let type, let detail): envelope = .undecodable(type: type, detail: detail)
            }
        }
        log.type = dispatched?.type

        var recordedRuns: Int? = 0
        if DeliveryPolicy.needsRecordedRuns(deliveryCount: message.deliveryCount) {
            do {
                recordedRuns = try await ledger.recordedRuns(
                    sequence: message.streamSequence,
                    deliveryCount: message.deliveryCount
                )
            } catch {
                recordedRuns = nil
                logger.warning(
                    "could not read how often this message ran",
                    metadata: log.metadata.merging([LogKey.error: "\(error)"]) { $1 }
                )
            }
        }
        let facts = DeliveryPolicy.Facts(
            deliveryCount: message.deliveryCount,
            recordedRuns: recordedRuns,
            envelope: envelope,
            stopping: context.isStopping()
        )
        switch policy.admit(facts) {
        case .returnUnstarted:
            report(message.settle(.nak(delay: .zero)), log)
        case .postpone(let delay):
            report(message.settle(.nak(delay: delay)), log)
        case .skip:
            logger.debug("no handler for this message type; acknowledged and skipped", metadata: log.metadata)
            report(message.settle(.ack), log)
            metrics.skipped.increment()
        case .terminate(let cause, let reason):
            await traced(message, subject: subject, envelope: dispatched) { span in
                await giveUp(
                    message,
                    subject: subject,
                    type: dispatched?.type,
                    cause: cause,
                    reason: reason,
                    log: log,
                    span: span
                )
            }
        case .run(var attempt, var isLastAttempt, var recordBeforeRunning):
            guard let dispatched else { return }
            let invocation: Invocation
            if let sink = context.sink {
                invocation = .sink(sink)
            } else if let payload = dispatched.payload, let handler = handlerTable[dispatched.type] {
                invocation = .handler(handler, payload)
            } else {
                return
            }
            while true {
                log.attempt = attempt
                // Written to the socket before the handler starts, so a handler that kills the
                // process is counted; nothing waits for the server's acknowledgement before the
                // run (see ``PendingRecord``).
                var record: PendingRecord?
                if recordBeforeRunning {
                    let sent = await ledger.send(
                        runs: attempt,
                        sequence: message.streamSequence,
                        deliveryCount: message.deliveryCount
                    )
                    if let error = sent.failedToSend {
                        logger.warning(
                            "could not record that this message runs; offering it again later",
                            metadata: log.metadata.merging([LogKey.error: "\(error)"]) { $1 }
                        )
                        report(message.settle(.nak(delay: configuration.retrySchedule.delay(afterAttempt: 1))), log)
                        return
                    }
                    record = sent
                }
                let retryAfter = await traced(message, subject: subject, envelope: dispatched) { span in
                    if let span, span.isRecording {
                        span.updateAttributes { attributes in
                            attributes[MessageTracing.Attribute.attempt] = attempt
                            attributes[MessageTracing.Attribute.maxAttempts] = configuration.maxAttempts
                        }
                    }
                    return await run(
                        invocation,
                        envelope: dispatched,
                        message: message,
                        subject: subject,
                        attempt: attempt,
                        isLastAttempt: isLastAttempt,
                        record: record,
                        retryInPlace: retryingInPlace,
                        log: log,
                        span: span
                    )
                }
                guard let retryAfter else { return }
                // Held here meanwhile; the failed run is recorded, so a crash or a stop from now on
                // leaves the next delivery its right attempt number.
                let waited = (try? await Task.sleep(for: retryAfter)) != nil
                if !waited || (context.isStopping() && !isServersLastDelivery(message)) {
                    logger.notice("stopping: message waiting for its retry given back", metadata: log.metadata)
                    report(message.settle(.nak(delay: .zero)), log)
                    return
                }
                attempt += 1
                isLastAttempt = attempt >= configuration.maxAttempts || isServersLastDelivery(message)
                recordBeforeRunning = true
            }
        }
    }

    /// Runs `body` in the CONSUMER span of `message` as the task's context (so the handler's
    /// publishes and log lines continue its trace), or without a span when no tracer is active.
    private func traced<Result>(
        _ message: FetchedMessage,
        subject: String,
        envelope: Envelope.Dispatched?,
        _ body: (_ span: (any Span)?) async -> Result
    ) async -> Result {
        guard let tracer else {
            return await body(nil)
        }
        let span = MessageTracing.startProcess(
            tracer,
            spanName: spanName,
            headers: message.headers,
            MessageTracing.Delivery(
                consumer: context.consumer,
                stream: stream,
                subject: subject,
                sequence: message.streamSequence,
                deliveryCount: message.deliveryCount,
                timestamp: message.timestamp,
                type: envelope?.type,
                metadata: envelope?.metadata
            )
        )
        let result = await ServiceContext.withValue(span.context) {
            await body(span)
        }
        span.end()
        return result
    }

    /// Runs the handler of an admitted message and settles it as the policy says; `record` is
    /// the count of this run sent before it started, if it was. With `retryInPlace`, a failure to
    /// retry is not settled: the delay to wait before running it again comes back instead (nil
    /// otherwise).
    private func run(
        _ invocation: Invocation,
        envelope: Envelope.Dispatched,
        message: FetchedMessage,
        subject: String,
        attempt: Int,
        isLastAttempt: Bool,
        record: PendingRecord?,
        retryInPlace: Bool,
        log: LogContext,
        span: (any Span)?
    ) async -> Duration? {
        var log = log
        let termination = TerminationRequest()
        let context = DeliveryContext(
            type: envelope.type,
            subject: subject,
            sequence: message.streamSequence,
            timestamp: Date(timeIntervalSince1970: Double(message.timestamp) / 1_000_000_000),
            metadata: envelope.metadata,
            headers: message.headers,
            attempt: attempt,
            maxAttempts: configuration.maxAttempts,
            isLastAttempt: isLastAttempt,
            stream: stream,
            consumer: context.consumer,
            termination: termination
        )
        let typeMetrics = metrics.forType(envelope.type)
        logger.trace("handling message", metadata: log.metadata)
        let started = ContinuousClock.now
        var failure: (any Error)?
        metrics.inFlight.increment()
        let running = self.context.activity.handlerStarted()
        do {
            switch invocation {
            case .handler(let handler, let payload):
                try await handler.invoke(payload, context)
            case .sink(let sink):
                try await sink.deliver(context, body: message.body, fetched: message, coding: self.context.bodyCoding)
            }
        } catch {
            failure = error
        }
        self.context.activity.handlerFinished(running)
        metrics.inFlight.decrement()
        let duration = ContinuousClock.now - started
        typeMetrics.duration.recordNanoseconds(duration.nanoseconds)
        prefetch.record(duration)
        if let span, let failure, !(failure is MessageTermination) {
            span.recordError(failure)
            span.setStatus(SpanStatus(code: .error))
        }

        let outcome: DeliveryPolicy.Outcome
        if let termination = failure as? MessageTermination {
            outcome = .terminated(reason: termination.reason)
        } else if let failure {
            // Cancelled by the worker (shutdown deadline) or its task, or dropped undecided by a
            // durable sequence's caller: not the message's fault.
            outcome =
                Task.isCancelled || failure is DurableSink.GiveBack
                ? .interrupted : .failed(description: FailureDescription(failure))
        } else if let reason = termination.requestedReason {
            outcome = .terminated(reason: reason)
        } else {
            outcome = .succeeded
        }

        switch policy.settle(attempt: attempt, isLastAttempt: isLastAttempt, recorded: record != nil, outcome: outcome)
        {
        case .ack:
            report(message.settle(.ack), log)
            self.context.activity.acknowledged()
            typeMetrics.handled.increment()
        case .retry(let scheduled, let failedRun):
            // A durable sequence's caller may name the delay of its nak.
            let delay = (failure as? DurableSink.NakRequest)?.delay ?? scheduled
            typeMetrics.failed.increment()
            log.error = failure
            var recording = record
            if let failedRun {
                // Sent ahead of the negative acknowledgement, on the same connection.
                recording = await ledger.send(
                    runs: failedRun,
                    sequence: message.streamSequence,
                    deliveryCount: message.deliveryCount
                )
            }
            if !retryInPlace {
                report(message.settle(.nak(delay: delay)), log)
            }
            logger.warning(
                "handler failed; retrying later",
                metadata: log.metadata.merging(["delay": "\(delay)"]) { $1 }
            )
            span?.addEvent(
                SpanEvent(
                    name: MessageTracing.Event.retry,
                    attributes: [
                        MessageTracing.Attribute.attempt: .int64(Int64(attempt)),
                        MessageTracing.Attribute.retryDelay: .int64(delay.milliseconds),
                    ]
                )
            )
            typeMetrics.retried.increment()
            if let recording {
                let logger = logger
                let failed = log
                let warn: @Sendable (MessageStoreError) -> Void = { error in
                    // The next delivery reads an older count: one more attempt, never fewer.
                    logger.warning(
                        "could not record the failed attempt",
                        metadata: failed.metadata.merging(["record_error": "\(error)"]) { $1 }
                    )
                }
                if retryInPlace {
                    do throws(MessageStoreError) { try await recording.stored() } catch { warn(error) }
                } else {
                    // Not waited for: the message is back with the server already, and only a
                    // failure, logged, would change anything (see ``PendingRecord``).
                    recording.ifNotStored(warn)
                }
            }
            // Held in place, it waits only once its run is recorded.
            if retryInPlace { return delay }
        case .giveBack(let restoredRuns):
            if let restoredRuns {
                // In a task of its own: this task is cancelled, and the write must still go out.
                // It goes out after this run's own count, so it is the last word.
                let ledger = ledger
                let sequence = message.streamSequence
                let deliveryCount = message.deliveryCount
                try? await Task {
                    try await ledger.record(runs: restoredRuns, sequence: sequence, deliveryCount: deliveryCount)
                }.value
            }
            logger.notice("handler interrupted by the stop; message given back", metadata: log.metadata)
            report(message.settle(.nak(delay: .zero)), log)
        case .terminate(let cause, let reason):
            if case .handlerFailed = cause {
                typeMetrics.failed.increment()
                log.error = failure
            }
            await giveUp(
                message,
                subject: subject,
                type: envelope.type,
                cause: cause,
                reason: reason,
                log: log,
                span: span
            )
        }
        return nil
    }

    /// Terminates a message that will not succeed, after copying it to the dead-letter subject.
    private func giveUp(
        _ message: FetchedMessage,
        subject: String,
        type: String?,
        cause: DeadLetter.Cause,
        reason: String,
        log: LogContext,
        span: (any Span)?
    ) async {
        let typeMetrics = metrics.forType(type)
        logger.warning(
            "giving up on message: terminating it",
            metadata: log.metadata.merging([
                "reason": "\(LogText.peer(reason, limit: 1_000))", "cause": "\(cause.rawValue)",
            ]) { $1 }
        )
        if let deadLetterPrefix {
            let letter = DeadLetter(
                message: message,
                subject: subject,
                stream: stream,
                consumer: context.consumer,
                cause: cause,
                reason: reason
            )
            do {
                let stored = try await letter.publish(withPrefix: deadLetterPrefix, through: context.publisher)
                typeMetrics.deadLettered.increment()
                span?.addEvent(
                    SpanEvent(
                        name: MessageTracing.Event.deadLetter,
                        attributes: [
                            MessageTracing.Attribute.deadLetterSubject: .string(stored.subject),
                            MessageTracing.Attribute.deadLetterSequence: .int64(Int64(clamping: stored.ack.sequence)),
                        ]
                    )
                )
                logger.info(
                    "message dead-lettered",
                    metadata: log.metadata.merging([
                        "dead_letter.subject": "\(LogText.peer(stored.subject))",
                        "dead_letter.sequence": "\(stored.ack.sequence)",
                    ]) { $1 }
                )
                if let forged = stored.forgedSequence {
                    logger.warning(
                        "another message was stored under this dead letter's id; stored the real one under an id of its own",
                        metadata: log.metadata.merging(["dead_letter.forged_sequence": "\(forged)"]) { $1 }
                    )
                }
                if let reduced = stored.reduced {
                    logger.warning(
                        "the dead letter is reduced",
                        metadata: log.metadata.merging(["reason": "\(LogText.peer(reduced, limit: 1_000))"]) { $1 }
                    )
                }
            } catch {
                // Not terminated, so it is not lost: the server offers it again later.
                logger.error(
                    "could not dead-letter the message; it will be delivered again",
                    metadata: log.metadata.merging([LogKey.error: "\(error)"]) { $1 }
                )
                report(message.settle(.nak(delay: configuration.retrySchedule.delay(afterAttempt: 1))), log)
                return
            }
        }
        span?.addEvent(
            SpanEvent(
                name: MessageTracing.Event.terminate,
                attributes: [
                    MessageTracing.Attribute.cause: .string(cause.rawValue),
                    MessageTracing.Attribute.reason: .string(String(reason.prefix(1_000))),
                ]
            )
        )
        report(message.settle(.term), log)
        typeMetrics.terminated.increment()
    }

    private func report(_ error: MessageStoreError?, _ log: LogContext) {
        guard let error else { return }
        // The server will redeliver after the ack wait; handlers must be idempotent anyway.
        logger.warning(
            "could not acknowledge the message",
            metadata: log.metadata.merging([LogKey.error: "\(error)"]) { $1 }
        )
    }
}

/// What runs an admitted message: the handler of its type, or a durable sequence's caller. A
/// value, not a closure: nothing is allocated for it per message.
enum Invocation: Sendable {
    case handler(AnyMessageHandler, any MessagePayload)
    case sink(DurableSink)
}

/// What a log line about one message says, formatted only when the line is logged.
struct LogContext {
    let consumer: String
    let subject: String
    let sequence: UInt64
    /// The delivery count until the attempt is known.
    var attempt: Int
    var type: String?
    /// What the handler threw, described only when a line is logged.
    var error: (any Error)?

    var metadata: Logger.Metadata {
        // The subject, the type and an error's text come from a peer: escaped and capped.
        var metadata: Logger.Metadata = [
            LogKey.consumer: "\(consumer)",
            LogKey.subject: "\(LogText.peer(subject))",
            LogKey.sequence: "\(sequence)",
            LogKey.attempt: "\(attempt)",
        ]
        if let type { metadata[LogKey.type] = "\(LogText.peer(type))" }
        if let error { metadata[LogKey.error] = "\(LogText.peer("\(error)", limit: 1_000))" }
        return metadata
    }
}

import CoreMetrics
import Logging

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Runs the per-message pipeline of a subscription: parse → handler lookup → typed decode →
/// handler → acknowledge, retry later, or terminate and dead-letter.
final class Dispatcher: Sendable {
    let subscription: Subscription
    let stream: String
    let deadLetterPrefix: String?
    let decoder: BodyDecoder
    let metrics: SubscriptionMetrics
    let progress: ProgressReporter
    private let configuration: Subscription.Configuration
    private let logger: Logger

    init(subscription: Subscription, stream: String, deadLetterPrefix: String?) {
        self.subscription = subscription
        self.stream = stream
        self.deadLetterPrefix = deadLetterPrefix
        configuration = subscription.configuration
        logger = subscription.store.logger
        decoder = Envelope.makeDispatchDecoder(for: subscription.handlers)
        metrics = SubscriptionMetrics(consumer: subscription.consumer, types: subscription.handlers.messageTypes)
        progress = ProgressReporter(
            interval: configuration.progressInterval ?? configuration.ackWait / 3
        )
    }

    /// Processes a fetched batch; once the subscription is stopping, messages not yet started go
    /// back to the server at once for another worker.
    func process(_ batch: [FetchedMessage]) async {
        if configuration.maxConcurrentHandlers == 1 {
            for message in batch {
                if subscription.isStopping {
                    message.settle(.nak(delay: .zero))
                    continue
                }
                await process(message)
            }
            return
        }
        await withTaskGroup(of: Void.self) { group in
            var running = 0
            for message in batch {
                if running >= configuration.maxConcurrentHandlers {
                    await group.next()
                    running -= 1
                }
                if subscription.isStopping {
                    message.settle(.nak(delay: .zero))
                    continue
                }
                group.addTask { await self.process(message) }
                running += 1
            }
        }
    }

    func process(_ message: FetchedMessage) async {
        let naming = subscription.store.naming
        let subject = naming.applicationSubject(message.natsSubject)
        let attempt = message.deliveryCount
        // Log metadata is built only when a line is actually logged: swift-log takes it as an
        // autoclosure, and formatting it for every message would cost more than dispatching it.
        var log = LogContext(
            consumer: subscription.consumer,
            subject: subject,
            sequence: message.streamSequence,
            attempt: attempt
        )

        if attempt > configuration.maxAttempts {
            await giveUp(
                message,
                subject: subject,
                type: nil,
                cause: .tooManyDeliveries,
                reason: "delivered \(attempt) times, more than the \(configuration.maxAttempts) attempts allowed "
                    + "(a worker probably stopped during the last attempt)",
                log: log
            )
            return
        }

        let envelope: Envelope.Dispatched
        do throws(Envelope.DispatchFailure) {
            envelope = try Envelope.decodeForDispatch(message.body, using: decoder)
        } catch {
            switch error {
            case .malformedEnvelope(let detail):
                await giveUp(
                    message,
                    subject: subject,
                    type: nil,
                    cause: .malformedEnvelope,
                    reason:
                        "not a valid envelope (a JSON object with a string \"type\" and an object \"data\"): \(detail)",
                    log: log
                )
            case .undecodableData(let type, let detail):
                await giveUp(
                    message,
                    subject: subject,
                    type: type,
                    cause: .undecodableData,
                    reason: "the data of the \(type) message does not decode: \(detail)",
                    log: log
                )
            }
            return
        }
        log.type = envelope.type

        guard let handler = subscription.handlers.table[envelope.type], let payload = envelope.payload else {
            switch configuration.unknownTypes.action {
            case .acknowledge:
                logger.debug("no handler for this message type; acknowledged and skipped", metadata: log.metadata)
                message.settle(.ack)
                metrics.skipped.increment()
            case .deadLetter:
                await giveUp(
                    message,
                    subject: subject,
                    type: envelope.type,
                    cause: .unknownType,
                    reason: "no handler for message type \(envelope.type)",
                    log: log
                )
            }
            return
        }

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
            stream: stream,
            consumer: subscription.consumer,
            termination: termination
        )
        let typeMetrics = metrics.forType(envelope.type)
        logger.trace("handling message", metadata: log.metadata)
        let token = progress.begin(message)
        let started = ContinuousClock.now
        var failure: (any Error)?
        do {
            try await handler.invoke(payload, context)
        } catch {
            failure = error
        }
        progress.end(token)
        typeMetrics.duration.recordNanoseconds((ContinuousClock.now - started).nanoseconds)

        if let termination = failure as? MessageTermination {
            await giveUp(
                message,
                subject: subject,
                type: envelope.type,
                cause: .terminatedByHandler,
                reason: termination.reason,
                log: log
            )
        } else if let failure {
            typeMetrics.failed.increment()
            log.error = "\(failure)"
            if attempt >= configuration.maxAttempts {
                await giveUp(
                    message,
                    subject: subject,
                    type: envelope.type,
                    cause: .handlerFailed,
                    reason: "the handler failed on attempt \(attempt) of \(configuration.maxAttempts): \(failure)",
                    log: log
                )
            } else {
                let delay = configuration.retrySchedule.delay(afterAttempt: attempt)
                logger.warning(
                    "handler failed; retrying later",
                    metadata: log.metadata.merging(["delay": "\(delay)"]) { $1 }
                )
                report(message.settle(.nak(delay: delay)), log)
                typeMetrics.retried.increment()
            }
        } else if let reason = termination.requestedReason {
            await giveUp(
                message,
                subject: subject,
                type: envelope.type,
                cause: .terminatedByHandler,
                reason: reason,
                log: log
            )
        } else {
            report(message.settle(.ack), log)
            typeMetrics.handled.increment()
        }
    }

    /// Terminates a message that will not succeed, after copying it to the dead-letter subject.
    private func giveUp(
        _ message: FetchedMessage,
        subject: String,
        type: String?,
        cause: DeadLetter.Cause,
        reason: String,
        log: LogContext
    ) async {
        let typeMetrics = metrics.forType(type)
        logger.warning(
            "giving up on message: terminating it",
            metadata: log.metadata.merging(["reason": "\(reason)", "cause": "\(cause.rawValue)"]) { $1 }
        )
        if let deadLetterPrefix {
            let letter = DeadLetter(
                message: message,
                subject: subject,
                stream: stream,
                consumer: subscription.consumer,
                cause: cause,
                reason: reason
            )
            do {
                let ack = try await letter.publish(to: deadLetterPrefix + subject, store: subscription.store)
                typeMetrics.deadLettered.increment()
                logger.info(
                    "message dead-lettered",
                    metadata: log.metadata.merging([
                        "dead_letter.subject": "\(deadLetterPrefix + subject)",
                        "dead_letter.sequence": "\(ack.sequence)",
                    ]) { $1 }
                )
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

/// What a log line about one message says, formatted only when the line is logged.
struct LogContext {
    let consumer: String
    let subject: String
    let sequence: UInt64
    let attempt: Int
    var type: String?
    var error: String?

    var metadata: Logger.Metadata {
        var metadata: Logger.Metadata = [
            LogKey.consumer: "\(consumer)",
            LogKey.subject: "\(subject)",
            LogKey.sequence: "\(sequence)",
            LogKey.attempt: "\(attempt)",
        ]
        if let type { metadata[LogKey.type] = "\(type)" }
        if let error { metadata[LogKey.error] = "\(error)" }
        return metadata
    }
}

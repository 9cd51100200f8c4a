import Synchronization

#if canImport(FoundationEssentials)
    public import FoundationEssentials
#else
    public import Foundation
#endif

// A durable consumer as an async sequence: the caller acknowledges each message by hand.

extension MessageStore {
    /// The messages of a durable consumer on `filter`, to iterate with `for try await` and settle
    /// by hand: ``DurableMessage/ack()``, ``DurableMessage/nak(delay:)``,
    /// ``DurableMessage/terminate(reason:)``.
    ///
    /// The rules are a worker's (``Subscription``): attempts count runs, not deliveries; a
    /// message nak'ed on its last attempt, or terminated, is dead-lettered when the
    /// configuration has a ``Subscription/Configuration/deadLetterSubject``; poison (not an
    /// envelope) is dead-lettered without reaching the caller. Every message type comes through;
    /// decode the data with ``DurableMessage/decode(as:)``.
    ///
    /// Back-pressure: at most ``Subscription/Configuration/maxConcurrentHandlers`` messages (1 by
    /// default) are handed out and not yet settled; the next comes once one is. Set it higher to
    /// settle in bulk (for example after one database commit for many messages), and
    /// ``Subscription/Configuration/ordering`` to keep order per key meanwhile.
    ///
    /// The consumer starts when iteration starts. Leaving the loop (`break`, an error, a
    /// cancelled task) or a graceful shutdown stops it: messages not handed out go back at once,
    /// and a message handed out but dropped without a decision goes back too, its run not
    /// counted.
    /// - Parameters:
    ///   - filter: An application subject filter, such as `orders.>`.
    ///   - consumer: The durable consumer's name.
    ///   - configuration: As for a worker. Defaults to ``Subscription/Configuration/init()``.
    /// - Throws: As ``subscription(to:consumer:handlers:configuration:)``; starting errors (no
    ///   stream, a consumer with another filter) come from the iteration.
    public func durableMessages(
        on filter: String,
        consumer: String,
        configuration: Subscription.Configuration = Subscription.Configuration()
    ) throws(MessageStoreError) -> DurableMessages {
        // Validated now, so that a bad filter or configuration throws here, not in the loop.
        _ = try Subscription(
            store: self,
            filter: filter,
            consumer: consumer,
            handlers: MessageHandlers(),
            configuration: configuration
        )
        return DurableMessages(store: self, filter: filter, consumer: consumer, configuration: configuration)
    }
}

/// The messages of a durable consumer, settled by hand; see
/// ``MessageStore/durableMessages(on:consumer:configuration:)``.
public struct DurableMessages: AsyncSequence, Sendable {
    public typealias Element = DurableMessage

    let store: MessageStore
    let filter: String
    let consumer: String
    let configuration: Subscription.Configuration

    public func makeAsyncIterator() -> AsyncIterator {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: DurableMessage.self)
        let sink = DurableSink(continuation)
        // Built from validated values: it cannot throw here.
        guard
            let subscription = try? Subscription(
                store: store,
                filter: filter,
                consumer: consumer,
                handlers: MessageHandlers(),
                configuration: configuration,
                sink: sink
            )
        else {
            continuation.finish()
            return AsyncIterator(base: stream.makeAsyncIterator(), running: nil)
        }
        let running = Task {
            do {
                try await subscription.run()
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in
            sink.close()
            subscription.stop()
        }
        return AsyncIterator(base: stream.makeAsyncIterator(), running: running)
    }

    /// Hands out the next message; nil once the consumer has stopped.
    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncThrowingStream<DurableMessage, any Error>.AsyncIterator
        let running: Task<Void, Never>?

        public mutating func next() async throws -> DurableMessage? {
            try await base.next()
        }
    }
}

/// One message of a ``DurableMessages`` sequence, to settle once: ``ack()``, ``nak(delay:)`` or
/// ``terminate(reason:)``. Dropped without a decision, it goes back to the server and its run
/// does not count.
public final class DurableMessage: Sendable {
    /// The message type from the envelope.
    public let type: String
    /// The application subject (environment prefix removed).
    public let subject: String
    /// The stream sequence.
    public let sequence: UInt64
    /// When the server stored it.
    public let timestamp: Date
    /// The envelope's metadata, if any.
    public let metadata: MessageMetadata?
    /// The NATS headers as stored.
    public let headers: MessageHeaders
    /// Which attempt this is (1 on the first), as for a worker's handler.
    public let attempt: Int
    /// How many attempts are allowed.
    public let maxAttempts: Int
    /// Whether a ``nak(delay:)`` now terminates and dead-letters it instead of retrying.
    public let isLastAttempt: Bool
    /// The whole JSON body, as stored.
    public let body: [UInt8]

    private let fetched: FetchedMessage
    private let coding: BodyCoding
    private let decision: Mutex<CheckedContinuation<DurableSink.Decision, Never>?>

    init(
        context: DeliveryContext,
        body: [UInt8],
        fetched: FetchedMessage,
        coding: BodyCoding,
        decision: CheckedContinuation<DurableSink.Decision, Never>
    ) {
        type = context.type
        subject = context.subject
        sequence = context.sequence
        timestamp = context.timestamp
        metadata = context.metadata
        headers = context.headers
        attempt = context.attempt
        maxAttempts = context.maxAttempts
        isLastAttempt = context.isLastAttempt
        self.body = body
        self.fetched = fetched
        self.coding = coding
        self.decision = Mutex(decision)
    }

    deinit {
        decide(.giveBack)
    }

    /// Decodes the envelope's `data` as `Payload`.
    /// - Throws: ``MessageStoreError/Code/decodingFailed`` when the data does not fit the type.
    public func decode<Payload: Decodable>(as _: Payload.Type = Payload.self) throws(MessageStoreError) -> Payload {
        try Envelope.decodeData(
            Payload.self,
            from: body,
            type: type,
            subject: subject,
            sequence: sequence,
            coding: coding
        )
    }

    /// Acknowledges it: done, never delivered again.
    public func ack() {
        decide(.ack)
    }

    /// Gives it back to be delivered again after `delay` (default: the configuration's retry
    /// schedule for this attempt); on the last attempt it is terminated and dead-lettered
    /// instead, as a failing handler's message is.
    public func nak(delay: Duration? = nil) {
        decide(.nak(delay: delay))
    }

    /// Terminates it and copies it to the dead-letter subject with `reason`.
    public func terminate(reason: String) {
        decide(.terminate(reason: reason))
    }

    /// Tells the server it is still being worked on. The library does so by itself while a
    /// message is unsettled; this resets the server's ack timer at once.
    public func inProgress() {
        fetched.reportProgress()
    }

    /// Whether ack, nak or terminate was called.
    public var isSettled: Bool {
        decision.withLock { $0 == nil }
    }

    private func decide(_ choice: DurableSink.Decision) {
        decision.withLock { $0.take() }?.resume(returning: choice)
    }
}

/// Where the dispatcher hands messages to a ``DurableMessages`` caller and waits for the decision.
final class DurableSink: Sendable {
    enum Decision: Sendable {
        case ack
        case nak(delay: Duration?)
        case terminate(reason: String)
        /// Dropped without a decision, or the sequence ended: back to the server, not counted.
        case giveBack
    }

    /// Thrown into the dispatcher for a nak: a failed run, retried after `delay`.
    struct NakRequest: Error, CustomStringConvertible {
        var delay: Duration?
        var description: String { "negatively acknowledged by the caller" }
    }

    /// Thrown into the dispatcher for a give-back: the run does not count.
    struct GiveBack: Error {}

    private let continuation: AsyncThrowingStream<DurableMessage, any Error>.Continuation
    private let closed = Atomic(false)

    init(_ continuation: AsyncThrowingStream<DurableMessage, any Error>.Continuation) {
        self.continuation = continuation
    }

    func close() {
        closed.store(true, ordering: .relaxed)
    }

    /// Hands the message out and returns once the caller decided; throws what the dispatcher
    /// reads as a failure, a termination or an interruption.
    func deliver(_ context: DeliveryContext, body: [UInt8], fetched: FetchedMessage, coding: BodyCoding) async throws {
        let decision = await withCheckedContinuation { (decision: CheckedContinuation<Decision, Never>) in
            guard !closed.load(ordering: .relaxed) else {
                decision.resume(returning: .giveBack)
                return
            }
            let message = DurableMessage(
                context: context,
                body: body,
                fetched: fetched,
                coding: coding,
                decision: decision
            )
            // A stream that has ended drops the message: its deinit gives it back.
            _ = continuation.yield(message)
        }
        switch decision {
        case .ack: return
        case .nak(let delay): throw NakRequest(delay: delay)
        case .terminate(let reason): throw MessageTermination(reason: reason)
        case .giveBack: throw GiveBack()
        }
    }
}

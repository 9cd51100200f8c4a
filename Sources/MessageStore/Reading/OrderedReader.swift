import Logging
import Synchronization

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Reads a subject filter in stream order through a short-lived consumer that leaves nothing
/// behind: no acknowledgements, deleted by ``close()``, and removed by the server after a short
/// inactivity threshold should the process die first.
///
/// It checks that the consumer's sequence numbers are consecutive; on a gap (a message lost on
/// the way) it recreates the consumer right after the last message it handed out, as ordered
/// consumers do.
final class OrderedReader: Sendable {
    enum Start: Sendable {
        case sequence(UInt64)
        case time(Date)
        /// Only messages stored after the stream's current last message.
        case afterLast
    }

    private struct Cursor {
        /// Bound on first use: a read with nothing pending never needs it.
        var subscription: PullSubscription?
        var consumerName: String
        var lastConsumerSequence: UInt64 = 0
        var lastStreamSequence: UInt64 = 0
        /// Messages the consumer had when created plus those seen since: reaching the end.
        var remaining: UInt64
    }

    let store: MessageStore
    let stream: String
    let natsFilter: String
    private let cursor: Mutex<Cursor?>

    private init(store: MessageStore, stream: String, natsFilter: String, cursor: Cursor) {
        self.store = store
        self.stream = stream
        self.natsFilter = natsFilter
        self.cursor = Mutex(cursor)
    }

    /// Opens a reader on `natsFilter` (already prefixed and validated).
    static func open(
        store: MessageStore,
        natsFilter: String,
        subject: String,
        start: Start
    ) async throws(MessageStoreError) -> OrderedReader {
        guard let stream = try await store.stream(covering: natsFilter) else {
            throw MessageStoreError(
                code: .streamNotFound,
                message: "no stream stores \(natsFilter)",
                subject: subject
            )
        }
        var effectiveStart = start
        if case .afterLast = start {
            effectiveStart = .sequence(stream.lastSequence + 1)
        }
        let cursor = try await makeCursor(
            store: store,
            stream: stream.name,
            natsFilter: natsFilter,
            start: effectiveStart
        )
        return OrderedReader(store: store, stream: stream.name, natsFilter: natsFilter, cursor: cursor)
    }

    private static func makeCursor(
        store: MessageStore,
        stream: String,
        natsFilter: String,
        start: Start
    ) async throws(MessageStoreError) -> Cursor {
        var config = JetStream.ConsumerConfig()
        config.ackPolicy = "none"
        config.filterSubject = natsFilter
        config.maxDeliver = 1
        config.inactiveThreshold = Duration.seconds(30).nanoseconds
        config.numReplicas = 1
        switch start {
        case .sequence(let sequence):
            config.deliverPolicy = "by_start_sequence"
            config.optStartSeq = max(sequence, 1)
        case .time(let date):
            config.deliverPolicy = "by_start_time"
            config.optStartTime = date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
        case .afterLast:
            preconditionFailure("resolved by open")
        }
        let info = try await store.jetStream.createEphemeralConsumer(stream: stream, config: config)
        return Cursor(subscription: nil, consumerName: info.name, remaining: info.numPending)
    }

    private func subscription(for current: Cursor) async throws(MessageStoreError) -> PullSubscription {
        if let subscription = current.subscription { return subscription }
        let subscription = try await store.jetStream.pullSubscription(
            stream: stream,
            consumer: current.consumerName,
            acknowledges: false
        )
        cursor.withLock { $0?.subscription = subscription }
        return subscription
    }

    /// Whether every message that existed when the reader opened has been handed out.
    var isAtEnd: Bool {
        cursor.withLock { $0?.remaining == 0 }
    }

    /// The next messages in order: an empty array means the end (of what existed at opening,
    /// or, with `wait`, nothing arrived in time).
    /// - Parameters:
    ///   - batch: The most messages to return.
    ///   - wait: nil to return what is there now; otherwise wait up to this long for one new message.
    /// - Throws: ``MessageStoreError/Code/cancelled`` as soon as the task is cancelled, whether
    ///   it was before the call or during a wait.
    func next(batch: Int, wait: Duration? = nil) async throws(MessageStoreError) -> [FetchedMessage] {
        while true {
            if Task.isCancelled { throw .cancelled("reading \(natsFilter)", subject: natsFilter) }
            guard let current = cursor.withLock({ $0 }) else { return [] }
            if wait == nil && current.remaining == 0 { return [] }
            let subscription = try await subscription(for: current)
            let outcome: PullSubscription.FetchOutcome
            do {
                outcome = try await subscription.fetch(batch: batch, wait: wait)
            } catch {
                if Task.isCancelled { throw .cancelled("reading \(natsFilter)", subject: natsFilter) }
                throw error
            }
            if Task.isCancelled { throw .cancelled("reading \(natsFilter)", subject: natsFilter) }
            switch outcome {
            case .messages(let messages):
                if let gapAfter = accept(messages) {
                    store.logger.debug(
                        "ordered read skipped a message; restarting",
                        metadata: [LogKey.stream: "\(stream)", LogKey.sequence: "\(gapAfter)"]
                    )
                    try await restart(after: gapAfter)
                    continue
                }
                return messages
            case .empty:
                if wait != nil { return [] }
                // The consumer says nothing is left, whatever the count said (messages may have
                // been removed meanwhile by limits).
                cursor.withLock { $0?.remaining = 0 }
                return []
            case .finished:
                throw .connectionClosed(subject: natsFilter)
            case .failed(let error):
                throw error
            }
        }
    }

    /// Records delivered messages; returns the last good stream sequence when there is a gap.
    private func accept(_ messages: [FetchedMessage]) -> UInt64? {
        cursor.withLock { cursor -> UInt64? in
            guard var state = cursor else { return nil }
            defer { cursor = state }
            for message in messages {
                if message.consumerSequence != state.lastConsumerSequence + 1 {
                    return state.lastStreamSequence
                }
                state.lastConsumerSequence = message.consumerSequence
                state.lastStreamSequence = message.streamSequence
                state.remaining = message.pending
            }
            return nil
        }
    }

    private func restart(after streamSequence: UInt64) async throws(MessageStoreError) {
        guard let old = cursor.withLock({ $0 }) else { return }
        old.subscription?.unsubscribe()
        try? await store.jetStream.deleteConsumer(stream: stream, name: old.consumerName)
        var fresh = try await Self.makeCursor(
            store: store,
            stream: stream,
            natsFilter: natsFilter,
            start: .sequence(streamSequence + 1)
        )
        fresh.lastStreamSequence = streamSequence
        cursor.withLock { $0 = fresh }
    }

    /// Deletes the consumer, awaiting the server's answer (also when the caller is cancelled: a
    /// reader that ended leaves nothing on the server). Harmless to repeat.
    func close() async {
        guard
            let current = cursor.withLock({ state -> Cursor? in
                defer { state = nil }
                return state
            })
        else { return }
        current.subscription?.unsubscribe()
        await deleteConsumer(named: current.consumerName)
    }

    private func deleteConsumer(named name: String) async {
        do {
            try await store.jetStream.deleteConsumer(stream: stream, name: name)
        } catch  where error.jetStreamError == .consumerNotFound {
            // Already gone.
        } catch {
            store.logger.debug(
                "could not delete a read consumer; the server removes it after 30 s of inactivity",
                metadata: [LogKey.stream: "\(stream)", LogKey.error: "\(error)"]
            )
        }
    }

    /// Runs `body` with a reader and closes it afterwards, whether `body` returns or throws.
    static func with<R>(
        store: MessageStore,
        natsFilter: String,
        subject: String,
        start: Start,
        _ body: (OrderedReader) async throws -> R
    ) async throws -> R {
        // A task cancelled already asks the server for nothing.
        if Task.isCancelled { throw MessageStoreError.cancelled("reading \(natsFilter)", subject: subject) }
        let reader = try await open(store: store, natsFilter: natsFilter, subject: subject, start: start)
        do {
            let result = try await body(reader)
            await reader.close()
            return result
        } catch {
            await reader.close()
            throw error
        }
    }
}

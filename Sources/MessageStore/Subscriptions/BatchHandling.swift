import Synchronization

// Batch handlers: messages of one type handled together, each still admitted, counted,
// retried and dead-lettered on its own by the dispatcher. A message's handler call joins the
// batch being formed for its type and waits; the first to join leads: it waits until the batch
// is full, until nothing else can join (every message the worker is handling waits in a batch),
// or until the time bound, then runs the user's handler once and hands each member its outcome.

/// Messages of one type handed to a batch handler together, in the order they were delivered.
///
/// A message succeeds when the handler returns, unless the handler marked it with
/// ``fail(_:with:)`` (it is retried alone, as a failed message of a plain handler is) or asked
/// for its termination with ``ReceivedMessage/terminate(reason:)`` (dead-lettered alone). When
/// the handler throws, every message of the batch fails with that error (or, for a
/// ``MessageTermination``, is terminated).
public struct MessageBatch<Payload: MessagePayload>: Sendable, RandomAccessCollection {
    /// The messages, in the order they joined the batch.
    public let messages: [ReceivedMessage<Payload>]
    let failures: BatchFailures

    init(messages: [ReceivedMessage<Payload>]) {
        self.messages = messages
        failures = BatchFailures()
    }

    public var startIndex: Int { messages.startIndex }
    public var endIndex: Int { messages.endIndex }
    public subscript(position: Int) -> ReceivedMessage<Payload> { messages[position] }

    /// Fails `message` alone: it is retried after its retry delay (or dead-lettered on its last
    /// attempt) while the rest of the batch succeeds.
    public func fail(_ message: ReceivedMessage<Payload>, with error: any Error) {
        failures.record(error, sequence: message.sequence)
    }
}

/// The messages of a batch that its handler failed one by one, by stream sequence.
final class BatchFailures: Sendable {
    private let errors = Mutex<[UInt64: any Error]>([:])

    func record(_ error: any Error, sequence: UInt64) {
        errors.withLock { $0[sequence] = error }
    }

    func error(sequence: UInt64) -> (any Error)? {
        errors.withLock { $0[sequence] }
    }
}

/// How a batch handler collects: its bounds, and how it binds to one worker's collector.
struct BatchHandling: Sendable {
    let maxCount: Int
    let maxWait: Duration
    /// The per-message call of the worker that `gate` counts for.
    let bind: @Sendable (BatchGate) -> @Sendable (any MessagePayload, DeliveryContext) async throws -> Void
}

/// One worker's count of the messages that could still join a batch, so that a batch starts
/// at once when nothing else can join it.
///
/// `running` counts messages in a task or a key runner, until their processing returns;
/// `queued` those of a fetch that wait for a task slot (they run as soon as one frees, so they
/// can still join); `waiting` those waiting in a batch. When every message that runs or could
/// get a slot waits, the batches being formed start without waiting out their time bound.
final class BatchGate: Sendable {
    private struct Counts {
        var running = 0
        var queued = 0
        var waiting = 0
        var stopping = false

        func nothingElseCanJoin(slots: Int) -> Bool {
            stopping || waiting >= running + min(queued, max(0, slots - running))
        }
    }

    private let counts = Mutex(Counts())
    /// How many messages can run at once (the worker's `maxConcurrentHandlers`).
    private let slots: Int
    private let collectors = Mutex<[@Sendable () -> Void]>([])

    init(slots: Int) {
        self.slots = slots
    }

    func register(_ poke: @escaping @Sendable () -> Void) {
        collectors.withLock { $0.append(poke) }
    }

    /// `count` fetched messages wait for a task slot.
    func queued(_ count: Int) {
        adjust(running: 0, queued: count)
    }

    /// A queued message got its slot and is on its way to a handler.
    func started() {
        adjust(running: 1, queued: -1)
    }

    /// A queued message went back to the server without running.
    func givenBack() {
        adjust(running: 0, queued: -1)
    }

    /// `count` messages are on their way to a handler (key runners, started together).
    func enter(_ count: Int) {
        adjust(running: count, queued: 0)
    }

    /// A message's processing returned.
    func leave() {
        adjust(running: -1, queued: 0)
    }

    private func adjust(running: Int, queued: Int) {
        let start = counts.withLock { counts in
            counts.running += running
            counts.queued += queued
            return counts.waiting > 0 && counts.nothingElseCanJoin(slots: slots)
        }
        if start { pokeAll() }
    }

    /// `count` messages joined (positive) or left (negative) batches; true when nothing else can
    /// join a batch now, or the worker is stopping.
    func joined(_ count: Int) -> Bool {
        counts.withLock { counts in
            counts.waiting += count
            return count > 0 && counts.nothingElseCanJoin(slots: slots)
        }
    }

    /// The worker stops: nothing new will come, so every batch starts without waiting.
    func stop() {
        counts.withLock { $0.stopping = true }
        pokeAll()
    }

    func pokeAll() {
        for poke in collectors.withLock({ $0 }) { poke() }
    }
}

/// The batches of one payload type in one worker.
final class BatchCollector<Payload: MessagePayload>: Sendable {
    private enum Arrival {
        /// This message leads batch `id`: it runs the handler.
        case lead(id: Int)
        /// The leader ran the batch; this is the message's outcome.
        case settled((any Error)?)
    }

    private struct Batch {
        let id: Int
        var members: [ReceivedMessage<Payload>]
        /// Every member's but the leader's.
        var followers: [CheckedContinuation<Arrival, Never>] = []
        /// The leader, once it waits for the batch to start.
        var leader: CheckedContinuation<Void, Never>?
        var timer: Task<Void, Never>?
    }

    private struct State {
        var lastID = 0
        /// The batch taking members.
        var forming: Batch?
        /// Batches closed to members, by id, for their leaders to run.
        var started: [Int: Batch] = [:]
    }

    private let maxCount: Int
    private let maxWait: Duration
    private let handler: @Sendable (MessageBatch<Payload>) async throws -> Void
    private let gate: BatchGate
    private let state = Mutex(State())

    init(
        maxCount: Int,
        maxWait: Duration,
        gate: BatchGate,
        handler: @escaping @Sendable (MessageBatch<Payload>) async throws -> Void
    ) {
        self.maxCount = maxCount
        self.maxWait = maxWait
        self.gate = gate
        self.handler = handler
        gate.register { [weak self] in self?.start(nil) }
    }

    /// Handles `message` as a member of the batch being formed; returns or throws its outcome.
    func handle(_ message: ReceivedMessage<Payload>) async throws {
        let arrival = await withCheckedContinuation { (continuation: CheckedContinuation<Arrival, Never>) in
            let (id, count, leads) = state.withLock { state -> (Int, Int, Bool) in
                if var batch = state.forming {
                    batch.members.append(message)
                    batch.followers.append(continuation)
                    state.forming = batch
                    return (batch.id, batch.members.count, false)
                }
                state.lastID &+= 1
                state.forming = Batch(id: state.lastID, members: [message])
                return (state.lastID, 1, true)
            }
            if leads {
                continuation.resume(returning: .lead(id: id))
            } else {
                joined(id, count: count)
            }
        }
        switch arrival {
        case .settled(let error):
            if let error { throw error }
        case .lead(let id):
            joined(id, count: 1)
            try await lead(id, message)
        }
    }

    /// A member joined batch `id`, making it `count` long: start it when full or when nothing
    /// else can join any batch.
    private func joined(_ id: Int, count: Int) {
        let everyone = gate.joined(1)
        if count >= maxCount { start(id) }
        if everyone { gate.pokeAll() }
    }

    /// Waits for batch `id` to start, runs the handler, and settles the other members.
    private func lead(_ id: Int, _ message: ReceivedMessage<Payload>) async throws {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let started = state.withLock { state -> Bool in
                guard state.started[id] == nil else { return true }
                state.forming?.leader = continuation
                return false
            }
            if started {
                continuation.resume()
                return
            }
            let timer = Task { [weak self, maxWait] in
                try? await Task.sleep(for: maxWait)
                guard !Task.isCancelled else { return }
                self?.start(id)
            }
            let kept = state.withLock { state -> Bool in
                guard state.forming?.id == id else { return false }
                state.forming?.timer = timer
                return true
            }
            if !kept { timer.cancel() }
        }
        guard let batch = state.withLock({ $0.started.removeValue(forKey: id) }) else { return }
        batch.timer?.cancel()
        _ = gate.joined(-batch.members.count)
        let messages = MessageBatch(messages: batch.members)
        var thrown: (any Error)?
        do {
            try await handler(messages)
        } catch {
            thrown = error
        }
        for (member, follower) in zip(batch.members.dropFirst(), batch.followers) {
            follower.resume(returning: .settled(thrown ?? messages.failures.error(sequence: member.sequence)))
        }
        if let error = thrown ?? messages.failures.error(sequence: message.sequence) { throw error }
    }

    /// Closes the batch being formed (only if it is batch `id`, when given) and wakes its
    /// leader if it waits; a leader not waiting yet finds it started.
    private func start(_ id: Int?) {
        let leader = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard var batch = state.forming, id == nil || batch.id == id else { return nil }
            state.forming = nil
            let leader = batch.leader
            batch.leader = nil
            state.started[batch.id] = batch
            return leader
        }
        leader?.resume()
    }
}

extension MessageHandlers {
    /// Registers a batch handler for `Payload`'s message type, replacing any handler already
    /// there: it receives up to `maxCount` messages of the type at once, for a bulk write and
    /// one commit.
    ///
    /// A batch starts when it is full, when every message the worker is handling waits in a
    /// batch (nothing else could join), or `maxWait` after its first message arrived. Its
    /// messages are handled at once, so they count against
    /// ``Subscription/Configuration/maxConcurrentHandlers``: a subscription refuses a `maxCount`
    /// larger than that. Each message keeps its own attempts, retries and dead letter (see
    /// ``MessageBatch``); with per-key ordering, a batch holds at most one message of each key.
    /// The handler runs in the task, and the trace, of the batch's first message.
    ///
    /// ```swift
    /// let handlers = MessageHandlers()
    ///     .handlingBatches(of: OrderPlaced.self, maxCount: 100) { batch in
    ///         try await database.insert(batch.map(\.data))   // throws: the batch is retried
    ///     }
    /// ```
    public mutating func onBatches<Payload: MessagePayload>(
        of _: Payload.Type,
        maxCount: Int,
        maxWait: Duration = .milliseconds(100),
        _ handler: @escaping @Sendable (MessageBatch<Payload>) async throws -> Void
    ) {
        let batching = BatchHandling(maxCount: maxCount, maxWait: maxWait) { gate in
            let collector = BatchCollector(
                maxCount: maxCount,
                maxWait: maxWait,
                gate: gate,
                handler: handler
            )
            return { payload, context in
                try await collector.handle(AnyMessageHandler.received(payload as! Payload, context))
            }
        }
        // Unbound (not yet a worker's), a message is a batch of its own.
        table[Payload.messageType] = AnyMessageHandler(Payload.self, batching: batching) { message in
            try await handler(MessageBatch(messages: [message]))
        }
    }

    /// Returns these handlers plus the batch handler for `Payload`'s message type. See
    /// ``onBatches(of:maxCount:maxWait:_:)``.
    public func handlingBatches<Payload: MessagePayload>(
        of type: Payload.Type,
        maxCount: Int,
        maxWait: Duration = .milliseconds(100),
        _ handler: @escaping @Sendable (MessageBatch<Payload>) async throws -> Void
    ) -> MessageHandlers {
        var copy = self
        copy.onBatches(of: type, maxCount: maxCount, maxWait: maxWait, handler)
        return copy
    }

    /// Whether any handler takes batches.
    var hasBatches: Bool { table.values.contains { $0.batching != nil } }

    /// These handlers for one worker: each batch handler with a collector of its own, counted by
    /// `gate`.
    func bound(to gate: BatchGate) -> [String: AnyMessageHandler] {
        table.mapValues { handler in
            guard let batching = handler.batching else { return handler }
            return AnyMessageHandler(
                payloadType: handler.payloadType,
                batching: batching,
                invoke: batching.bind(gate)
            )
        }
    }

    /// Refuses batch bounds that cannot work with `configuration`.
    func validateBatches(
        for configuration: Subscription.Configuration,
        consumer: String
    ) throws(MessageStoreError) {
        for (type, handler) in table.sorted(by: { $0.key < $1.key }) {
            guard let batching = handler.batching else { continue }
            func invalid(_ text: String) -> MessageStoreError {
                MessageStoreError(
                    code: .invalidConfiguration,
                    message: "the batch handler of \(type): \(text)",
                    consumer: consumer
                )
            }
            guard batching.maxCount >= 1 else { throw invalid("maxCount must be at least 1") }
            guard batching.maxWait >= .zero else { throw invalid("maxWait must not be negative") }
            guard batching.maxCount <= configuration.maxConcurrentHandlers else {
                throw invalid(
                    "maxCount \(batching.maxCount) is more than maxConcurrentHandlers "
                        + "(\(configuration.maxConcurrentHandlers)): a batch's messages are handled at once; "
                        + "raise maxConcurrentHandlers to at least \(batching.maxCount)"
                )
            }
        }
    }
}

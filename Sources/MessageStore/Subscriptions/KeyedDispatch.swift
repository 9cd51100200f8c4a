import Synchronization

/// Dispatch in order per key (``Subscription/Ordering``): one queue per key with messages
/// waiting, at most one runner per key, at most `limit` runners at once. A runner handles its
/// key's messages one after another until the queue is empty, then takes over a key waiting for
/// a runner, if any. Batches are queued as they arrive: no message waits for another key's.
///
/// What is queued is bounded by the consumer's max ack pending (the server delivers no more),
/// kept alive by the progress reports, and given back by a stop like any waiting message.
final class KeyedDispatch: Sendable {
    private struct State {
        /// The messages of each key being handled or waiting, head first; a key is here from
        /// its first message's arrival until its queue is empty.
        var queues: [String: FIFO<FetchedMessage>] = [:]
        /// Keys with messages and no runner, in the order they came.
        var waiting = FIFO<String>()
        var runners = 0
        var takeover: Takeover?
        /// Messages newer than the takeover's boundary, in the order they came, while it holds.
        var held: [FetchedMessage] = []
    }

    /// A partition taken over from another member that left messages unacknowledged: they come
    /// back (given back at once, or after their ack wait when it crashed), in no particular
    /// order, and the server may send newer messages first. Until every one of them is back (or
    /// the wait bound passes), what comes is held, then queued in stream order, so that no
    /// key's newer message runs before its older one.
    struct Takeover: Sendable {
        /// The last stream sequence the consumer had delivered when this holder took over.
        var boundary: UInt64
        /// How many messages were unacknowledged then.
        var outstanding: Int
        var returned: Set<UInt64> = []
        /// When to stop waiting for them.
        var deadline: ContinuousClock.Instant
    }

    private let dispatcher: Dispatcher
    private let key: @Sendable (String) -> String
    private let limit: Int
    /// Handler slots shared with other subscriptions (the partitions of a group member), taken
    /// for each message on top of `limit`.
    private let slots: HandlerSlots?
    private let state = Mutex(State())

    init(
        dispatcher: Dispatcher,
        key: @escaping @Sendable (String) -> String,
        limit: Int,
        slots: HandlerSlots? = nil,
        takeover: Takeover? = nil
    ) {
        self.dispatcher = dispatcher
        self.key = key
        self.limit = max(limit, 1)
        self.slots = slots
        state.withLock { $0.takeover = takeover }
    }

    /// Dispatches every batch of `batches`, calling `batchDone` once each is queued; returns
    /// when the batches end and every runner is done.
    func run(_ batches: AsyncStream<[FetchedMessage]>, batchDone: @escaping @Sendable () -> Void) async {
        await withDiscardingTaskGroup { group in
            if let deadline = state.withLock({ $0.takeover?.deadline }) {
                // The bound on a takeover's wait: then the held messages go on regardless.
                group.addTask {
                    while ContinuousClock.now < deadline && self.isHolding {
                        try? await Task.sleep(for: .milliseconds(50))
                    }
                    let start = self.state.withLock { state in self.endTakeover(&state) }
                    await withDiscardingTaskGroup { runners in
                        self.startRunners(for: start, in: &runners)
                    }
                }
            }
            for await batch in batches {
                startRunners(for: enqueue(batch), in: &group)
                batchDone()
            }
            // Nothing more comes: the bound's task need not wait (what is held was given back).
            state.withLock { state in
                state.takeover = nil
                state.held = []
            }
        }
    }

    /// Starts a runner for each of `keys`, all counted by the batch gate at once, before the
    /// first task runs, so that a batch does not start while a message is on its way to it.
    private func startRunners(for keys: [String], in group: inout DiscardingTaskGroup) {
        guard !keys.isEmpty else { return }
        dispatcher.batching?.enter(keys.count)
        for key in keys {
            group.addTask { await self.drain(startingWith: key) }
        }
    }

    private var isHolding: Bool {
        state.withLock { $0.takeover != nil }
    }

    /// Queues `batch`; returns the keys that need a runner started now.
    private func enqueue(_ batch: [FetchedMessage]) -> [String] {
        let keyed = batch.map { (key(dispatcher.context.applicationSubject($0.natsSubject)), $0) }
        return state.withLock { state in
            var start: [String] = []
            for (key, message) in keyed {
                if var takeover = state.takeover {
                    state.held.append(message)
                    if message.streamSequence <= takeover.boundary {
                        takeover.returned.insert(message.streamSequence)
                        state.takeover = takeover
                        if takeover.returned.count >= takeover.outstanding { start += endTakeover(&state) }
                    }
                    continue
                }
                enqueue(message, key: key, in: &state, start: &start)
            }
            return start
        }
    }

    private func enqueue(_ message: FetchedMessage, key: String, in state: inout State, start: inout [String]) {
        if state.queues[key] != nil {
            state.queues[key]?.append(message)
            return
        }
        state.queues[key] = FIFO([message])
        if state.runners < limit {
            state.runners += 1
            start.append(key)
        } else {
            state.waiting.append(key)
        }
    }

    /// Ends a takeover's wait: the held messages are queued in stream order (the server
    /// returns a crashed holder's messages in no particular order).
    private func endTakeover(_ state: inout State) -> [String] {
        guard state.takeover != nil else { return [] }
        state.takeover = nil
        var start: [String] = []
        for message in state.held.sorted(by: { $0.streamSequence < $1.streamSequence }) {
            enqueue(
                message,
                key: key(dispatcher.context.applicationSubject(message.natsSubject)),
                in: &state,
                start: &start
            )
        }
        state.held = []
        return start
    }

    /// Handles the messages of `first`, then of each waiting key, until none waits.
    /// Counted by the batch gate from before its task starts (see ``startRunners(for:in:)``).
    private func drain(startingWith first: String) async {
        // A runner can bring a message to a batch until it has no key left.
        defer { dispatcher.batching?.leave() }
        var key = first
        while true {
            var message = head(of: key)
            while let current = message {
                // Stopping: what has not started goes back, in order, including what a fetch
                // still under way brought after the stop gave back the rest; handling it here
                // would put it before its key's given-back messages.
                if dispatcher.context.isStopping() && !dispatcher.isServersLastDelivery(current) {
                    current.giveBackIfWaiting()
                } else if let slots {
                    await slots.acquire()
                    await dispatcher.process(current, retryingInPlace: true)
                    slots.release()
                } else {
                    await dispatcher.process(current, retryingInPlace: true)
                }
                message = next(of: key)
            }
            guard let following = takeWaitingKey() else { return }
            key = following
        }
    }

    private func head(of key: String) -> FetchedMessage? {
        state.withLock { $0.queues[key]?.first }
    }

    /// Drops the head of `key`'s queue (handled) and returns the next, or forgets the key.
    private func next(of key: String) -> FetchedMessage? {
        state.withLock { state in
            state.queues[key]?.removeFirst()
            if let next = state.queues[key]?.first { return next }
            state.queues[key] = nil
            return nil
        }
    }

    /// A key waiting for a runner, handed to the caller's runner; nil (and one runner less)
    /// when none waits.
    private func takeWaitingKey() -> String? {
        state.withLock { state in
            if let key = state.waiting.removeFirst() { return key }
            state.runners -= 1
            return nil
        }
    }

    /// How many keys have messages queued or running (tests).
    var activeKeyCount: Int {
        state.withLock { $0.queues.count }
    }
}

/// A counting semaphore for handlers: at most `count` holders at once, the others wait in
/// the order they came.
final class HandlerSlots: Sendable {
    private struct State {
        var free: Int
        var waiting = FIFO<CheckedContinuation<Void, Never>>()
    }

    private let state: Mutex<State>

    init(count: Int) {
        state = Mutex(State(free: max(count, 1)))
    }

    func acquire() async {
        let taken = state.withLock { state -> Bool in
            guard state.free > 0 else { return false }
            state.free -= 1
            return true
        }
        if taken { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let granted = state.withLock { state -> Bool in
                if state.free > 0 {
                    state.free -= 1
                    return true
                }
                state.waiting.append(continuation)
                return false
            }
            if granted { continuation.resume() }
        }
    }

    /// Hands the slot to the longest waiting task, or frees it.
    func release() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if let next = state.waiting.removeFirst() { return next }
            state.free += 1
            return nil
        }
        next?.resume()
    }
}

/// A first-in first-out queue over an array: appends at the end, removes from a moving head,
/// and compacts once the removed part is most of it.
struct FIFO<Element> {
    private var elements: [Element]
    private var head = 0

    init(_ elements: [Element] = []) {
        self.elements = elements
    }

    var first: Element? {
        head < elements.count ? elements[head] : nil
    }

    var isEmpty: Bool { head >= elements.count }

    mutating func append(_ element: Element) {
        elements.append(element)
    }

    @discardableResult
    mutating func removeFirst() -> Element? {
        guard head < elements.count else { return nil }
        let element = elements[head]
        head += 1
        if head >= 32 && head * 2 >= elements.count {
            elements.removeFirst(head)
            head = 0
        }
        return element
    }
}

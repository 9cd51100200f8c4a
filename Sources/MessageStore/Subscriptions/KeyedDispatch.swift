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
    }

    private let dispatcher: Dispatcher
    private let key: @Sendable (String) -> String
    private let limit: Int
    /// Handler slots shared with other subscriptions (the partitions of a group member), taken
    /// for each message on top of `limit`.
    private let slots: HandlerSlots?
    private let state = Mutex(State())

    init(dispatcher: Dispatcher, key: @escaping @Sendable (String) -> String, limit: Int, slots: HandlerSlots? = nil) {
        self.dispatcher = dispatcher
        self.key = key
        self.limit = max(limit, 1)
        self.slots = slots
    }

    /// Dispatches every batch of `batches`, calling `batchDone` once each is queued; returns
    /// when the batches end and every runner is done.
    func run(_ batches: AsyncStream<[FetchedMessage]>, batchDone: @escaping @Sendable () -> Void) async {
        await withDiscardingTaskGroup { group in
            for await batch in batches {
                for key in enqueue(batch) {
                    group.addTask { await self.drain(startingWith: key) }
                }
                batchDone()
            }
        }
    }

    /// Queues `batch`; returns the keys that need a runner started now.
    private func enqueue(_ batch: [FetchedMessage]) -> [String] {
        let keyed = batch.map { (key(dispatcher.context.applicationSubject($0.natsSubject)), $0) }
        return state.withLock { state in
            var start: [String] = []
            for (key, message) in keyed {
                if state.queues[key] != nil {
                    state.queues[key]?.append(message)
                    continue
                }
                state.queues[key] = FIFO([message])
                if state.runners < limit {
                    state.runners += 1
                    start.append(key)
                } else {
                    state.waiting.append(key)
                }
            }
            return start
        }
    }

    /// Handles the messages of `first`, then of each waiting key, until none waits.
    private func drain(startingWith first: String) async {
        var key = first
        while true {
            var message = head(of: key)
            while let current = message {
                if let slots {
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

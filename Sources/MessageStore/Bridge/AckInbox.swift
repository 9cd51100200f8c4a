import CNATS
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Publishes to JetStream on one connection and matches each acknowledgement to its publish.
///
/// Every publish carries the reply subject `<inbox>.<id>`, under one wildcard subscription;
/// the acknowledgement that arrives there settles whoever waits under `id`: a suspended caller
/// or a slot of a pipelined batch. A timer thread fails those whose acknowledgement has not come
/// by their deadline.
///
/// cnats' `js_PublishMsgAsync` does the same job, but builds a general JSON object out of each
/// acknowledgement, keeps its pending table under string keys and re-arms a timer on each
/// publish. At a hundred thousand publishes a second on a two-core machine that costs as much
/// as the rest of the publish; see ``PublishAckReply`` for how acknowledgements are read here.
final class AckInbox: @unchecked Sendable {
    // @unchecked: `state` is guarded by `lock`; `subscription`, `connection` and `prefix` are
    // set once in `start` before anything else may use them.
    typealias Outcome = Result<PublishAck, MessageStoreError>

    /// Who is told the outcome of a publish.
    ///
    /// Both payloads are references (and an integer), so the compiler knows the enum's layout:
    /// an enum holding a `CheckedContinuation`, whose layout the standard library keeps to
    /// itself, is copied and destroyed through runtime calls, several times per publish.
    enum Waiter {
        /// A caller suspended in ``publish(_:timeout:)``.
        case caller(Caller)
        /// A message of a pipelined batch.
        case batch(PipelinedBatch, index: Int)
        /// A publish sent by ``send(_:timeout:)``, whose outcome is awaited later, if at all.
        case sent(SentPublish)

        func settle(_ outcome: Outcome) {
            switch self {
            case .caller(let caller):
                caller.continuation.resume(returning: outcome)
            case .batch(let batch, let index):
                batch.settleSent(index: index, result: outcome)
            case .sent(let sent):
                sent.settle(outcome)
            }
        }

        var subject: String? {
            switch self {
            case .caller(let caller): return caller.subject
            case .sent(let sent): return sent.subject
            case .batch: return nil
            }
        }
    }

    /// A suspended caller and the application subject it published to.
    final class Caller: Sendable {
        let continuation: CheckedContinuation<Outcome, Never>
        let subject: String

        init(_ continuation: CheckedContinuation<Outcome, Never>, subject: String) {
            self.continuation = continuation
            self.subject = subject
        }
    }

    private struct Entry {
        let deadline: UInt64
        let waiter: Waiter
        /// Where the message went, to match the server's permission violations.
        let natsSubject: String
    }

    private struct State {
        var waiting = WaitingTable<Entry>()
        /// Deadlines of publishes, earliest first; entries already answered stay until popped.
        var deadlines = DeadlineHeap()
        /// When the timer thread wakes next, so a publish due earlier can wake it sooner.
        var timerWakesAt = UInt64.max
        var closedWith: MessageStoreError?
    }

    private let connection: OpaquePointer
    private let lock = ConditionLock()
    private var state = State()
    /// `<inbox>.`, NUL-free, to which each publish appends its id.
    private let prefix: [CChar]
    private var subscription: OpaquePointer?
    /// The subject subscribed, `<inbox>.*`: set before the subscription exists, since the
    /// connection's callback thread reads it.
    private let wildcard: String
    /// The C messages of sent publishes, destroyed a batch at a time (see ``MessageDisposal``).
    let sentDisposal = MessageDisposal()
    /// The same for acknowledgements, apart so that senders and the delivery thread do not
    /// contend for one lock.
    let ackDisposal = MessageDisposal()

    /// A new inbox subject, `<prefix>.<unique>`, with `prefix` (nil: NATS's `_INBOX`).
    static func uniqueInboxName(prefix: String?, _ context: ClientErrors.Context) throws(MessageStoreError) -> String {
        var inbox: UnsafeMutablePointer<natsInbox>?
        let status = natsInbox_Create(&inbox)
        guard status == NATS_OK, let inbox else { throw ClientErrors.make(status, context) }
        let name = String(cString: inbox)
        natsInbox_Destroy(inbox)
        // natsInbox_Create always says `_INBOX.<unique>`; a custom prefix takes its place.
        if let prefix, name.hasPrefix("_INBOX.") {
            return prefix + name.dropFirst("_INBOX".count)
        }
        return name
    }

    /// Subscribes to a new inbox on `connection` (not owned; it must outlive ``close()``), under
    /// `inboxPrefix` (nil: NATS's `_INBOX`).
    static func start(on connection: OpaquePointer, inboxPrefix: String? = nil) throws(MessageStoreError) -> AckInbox {
        let name = try uniqueInboxName(
            prefix: inboxPrefix,
            .init(operation: "publishing (creating a reply inbox)", isPublish: true)
        )
        let acks = AckInbox(connection: connection, inbox: name)
        // Released by the completion callback, after the last acknowledgement was handled.
        let retained = Unmanaged.passRetained(acks)
        var subscription: OpaquePointer?
        var subscribed = natsConnection_Subscribe(
            &subscription,
            connection,
            acks.wildcard,
            { _, _, message, closure in
                guard let closure else {
                    natsMsg_Destroy(message)
                    return
                }
                Unmanaged<AckInbox>.fromOpaque(closure).takeUnretainedValue().received(message)
            },
            retained.toOpaque()
        )
        if subscribed == NATS_OK, let subscription {
            // Acknowledgements are small and each one settles a publish: never drop one.
            subscribed = natsSubscription_SetPendingLimits(subscription, -1, -1)
            if subscribed == NATS_OK {
                subscribed = natsSubscription_SetOnCompleteCB(
                    subscription,
                    { closure in
                        guard let closure else { return }
                        Unmanaged<AckInbox>.fromOpaque(closure).release()
                    },
                    retained.toOpaque()
                )
            }
            if subscribed != NATS_OK {
                natsSubscription_Unsubscribe(subscription)
                natsSubscription_Destroy(subscription)
            }
        }
        guard subscribed == NATS_OK, let subscription else {
            // No completion callback was set: nothing else will release it.
            retained.release()
            throw ClientErrors.make(
                subscribed,
                .init(operation: "publishing (subscribing to acknowledgements)", isPublish: true)
            )
        }
        acks.subscription = subscription
        Threads.start(name: "ms-ack-timer") { [acks] in acks.expireLoop() }
        return acks
    }

    private init(connection: OpaquePointer, inbox: String) {
        self.connection = connection
        self.prefix = Array((inbox + ".").utf8CString.dropLast())
        self.wildcard = inbox + ".*"
    }

    deinit {
        natsSubscription_Destroy(subscription)
    }

    // MARK: Publishing

    /// Publishes and waits for the acknowledgement, at most `timeout`.
    ///
    /// Nothing here waits for the server: cnats writes the message (or keeps it in its
    /// reconnect buffer) and returns, so this runs on the caller's thread.
    func publish(_ publication: Publication, timeout: Duration) async throws(MessageStoreError) -> PublishAck {
        let outcome = await withCheckedContinuation { (continuation: CheckedContinuation<Outcome, Never>) in
            send(publication, timeout: timeout, to: .caller(Caller(continuation, subject: publication.subject)))
        }
        return try outcome.get()
    }

    /// Sends `publication` and returns at once; its outcome waits in the returned value until
    /// asked for (or is dropped with it).
    func send(_ publication: Publication, timeout: Duration) -> SentPublish {
        let sent = SentPublish(subject: publication.subject)
        send(publication, timeout: timeout, to: .sent(sent))
        return sent
    }

    /// Sends `publication`; `waiter` is told its outcome exactly once, possibly before this
    /// returns.
    func send(_ publication: Publication, timeout: Duration, to waiter: Waiter) {
        guard let id = register(CollectionOfOne((waiter, publication.natsSubject)), timeout: timeout) else { return }
        // Registered first: the acknowledgement may arrive before the publish call returns.
        if let error = write(publication, id: id) {
            take(id)?.settle(.failure(error))
        }
    }

    /// Sends messages of a pipelined batch, each answered through `batch` at its index. They
    /// are registered together, under one lock.
    func send(_ chunk: ArraySlice<(Int, Publication)>, timeout: Duration, batch: PipelinedBatch) {
        guard
            let firstID = register(
                chunk.lazy.map { (Waiter.batch(batch, index: $0.0), $0.1.natsSubject) },
                timeout: timeout
            )
        else { return }
        var id = firstID
        for (_, publication) in chunk {
            if let error = write(publication, id: id) {
                take(id)?.settle(.failure(error))
            }
            id += 1
        }
    }

    /// Registers `waiters` under consecutive ids and returns the first, or settles them with
    /// the error and returns nil when the inbox is closed.
    private func register(_ waiters: some Collection<(Waiter, String)>, timeout: Duration) -> UInt64? {
        let deadline = MonotonicClock.deadline(after: timeout)
        lock.lock()
        if let error = state.closedWith {
            lock.unlock()
            for (waiter, _) in waiters {
                var error = error
                error.subject = waiter.subject
                waiter.settle(.failure(error))
            }
            return nil
        }
        let firstID = state.waiting.nextID
        for (waiter, natsSubject) in waiters {
            let id = state.waiting.insert(Entry(deadline: deadline, waiter: waiter, natsSubject: natsSubject))
            state.deadlines.push(deadline: deadline, id: id)
        }
        if state.deadlines.count > 2 * state.waiting.count + 1024 {
            state.deadlines.rebuild(from: state.waiting.entries.lazy.map { ($0.value.deadline, $0.id) })
        }
        if deadline < state.timerWakesAt {
            lock.signal()
        }
        lock.unlock()
        return firstID
    }

    /// Sends `publication` with the reply subject of `id`; the error if cnats refused it.
    private func write(_ publication: Publication, id: UInt64) -> MessageStoreError? {
        // `<prefix><id>` and a NUL: 20 digits at most.
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: prefix.count + 21) { reply in
            var end = prefix.withUnsafeBufferPointer { prefix in
                _ = reply.initialize(fromContentsOf: prefix)
                return prefix.count
            }
            var digits = id
            let first = end
            repeat {
                reply[end] = CChar(UInt8(ascii: "0") + UInt8(digits % 10))
                digits /= 10
                end += 1
            } while digits > 0
            reply[first..<end].reverse()
            reply[end] = 0

            let status: natsStatus
            if publication.headers.isEmpty {
                do throws(MessageStoreError) {
                    try SubjectRules.validateLength(publication.natsSubject, subject: publication.subject)
                } catch {
                    return error
                }
                // The same PUB on the wire, without a C message to allocate and collect.
                status = publication.body.withUnsafeBytes { body in
                    natsConnection_PublishRequest(
                        connection,
                        publication.natsSubject,
                        reply.baseAddress,
                        body.baseAddress,
                        Int32(body.count)
                    )
                }
            } else {
                let message: OpaquePointer
                do throws(MessageStoreError) {
                    message = try CMessage.make(publication, reply: reply.baseAddress)
                } catch {
                    return error
                }
                status = natsConnection_PublishMsg(connection, message)
                sentDisposal.dispose(message)
            }
            return status == NATS_OK ? nil : ClientErrors.make(status, .publishing(publication.subject))
        }
    }

    // MARK: Acknowledgements

    /// Runs on the subscription's delivery thread.
    private func received(_ message: OpaquePointer?) {
        guard let message else { return }
        guard let id = id(of: message), let waiter = take(id) else {
            ackDisposal.dispose(message)
            return
        }
        let outcome = outcome(of: message, subject: waiter.subject)
        // Given up before the waiter hears, so that what it sees next is settled.
        ackDisposal.dispose(message)
        waiter.settle(outcome)
    }

    /// The id at the end of the reply subject, after the prefix.
    private func id(of message: OpaquePointer) -> UInt64? {
        guard let subject = natsMsg_GetSubject(message) else { return nil }
        var index = prefix.count
        var id: UInt64 = 0
        guard subject[index] != 0 else { return nil }
        while subject[index] != 0 {
            guard let next = id.appendingDecimalDigit(UInt8(bitPattern: subject[index])) else { return nil }
            id = next
            index += 1
        }
        return id
    }

    private func outcome(of message: OpaquePointer, subject: String?) -> Outcome {
        let context = ClientErrors.Context.publishing(subject)
        if natsMsg_IsNoResponders(message) {
            return .failure(ClientErrors.make(NATS_NO_RESPONDERS, context))
        }
        let length = Int(natsMsg_GetDataLength(message))
        let body = UnsafeRawBufferPointer(start: natsMsg_GetData(message), count: length)
        // Only this thread reads acknowledgements, so the last stream's name needs no lock.
        switch PublishAckReply.parse(body, previousStream: lastStream) {
        case .stored(let stream, let sequence, let isDuplicate):
            lastStream = stream
            return .success(PublishAck(stream: stream, sequence: sequence, isDuplicate: isDuplicate))
        case .refused(let code, let errorCode, let description):
            // As cnats reported it: NATS_ERR with JetStream's error code and description.
            return .failure(
                ClientErrors.make(
                    NATS_ERR,
                    jetStreamCode: jsErrCode(rawValue: UInt32(clamping: errorCode)),
                    text: description.isEmpty ? "error \(code)" : description,
                    context
                )
            )
        case .unreadable(let reason):
            let text = String(decoding: body.prefix(200), as: UTF8.self)
            return .failure(
                ClientErrors.make(
                    NATS_ERR,
                    text: "the server's acknowledgement could not be read (\(reason)): \(text)",
                    context
                )
            )
        }
    }

    /// The stream name of the latest acknowledgement, reused while it does not change. Only
    /// the subscription's delivery thread touches it (cnats hands it one message at a time).
    private var lastStream = ""

    private func take(_ id: UInt64) -> Waiter? {
        lock.lock()
        defer { lock.unlock() }
        return state.waiting.remove(id)?.waiter
    }

    // MARK: Deadlines and closing

    /// Fails every publish whose deadline passed; runs on its own thread until ``close()``.
    private func expireLoop() {
        lock.lock()
        while state.closedWith == nil {
            let now = MonotonicClock.now()
            var expired: [Waiter] = []
            while let (deadline, id) = state.deadlines.first, deadline <= now {
                state.deadlines.removeFirst()
                // Each id is pushed once, so a waiting entry's deadline is this one.
                if let entry = state.waiting.remove(id) {
                    expired.append(entry.waiter)
                }
            }
            if !expired.isEmpty {
                lock.unlock()
                for waiter in expired {
                    waiter.settle(
                        .failure(
                            ClientErrors.make(NATS_TIMEOUT, .publishing(waiter.subject))
                        )
                    )
                }
                lock.lock()
                continue
            }
            let next = state.deadlines.first?.deadline ?? (now + 60_000_000_000)
            state.timerWakesAt = next
            _ = lock.wait(nanoseconds: Int64(clamping: next - now))
            state.timerWakesAt = .max
        }
        lock.unlock()
    }

    /// Fails every publish still waiting with `connectionClosed`, and any made later. Unsubscribes
    /// (the connection may be closed already). Harmless to repeat.
    func close() {
        lock.lock()
        let alreadyClosed = state.closedWith != nil
        let error = ClientErrors.make(NATS_CONNECTION_CLOSED, .publishing(nil))
        state.closedWith = state.closedWith ?? error
        let everyone = state.waiting.removeAll().map(\.waiter)
        state.deadlines = DeadlineHeap()
        lock.signal()
        lock.unlock()
        if !alreadyClosed {
            natsSubscription_Unsubscribe(subscription)
        }
        sentDisposal.flush()
        ackDisposal.flush()
        for waiter in everyone {
            var error = error
            error.subject = waiter.subject
            waiter.settle(.failure(error))
        }
    }

    /// Fails the publishes the server refused: those waiting on the subject of a denied
    /// publish (no acknowledgement will come), or every one, now and later, when the inbox's own
    /// subscription was denied.
    func refused(_ violation: PermissionViolation) {
        if !violation.isPublish {
            guard violation.subject == wildcard else { return }
            let error = MessageStoreError(
                code: .permissionDenied,
                message: """
                    publishing failed: the server does not allow this user to subscribe to \(violation.subject), \
                    where acknowledgements arrive; allow it, or set an inbox prefix the user may subscribe to
                    """
            )
            lock.lock()
            state.closedWith = state.closedWith ?? error
            let everyone = state.waiting.removeAll().map(\.waiter)
            lock.signal()
            lock.unlock()
            for waiter in everyone {
                var error = error
                error.subject = waiter.subject
                waiter.settle(.failure(error))
            }
            return
        }
        lock.lock()
        let denied = state.waiting.entries.filter { $0.value.natsSubject == violation.subject }.map(\.id)
        let waiters = denied.compactMap { state.waiting.remove($0)?.waiter }
        lock.unlock()
        for waiter in waiters {
            waiter.settle(
                .failure(
                    MessageStoreError(
                        code: .permissionDenied,
                        message:
                            "publishing failed: the server does not allow this user to publish to \(violation.subject)",
                        subject: waiter.subject
                    )
                )
            )
        }
    }

    /// How many C messages wait to be destroyed.
    var heldMessageCount: Int {
        sentDisposal.heldCount + ackDisposal.heldCount
    }

    /// How many publishes wait for their acknowledgement.
    var waitingCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return state.waiting.count
    }
}

/// A publish sent without waiting for its acknowledgement: the outcome is kept until
/// ``outcome()`` asks for it, which may be before or after it arrives.
final class SentPublish: Sendable {
    private enum State {
        case inFlight
        case awaited(CheckedContinuation<AckInbox.Outcome, Never>)
        case watched(@Sendable (AckInbox.Outcome) -> Void)
        case settled(AckInbox.Outcome)
    }

    /// The application subject it was published to, for errors.
    let subject: String
    private let state: Mutex<State>

    init(subject: String) {
        self.subject = subject
        state = Mutex(.inFlight)
    }

    /// One that failed before it was sent.
    init(subject: String, failedWith error: MessageStoreError) {
        self.subject = subject
        state = Mutex(.settled(.failure(error)))
    }

    /// The error, if it has failed already (before it went out, most often).
    var failure: MessageStoreError? {
        state.withLock { state in
            if case .settled(.failure(let error)) = state { return error }
            return nil
        }
    }

    /// Whether ``outcome()`` is suspended waiting for it.
    var isAwaited: Bool {
        state.withLock { state in
            if case .awaited = state { return true }
            return false
        }
    }

    /// Waits for the acknowledgement (or the error, or the timeout given when it was sent).
    func outcome() async -> AckInbox.Outcome {
        await withCheckedContinuation { (continuation: CheckedContinuation<AckInbox.Outcome, Never>) in
            let settled = state.withLock { (state: inout State) -> AckInbox.Outcome? in
                if case .settled(let outcome) = state { return outcome }
                state = .awaited(continuation)
                return nil
            }
            if let settled { continuation.resume(returning: settled) }
        }
    }

    /// Calls `body` with the outcome once it is known: at once if it is, else on the thread that
    /// learns it (the inbox's delivery or timer thread, or the one closing it), so `body` must be
    /// short. Instead of ``outcome()``, not as well.
    func whenSettled(_ body: @escaping @Sendable (AckInbox.Outcome) -> Void) {
        let settled = state.withLock { (state: inout State) -> AckInbox.Outcome? in
            if case .settled(let outcome) = state { return outcome }
            state = .watched(body)
            return nil
        }
        if let settled { body(settled) }
    }

    /// Told once, by the inbox.
    func settle(_ outcome: AckInbox.Outcome) {
        let waiting = state.withLock { (state: inout State) -> State in
            defer { state = .settled(outcome) }
            return state
        }
        switch waiting {
        case .awaited(let continuation): continuation.resume(returning: outcome)
        case .watched(let body): body(outcome)
        case .inFlight, .settled: break
        }
    }
}

/// The ``AckInbox`` of one connection, subscribed on first use, so that a connection that
/// never publishes has no threads for it.
final class LazyAckInbox: @unchecked Sendable {
    // @unchecked: the connection pointer is set once (its owner keeps the connection open
    // until after ``close()``); the inbox is behind the Mutex.
    private let connection: OpaquePointer
    private let inboxPrefix: String?
    private let inbox = Mutex<AckInbox?>(nil)

    init(connection: OpaquePointer, inboxPrefix: String? = nil) {
        self.connection = connection
        self.inboxPrefix = inboxPrefix
    }

    /// The inbox, subscribed now if this is the first call since the start or ``close()``.
    func get() throws(MessageStoreError) -> AckInbox {
        try inbox.withLock { (inbox) throws(MessageStoreError) -> AckInbox in
            if let inbox { return inbox }
            let started = try AckInbox.start(on: connection, inboxPrefix: inboxPrefix)
            inbox = started
            return started
        }
    }

    /// The inbox if one is subscribed.
    var ifStarted: AckInbox? {
        inbox.withLock { $0 }
    }

    /// Closes the inbox (see ``AckInbox/close()``) and lets it go. Harmless to repeat.
    func close() {
        inbox.withLock { inbox in
            defer { inbox = nil }
            return inbox
        }?.close()
    }
}

/// A binary min-heap of (deadline, id).
struct DeadlineHeap {
    private var items: [(deadline: UInt64, id: UInt64)] = []

    var count: Int { items.count }

    var first: (deadline: UInt64, id: UInt64)? { items.first }

    mutating func push(deadline: UInt64, id: UInt64) {
        items.append((deadline, id))
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard items[child].deadline < items[parent].deadline else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func removeFirst() {
        guard !items.isEmpty else { return }
        items.swapAt(0, items.count - 1)
        items.removeLast()
        siftDown(from: 0)
    }

    /// Replaces the contents with `entries`, in linear time.
    mutating func rebuild(from entries: some Sequence<(UInt64, UInt64)>) {
        items = entries.map { (deadline: $0.0, id: $0.1) }
        var index = items.count / 2
        while index > 0 {
            index -= 1
            siftDown(from: index)
        }
    }

    private mutating func siftDown(from start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1
            guard left < items.count else { return }
            var smallest = left
            if left + 1 < items.count, items[left + 1].deadline < items[left].deadline {
                smallest = left + 1
            }
            guard items[smallest].deadline < items[parent].deadline else { return }
            items.swapAt(parent, smallest)
            parent = smallest
        }
    }
}

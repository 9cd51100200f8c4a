import CNATS
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Owns one `natsSubscription` bound to an existing durable pull consumer.
///
/// Only the subscription's fetch thread calls ``fetch(batch:longPoll:)``; any thread may call
/// ``unsubscribe()``, which wakes a blocked fetch. The C subscription is destroyed in `deinit`,
/// which runs only after every ``FetchedMessage`` (each holds a reference) is gone, so the
/// connection they acknowledge through outlives them.
final class PullSubscription: @unchecked Sendable {
    // @unchecked: the pointer is immutable; cnats subscriptions are thread-safe for
    // unsubscribe-while-fetching, and fetch is called from one thread only.
    private let subscription: OpaquePointer
    let client: NATSClient
    let stream: String
    let consumer: String
    /// Whether the consumer expects acknowledgements, so messages keep their reply subjects.
    let acknowledges: Bool

    private init(
        subscription: OpaquePointer,
        client: NATSClient,
        stream: String,
        consumer: String,
        acknowledges: Bool
    ) {
        self.subscription = subscription
        self.client = client
        self.stream = stream
        self.consumer = consumer
        self.acknowledges = acknowledges
    }

    deinit {
        natsSubscription_Destroy(subscription)
    }

    /// Binds to the durable consumer `consumer` of `stream`, which must already exist.
    static func bind(
        client: NATSClient,
        natsFilter: String,
        stream: String,
        consumer: String,
        acknowledges: Bool
    ) async throws(MessageStoreError) -> PullSubscription {
        try await client.pool.run { () throws(MessageStoreError) -> PullSubscription in
            var options = jsSubOptions()
            jsSubOptions_Init(&options)
            var subscription: OpaquePointer?
            var errorCode = jsErrCode(rawValue: 0)
            let status = stream.withCString { streamName in
                consumer.withCString { consumerName in
                    options.Stream = streamName
                    options.Consumer = consumerName
                    options.ManualAck = true
                    // Fetch requests go out at once; acknowledgements go on the main connection.
                    return client.withPromptJetStream { jetStream in
                        js_PullSubscribe(&subscription, jetStream, natsFilter, consumerName, nil, &options, &errorCode)
                    }
                }
            }
            guard status == NATS_OK, let subscription else {
                throw ClientErrors.make(
                    status,
                    jetStreamCode: errorCode,
                    .init(operation: "subscribing to consumer \(consumer)", stream: stream, consumer: consumer)
                )
            }
            return PullSubscription(
                subscription: subscription,
                client: client,
                stream: stream,
                consumer: consumer,
                acknowledges: acknowledges
            )
        }
    }

    enum FetchOutcome {
        case messages([FetchedMessage])
        /// Nothing to deliver right now (404 for a no-wait request, 408 or timeout for a long poll).
        case empty
        /// The subscription was unsubscribed or the connection closed: stop fetching.
        case finished
        case failed(MessageStoreError)
    }

    /// Fetches messages. Blocks the calling thread: call only from the fetch thread.
    /// - Parameters:
    ///   - batch: The most messages to take.
    ///   - longPoll: nil to return at once with what is available; otherwise wait up to this long
    ///     for the first message (the batch is then 1, so a lone message is not held back).
    func fetch(batch: Int, longPoll: Duration?) -> FetchOutcome {
        var request = jsFetchRequest()
        jsFetchRequest_Init(&request)
        if let longPoll {
            request.Batch = 1
            request.Expires = longPoll.nanoseconds
        } else {
            // The server answers a no-wait request at once; Expires only bounds how long the
            // client waits for that answer (cnats would otherwise not wait for it at all).
            request.Batch = Int32(clamping: batch)
            request.NoWait = true
            request.Expires = Duration.seconds(5).nanoseconds
        }
        var list = natsMsgList()
        let status = natsSubscription_FetchRequest(&list, subscription, &request)
        defer { natsMsgList_Destroy(&list) }
        switch status {
        case NATS_OK:
            // Everything is copied out here, on the fetch thread, and the C messages are destroyed
            // together with the list: destroying them one by one elsewhere would contend with
            // cnats' own collector thread on every message.
            var messages: [FetchedMessage] = []
            messages.reserveCapacity(Int(list.Count))
            for index in 0..<Int(list.Count) {
                guard let message = list.Msgs[index] else { continue }
                messages.append(FetchedMessage(copying: message, owner: self, previous: messages.last))
            }
            return .messages(messages)
        case NATS_NOT_FOUND, NATS_TIMEOUT:
            return .empty
        case NATS_INVALID_SUBSCRIPTION, NATS_CONNECTION_CLOSED:
            return .finished
        default:
            return .failed(
                ClientErrors.make(status, .init(operation: "fetching messages", stream: stream, consumer: consumer))
            )
        }
    }

    /// Stops the subscription; a fetch blocked on another thread returns at once. Harmless to repeat.
    func unsubscribe() {
        _ = natsSubscription_Unsubscribe(subscription)
    }
}

/// One fetched JetStream message: its parts copied into Swift values, and, for a consumer that
/// expects acknowledgements, the reply subject that acknowledges it.
///
/// The C message is not kept: acknowledging is publishing a short word (`+ACK`, `-NAK`, `+TERM`,
/// `+WPI`) to the reply subject, which is all cnats' `natsMsg_Ack` and its siblings do.
final class FetchedMessage: Sendable {
    /// Keeps the subscription (and so the connection) alive while this message may be acknowledged.
    let owner: PullSubscription
    let natsSubject: String
    let body: [UInt8]
    let headers: MessageHeaders
    let streamSequence: UInt64
    /// The consumer's own sequence: consecutive for an ordered read, so a gap shows a lost message.
    let consumerSequence: UInt64
    /// How many messages the consumer still had for the client when this one was sent.
    let pending: UInt64
    let deliveryCount: Int
    /// Nanoseconds since the Unix epoch.
    let timestamp: Int64
    /// Where acknowledgements go; nil for a consumer that takes none.
    private let replySubject: String?
    private let phase = Mutex(Phase.waiting)

    /// Where a fetched message is in the worker.
    enum Phase {
        /// Fetched, its handler not started.
        case waiting
        /// Taken by the dispatcher.
        case started
        /// Acknowledged, negatively acknowledged or terminated.
        case settled
    }

    /// Copies what Swift needs out of `message`, which stays the caller's; `previous`, the
    /// message before it in the batch, lends its subject when they are the same.
    init(copying message: OpaquePointer, owner: PullSubscription, previous: FetchedMessage?) {
        self.owner = owner
        natsSubject =
            previous.map { CMessage.subject(of: message, reusing: $0.natsSubject) } ?? CMessage.subject(of: message)
        body = CMessage.data(of: message)
        headers = CMessage.headers(of: message)
        let reply = natsMsg_GetReply(message)
        let facts = reply.flatMap { reply in
            reply.withMemoryRebound(to: UInt8.self, capacity: 1) {
                JetStreamReplySubject.parse(UnsafeBufferPointer(start: $0, count: strlen(reply)))
            }
        }
        streamSequence = facts?.streamSequence ?? 0
        consumerSequence = facts?.consumerSequence ?? 0
        pending = facts?.pending ?? 0
        deliveryCount = facts.map { Int(clamping: $0.deliveryCount) } ?? 1
        timestamp = facts?.timestamp ?? 0
        replySubject = owner.acknowledges ? reply.map { String(cString: $0) } : nil
    }

    enum Settlement {
        case ack
        case nak(delay: Duration)
        case term

        /// The acknowledgement protocol's words, as the server parses them.
        var word: String {
            switch self {
            case .ack: return "+ACK"
            case .nak(let delay) where delay > .zero: return "-NAK {\"delay\": \(delay.nanoseconds)}"
            case .nak: return "-NAK"
            case .term: return "+TERM"
            }
        }
    }

    /// Acknowledges, negatively acknowledges or terminates the message; only the first call counts.
    @discardableResult
    func settle(_ settlement: Settlement) -> MessageStoreError? {
        let first = phase.withLock { (phase: inout Phase) -> Bool in
            defer { phase = .settled }
            return phase != .settled
        }
        guard first else { return nil }
        return send(settlement.word, operation: "acknowledging message \(streamSequence)")
    }

    /// Takes a waiting message for dispatch; false when it was given back (or settled) already.
    func start() -> Bool {
        phase.withLock { phase in
            guard phase == .waiting else { return false }
            phase = .started
            return true
        }
    }

    /// Gives the message back to the server at once (`-NAK`) if its handler has not started.
    /// - Returns: Whether it was given back.
    @discardableResult
    func giveBackIfWaiting() -> Bool {
        let waiting = phase.withLock { phase in
            guard phase == .waiting else { return false }
            phase = .settled
            return true
        }
        if waiting { _ = send(Settlement.nak(delay: .zero).word, operation: "returning message \(streamSequence)") }
        return waiting
    }

    var isSettled: Bool {
        phase.withLock { $0 == .settled }
    }

    /// Tells the server the message is still being worked on (`+WPI`), resetting its ack timer.
    func reportProgress() {
        guard !isSettled else { return }
        _ = send("+WPI", operation: "reporting progress on message \(streamSequence)")
    }

    private func send(_ word: String, operation: String) -> MessageStoreError? {
        guard let replySubject else {
            return MessageStoreError(
                code: .clientError,
                message: "\(operation): the consumer \(owner.consumer) takes no acknowledgements"
            )
        }
        var word = word
        let status = word.withUTF8 { bytes in
            owner.client.withConnection { connection in
                natsConnection_Publish(connection, replySubject, bytes.baseAddress, Int32(bytes.count))
            }
        }
        guard status == NATS_OK else {
            return ClientErrors.make(
                status,
                .init(operation: operation, stream: owner.stream, consumer: owner.consumer)
            )
        }
        return nil
    }
}

import CNATS
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Pulls messages from an existing JetStream consumer: a subscription on an inbox of its own,
/// and pull requests (`CONSUMER.MSG.NEXT`) whose replies come back to it.
///
/// The requests are made here rather than by cnats' fetch, which takes any delivered message
/// with an empty body and a status-like first header line (`NATS/1.0 409 …`) for one of the
/// server's status messages: a peer could store such a message and it would never be handled
/// or dead-lettered, and stall fetching meanwhile. Here a message that carries a JetStream
/// acknowledgement subject (`$JS.ACK.…`) is a stored message, whatever its headers say; only
/// messages without one are the server's statuses, and only those answering the current request
/// count.
///
/// Only the subscription's fetch thread calls ``fetch(batch:longPoll:)``; any thread may call
/// ``unsubscribe()``, which wakes a blocked fetch. The C subscription is destroyed in `deinit`,
/// which runs only after every ``FetchedMessage`` (each holds a reference) is gone, so the
/// connection they acknowledge through outlives them.
final class PullSubscription: @unchecked Sendable {
    // @unchecked: the pointer is immutable and cnats subscriptions are thread-safe for
    // unsubscribe-while-fetching; `requests` is touched by the one fetch thread only.
    private let subscription: OpaquePointer
    let client: NATSClient
    let stream: String
    let consumer: String
    /// Whether the consumer expects acknowledgements, so messages keep their reply subjects.
    let acknowledges: Bool
    /// `<inbox>.`: request n is answered on `<inbox>.<n>`.
    private let replyPrefix: String
    private let requestSubject: String
    private var requests: UInt64 = 0

    private init(
        subscription: OpaquePointer,
        replyPrefix: String,
        client: NATSClient,
        stream: String,
        consumer: String,
        acknowledges: Bool
    ) {
        self.subscription = subscription
        self.replyPrefix = replyPrefix
        self.client = client
        self.stream = stream
        self.consumer = consumer
        self.acknowledges = acknowledges
        requestSubject = client.jetStreamAPIPrefix + "CONSUMER.MSG.NEXT.\(stream).\(consumer)"
    }

    deinit {
        natsSubscription_Destroy(subscription)
    }

    /// Subscribes to receive from the consumer `consumer` of `stream`, which must already exist.
    static func bind(
        client: NATSClient,
        stream: String,
        consumer: String,
        acknowledges: Bool
    ) async throws(MessageStoreError) -> PullSubscription {
        try await client.pool.run { () throws(MessageStoreError) -> PullSubscription in
            let context = ClientErrors.Context(
                operation: "subscribing to consumer \(consumer)",
                stream: stream,
                consumer: consumer
            )
            let name = try AckInbox.uniqueInboxName(prefix: client.inboxPrefix, context)
            var subscription: OpaquePointer?
            // Requests and their replies go over the connection that sends at once;
            // acknowledgements go on the main connection.
            var status = client.withPromptConnection { connection in
                natsConnection_SubscribeSync(&subscription, connection, name + ".*")
            }
            guard status == NATS_OK, let subscription else { throw ClientErrors.make(status, context) }
            // A fetch takes at most a batch; the batch, not cnats' default limits, bounds what waits.
            status = natsSubscription_SetPendingLimits(subscription, -1, -1)
            guard status == NATS_OK else {
                natsSubscription_Destroy(subscription)
                throw ClientErrors.make(status, context)
            }
            return PullSubscription(
                subscription: subscription,
                replyPrefix: name + ".",
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
        requests &+= 1
        let reply = replyPrefix + String(requests)
        let wanted: Int
        let request: String
        let wait: Duration
        if let longPoll {
            wanted = 1
            request = "{\"batch\":1,\"expires\":\(longPoll.nanoseconds)}"
            // The server ends the request with a 408 when it expires; this is only a bound.
            wait = longPoll + .seconds(1)
        } else {
            wanted = max(batch, 1)
            request = "{\"batch\":\(wanted),\"no_wait\":true}"
            // The server answers a no-wait request at once; this only bounds the wait for it.
            wait = .seconds(5)
        }
        var body = request
        let sent = body.withUTF8 { bytes in
            client.withPromptConnection { connection in
                natsConnection_PublishRequest(connection, requestSubject, reply, bytes.baseAddress, Int32(bytes.count))
            }
        }
        switch sent {
        case NATS_OK: break
        case NATS_CONNECTION_CLOSED: return .finished
        default: return .failed(failure(sent))
        }

        let deadline = ContinuousClock.now + wait
        var messages: [FetchedMessage] = []
        while messages.count < wanted {
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero else { break }
            var message: OpaquePointer?
            let status = natsSubscription_NextMsg(&message, subscription, max(remaining.milliseconds, 1))
            switch status {
            case NATS_OK:
                guard let message else { continue }
                defer { natsMsg_Destroy(message) }
                switch classify(message, reply: reply) {
                case .stored:
                    messages.append(FetchedMessage(copying: message, owner: self, previous: messages.last))
                case .other:
                    continue
                case .requestEnded:
                    return messages.isEmpty ? .empty : .messages(messages)
                case .refused(let error):
                    return messages.isEmpty ? .failed(error) : .messages(messages)
                }
            case NATS_TIMEOUT:
                return messages.isEmpty ? .empty : .messages(messages)
            case NATS_INVALID_SUBSCRIPTION, NATS_CONNECTION_CLOSED:
                return messages.isEmpty ? .finished : .messages(messages)
            default:
                return messages.isEmpty ? .failed(failure(status)) : .messages(messages)
            }
        }
        return messages.isEmpty ? .empty : .messages(messages)
    }

    private enum Arrival {
        /// A message of the stream: it carries its acknowledgement subject.
        case stored
        /// The server's end of the current request: no more messages (404), expired (408).
        case requestEnded
        /// The server refused the current request (409 and others).
        case refused(MessageStoreError)
        /// A heartbeat, or the status of an earlier request.
        case other
    }

    /// Tells a stored message from the server's status messages by its reply subject, never by
    /// its headers (a stored message may carry any header a peer wrote).
    private func classify(_ message: OpaquePointer, reply: String) -> Arrival {
        if let replySubject = natsMsg_GetReply(message), strncmp(replySubject, "$JS.ACK.", 8) == 0 {
            return .stored
        }
        // A status is addressed to the request it answers; one for an earlier request is late.
        guard let subject = natsMsg_GetSubject(message), strcmp(subject, reply) == 0 else { return .other }
        var value: UnsafePointer<CChar>?
        guard natsMsgHeader_Get(message, "Status", &value) == NATS_OK, let value else { return .other }
        let code = Int(String(cString: value)) ?? 0
        switch code {
        case 100: return .other
        case 404, 408: return .requestEnded
        default:
            var descriptionValue: UnsafePointer<CChar>?
            _ = natsMsgHeader_Get(message, "Description", &descriptionValue)
            let description = descriptionValue.map { String(cString: $0) } ?? "status \(code)"
            return .refused(
                MessageStoreError(
                    code: .serverError,
                    message:
                        "fetching messages from consumer \(consumer) failed: the server answered \(code) \(description)",
                    stream: stream,
                    consumer: consumer
                )
            )
        }
    }

    private func failure(_ status: natsStatus) -> MessageStoreError {
        ClientErrors.make(status, .init(operation: "fetching messages", stream: stream, consumer: consumer))
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

        /// Whether it is sent at once rather than coalesced with others: a negative
        /// acknowledgement or a termination ends an attempt, and the next one waits for it.
        var isImmediate: Bool {
            if case .ack = self { return false }
            return true
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
        return send(
            settlement.word,
            immediate: settlement.isImmediate,
            operation: "acknowledging message \(streamSequence)"
        )
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
        if waiting {
            let giveBack = Settlement.nak(delay: .zero)
            _ = send(giveBack.word, immediate: giveBack.isImmediate, operation: "returning message \(streamSequence)")
        }
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

    /// `operation` names what failed in an error; it is only formatted then, not for every
    /// acknowledgement.
    private func send(
        _ word: String,
        immediate: Bool = false,
        operation: @autoclosure () -> String
    ) -> MessageStoreError? {
        guard let replySubject else {
            return MessageStoreError(
                code: .clientError,
                message: "\(operation()): the consumer \(owner.consumer) takes no acknowledgements"
            )
        }
        var word = word
        let status = word.withUTF8 { bytes in
            // Acknowledgements and progress reports wait in the main connection's flusher, which
            // coalesces them; a message given back or terminated is sent at once, so that its
            // redelivery (or the next attempt's) does not wait up to a millisecond for it.
            owner.client.withConnection(sendingAtOnce: immediate) { connection in
                natsConnection_Publish(connection, replySubject, bytes.baseAddress, Int32(bytes.count))
            }
        }
        guard status == NATS_OK else {
            return ClientErrors.make(
                status,
                .init(operation: operation(), stream: owner.stream, consumer: owner.consumer)
            )
        }
        return nil
    }
}

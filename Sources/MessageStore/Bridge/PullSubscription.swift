import CNATS
import Synchronization

/// Owns one `natsSubscription` bound to an existing durable pull consumer.
///
/// Only the subscription's fetch thread calls ``fetch(batch:longPoll:)``; any thread may call
/// ``unsubscribe()``, which wakes a blocked fetch. The C subscription is destroyed in `deinit`,
/// which runs only after every ``FetchedMessage`` (each holds a reference) is gone, because a
/// `natsMsg` keeps a raw pointer to its subscription for acknowledging.
final class PullSubscription: @unchecked Sendable {
    // @unchecked: the pointer is immutable; cnats subscriptions are thread-safe for
    // unsubscribe-while-fetching, and fetch is called from one thread only.
    private let subscription: OpaquePointer
    let client: NATSClient
    let stream: String
    let consumer: String

    private init(subscription: OpaquePointer, client: NATSClient, stream: String, consumer: String) {
        self.subscription = subscription
        self.client = client
        self.stream = stream
        self.consumer = consumer
    }

    deinit {
        natsSubscription_Destroy(subscription)
    }

    /// Binds to the durable consumer `consumer` of `stream`, which must already exist.
    static func bind(
        client: NATSClient,
        natsFilter: String,
        stream: String,
        consumer: String
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
                    return client.withJetStream { jetStream in
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
            return PullSubscription(subscription: subscription, client: client, stream: stream, consumer: consumer)
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
            var messages: [FetchedMessage] = []
            messages.reserveCapacity(Int(list.Count))
            for index in 0..<Int(list.Count) {
                guard let message = list.Msgs[index] else { continue }
                // Take the message out of the list so natsMsgList_Destroy leaves it alone.
                list.Msgs[index] = nil
                messages.append(FetchedMessage(message: message, owner: self))
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

/// One fetched JetStream message: its parts copied into Swift values, and the C message kept
/// only to acknowledge it. Destroyed once, when the last reference goes.
final class FetchedMessage: @unchecked Sendable {
    // @unchecked: `message` is used only through the lock-guarded `settle`/`progress` calls.
    private let message: OpaquePointer
    /// Keeps the subscription (and its C object) alive while this message may be acknowledged.
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
    private let settled = Mutex(false)

    init(message: OpaquePointer, owner: PullSubscription) {
        self.message = message
        self.owner = owner
        natsSubject = CMessage.subject(of: message)
        body = CMessage.data(of: message)
        headers = CMessage.headers(of: message)
        var metadata: UnsafeMutablePointer<jsMsgMetaData>?
        if natsMsg_GetMetaData(&metadata, message) == NATS_OK, let metadata {
            streamSequence = metadata.pointee.Sequence.Stream
            consumerSequence = metadata.pointee.Sequence.Consumer
            pending = metadata.pointee.NumPending
            deliveryCount = Int(metadata.pointee.NumDelivered)
            timestamp = metadata.pointee.Timestamp
            jsMsgMetaData_Destroy(metadata)
        } else {
            streamSequence = 0
            consumerSequence = 0
            pending = 0
            deliveryCount = 1
            timestamp = 0
        }
    }

    deinit {
        natsMsg_Destroy(message)
    }

    enum Settlement {
        case ack
        case nak(delay: Duration)
        case term
    }

    /// Acknowledges, negatively acknowledges or terminates the message; only the first call counts.
    @discardableResult
    func settle(_ settlement: Settlement) -> MessageStoreError? {
        settled.withLock { (done: inout Bool) -> MessageStoreError? in
            guard !done else { return nil }
            done = true
            let status: natsStatus
            switch settlement {
            case .ack: status = natsMsg_Ack(message, nil)
            case .nak(let delay) where delay > .zero: status = natsMsg_NakWithDelay(message, delay.milliseconds, nil)
            case .nak: status = natsMsg_Nak(message, nil)
            case .term: status = natsMsg_Term(message, nil)
            }
            guard status == NATS_OK else {
                return ClientErrors.make(
                    status,
                    .init(
                        operation: "acknowledging message \(streamSequence)",
                        stream: owner.stream,
                        consumer: owner.consumer
                    )
                )
            }
            return nil
        }
    }

    /// Tells the server the message is still being worked on (`+WPI`), resetting its ack timer.
    func reportProgress() {
        settled.withLock { done in
            if !done { _ = natsMsg_InProgress(message, nil) }
        }
    }
}

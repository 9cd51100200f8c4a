#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The handlers of a subscription: one per message type, chosen by the envelope's `type`.
///
/// ```swift
/// let handlers = MessageHandlers()
///     .handling(OrderPlaced.self) { message in
///         try await ship(message.data.orderId)
///     }
///     .handling(OrderCancelled.self) { message in
///         print("cancelled", message.data.orderId)
///     }
/// ```
///
/// Handlers may be synchronous or asynchronous, and may throw: a thrown error means "retry later"
/// (until the last attempt), ``MessageTermination`` means "give up now".
public struct MessageHandlers: Sendable {
    var table: [String: AnyMessageHandler] = [:]

    /// Creates an empty set of handlers.
    public init() {}

    /// Registers the handler for `Payload`'s message type, replacing any handler already there.
    public mutating func on<Payload: MessagePayload>(
        _: Payload.Type,
        _ handler: @escaping @Sendable (ReceivedMessage<Payload>) async throws -> Void
    ) {
        table[Payload.messageType] = AnyMessageHandler(Payload.self, handler)
    }

    /// Returns these handlers plus the handler for `Payload`'s message type.
    public func handling<Payload: MessagePayload>(
        _ type: Payload.Type,
        _ handler: @escaping @Sendable (ReceivedMessage<Payload>) async throws -> Void
    ) -> MessageHandlers {
        var copy = self
        copy.on(type, handler)
        return copy
    }

    /// The message types that have a handler.
    public var messageTypes: [String] { table.keys.sorted() }
}

/// A handler with its payload type erased, so handlers of different types share one table.
struct AnyMessageHandler: Sendable {
    let payloadType: any MessagePayload.Type
    /// A batch handler's bounds and binding; nil for a handler of one message at a time.
    let batching: BatchHandling?
    let invoke: @Sendable (any MessagePayload, DeliveryContext) async throws -> Void

    init(
        payloadType: any MessagePayload.Type,
        batching: BatchHandling?,
        invoke: @escaping @Sendable (any MessagePayload, DeliveryContext) async throws -> Void
    ) {
        self.payloadType = payloadType
        self.batching = batching
        self.invoke = invoke
    }

    init<Payload: MessagePayload>(
        _: Payload.Type,
        batching: BatchHandling? = nil,
        _ handler: @escaping @Sendable (ReceivedMessage<Payload>) async throws -> Void
    ) {
        self.init(payloadType: Payload.self, batching: batching) { payload, context in
            // The dispatcher decoded `payload` with this handler's own `payloadType`.
            try await handler(Self.received(payload as! Payload, context))
        }
    }

    /// The message a handler receives.
    static func received<Payload: MessagePayload>(_ data: Payload, _ context: DeliveryContext) -> ReceivedMessage<
        Payload
    > {
        ReceivedMessage(
            data: data,
            type: context.type,
            subject: context.subject,
            sequence: context.sequence,
            timestamp: context.timestamp,
            metadata: context.metadata,
            headers: context.headers,
            attempt: context.attempt,
            maxAttempts: context.maxAttempts,
            isLastAttempt: context.isLastAttempt,
            stream: context.stream,
            consumer: context.consumer,
            termination: context.termination
        )
    }
}

/// Everything about a delivery except its typed data.
struct DeliveryContext: Sendable {
    var type: String
    var subject: String
    var sequence: UInt64
    var timestamp: Date
    var metadata: MessageMetadata?
    var headers: MessageHeaders
    var attempt: Int
    var maxAttempts: Int
    var isLastAttempt: Bool
    var stream: String
    var consumer: String
    var termination: TerminationRequest
}

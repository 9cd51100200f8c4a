/// How to fold a subject's messages into a value: an initial value plus a reducer per message type.
///
/// ```swift
/// let balance = Projection(initial: 0)
///     .reducing(Deposited.self) { total, event in total + event.data.amount }
///     .reducing(Withdrawn.self) { total, event in total - event.data.amount }
/// let current = try await store.fetch("account.42", projection: balance)
/// ```
///
/// Messages of other types are passed over, as the Python package does.
public struct Projection<State: Sendable>: Sendable {
    /// The value before any message.
    public var initial: State
    var reducers: [String: AnyReducer<State>] = [:]

    /// Creates a projection that starts from `initial`.
    public init(initial: State) {
        self.initial = initial
    }

    /// Sets the reducer for `Payload`'s message type, replacing any reducer already there.
    public mutating func on<Payload: MessagePayload>(
        _: Payload.Type,
        _ reducer: @escaping @Sendable (State, DecodedMessage<Payload>) throws -> State
    ) {
        reducers[Payload.messageType] = AnyReducer(Payload.self, reducer)
    }

    /// Returns this projection plus the reducer for `Payload`'s message type.
    public func reducing<Payload: MessagePayload>(
        _ type: Payload.Type,
        _ reducer: @escaping @Sendable (State, DecodedMessage<Payload>) throws -> State
    ) -> Projection {
        var copy = self
        copy.on(type, reducer)
        return copy
    }

    /// The message types that have a reducer.
    public var messageTypes: [String] { reducers.keys.sorted() }
}

struct AnyReducer<State: Sendable>: Sendable {
    let payloadType: any MessagePayload.Type
    let apply: @Sendable (State, any MessagePayload, StoredMessage) throws -> State

    init<Payload: MessagePayload>(
        _: Payload.Type,
        _ reducer: @escaping @Sendable (State, DecodedMessage<Payload>) throws -> State
    ) {
        payloadType = Payload.self
        apply = { state, payload, message in
            // Decoded with this reducer's own `payloadType`.
            try reducer(state, DecodedMessage(data: payload as! Payload, message: message))
        }
    }
}

/// A stored message together with its data decoded as `Payload`.
@dynamicMemberLookup
public struct DecodedMessage<Payload: MessagePayload>: Sendable {
    /// The typed data.
    public var data: Payload
    /// The message as stored: subject, sequence, timestamp, metadata, headers, body.
    public var message: StoredMessage

    /// Creates a decoded message.
    public init(data: Payload, message: StoredMessage) {
        self.data = data
        self.message = message
    }

    /// The stored message's properties, such as `sequence` or `metadata`.
    public subscript<Value>(dynamicMember keyPath: KeyPath<StoredMessage, Value>) -> Value {
        message[keyPath: keyPath]
    }
}

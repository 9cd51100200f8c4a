/// A message to publish in a pipelined batch, with everything ``MessageStore/publish(_:to:metadata:id:headers:expectedLastSubjectSequence:timeout:)``
/// takes for one message.
///
/// ```swift
/// let results = await store.publish(contentsOf: orders.map {
///     OutgoingMessage(OrderPlaced(orderId: $0.id), to: "orders.event.\($0.id)", id: $0.id)
/// })
/// ```
public struct OutgoingMessage: Sendable {
    /// The application subject (without the environment prefix).
    public var subject: String
    /// The payload.
    public var payload: any MessagePayload
    /// Metadata for the envelope. Defaults to none.
    public var metadata: MessageMetadata?
    /// De-duplication id (`Nats-Msg-Id`). Defaults to none.
    public var id: String?
    /// Extra headers. Defaults to none.
    public var headers: MessageHeaders
    /// Optimistic concurrency: the sequence the subject's last message must have (0: no message
    /// yet). Defaults to none.
    public var expectedLastSubjectSequence: UInt64?

    /// Creates a message to publish.
    public init(
        _ payload: some MessagePayload,
        to subject: String,
        metadata: MessageMetadata? = nil,
        id: String? = nil,
        headers: MessageHeaders = [:],
        expectedLastSubjectSequence: UInt64? = nil
    ) {
        self.payload = payload
        self.subject = subject
        self.metadata = metadata
        self.id = id
        self.headers = headers
        self.expectedLastSubjectSequence = expectedLastSubjectSequence
        encoded = nil
    }

    /// A message whose body is already an encoded envelope (see
    /// ``BodyCoding/encodeEnvelope(_:metadata:subject:)``), such as one staged in an outbox: it
    /// is sent as it is, under `type` for traces. ``payload`` is then a placeholder.
    public init(
        encodedBody: [UInt8],
        type: String,
        to subject: String,
        id: String? = nil,
        headers: MessageHeaders = [:]
    ) {
        self.subject = subject
        payload = EncodedPayload()
        metadata = nil
        self.id = id
        self.headers = headers
        expectedLastSubjectSequence = nil
        encoded = (encodedBody, type)
    }

    /// The body and type of a message made with ``init(encodedBody:type:to:id:headers:)``.
    let encoded: (body: [UInt8], type: String)?

    /// The envelope type this message is traced under.
    var messageType: String {
        encoded?.type ?? Swift.type(of: payload).messageType
    }
}

/// The payload of an ``OutgoingMessage`` whose body came encoded.
struct EncodedPayload: MessagePayload {
    static let messageType = "encoded"
}

extension BodyCoding {
    /// The envelope body that publishing `payload` to `subject` would send, for storing it to be
    /// sent later (an outbox) with ``OutgoingMessage/init(encodedBody:type:to:id:headers:)``.
    ///
    /// - Throws: ``MessageStoreError/Code/encodingFailed`` when the payload does not encode as a
    ///   JSON object.
    public func encodeEnvelope(
        _ payload: some MessagePayload,
        metadata: MessageMetadata? = nil,
        subject: String
    ) throws(MessageStoreError) -> [UInt8] {
        try Envelope.encode(payload, metadata: metadata, subject: subject, coding: self)
    }
}

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
    }
}

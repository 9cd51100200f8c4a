/// JetStream's acknowledgement of a stored message.
public struct PublishAck: Sendable, Hashable {
    /// The stream that stored the message.
    public var stream: String
    /// The message's sequence number in that stream.
    public var sequence: UInt64
    /// Whether the server recognised the message id as one it already stored within the stream's
    /// duplicate window; the message was then not stored again.
    public var isDuplicate: Bool

    /// Creates an acknowledgement.
    public init(stream: String, sequence: UInt64, isDuplicate: Bool) {
        self.stream = stream
        self.sequence = sequence
        self.isDuplicate = isDuplicate
    }
}

#if canImport(FoundationEssentials)
    public import FoundationEssentials
#else
    public import Foundation
#endif

/// A message read back from a stream.
public struct StoredMessage: Sendable {
    /// The envelope's `type`.
    public var type: String
    /// The application subject (environment prefix removed).
    public var subject: String
    /// The message's sequence in its stream.
    public var sequence: UInt64
    /// When the server stored the message.
    public var timestamp: Date
    /// The envelope's metadata, if any.
    public var metadata: MessageMetadata?
    /// The message's headers.
    public var headers: MessageHeaders
    /// The whole JSON body, as stored.
    public var body: [UInt8]
    /// How ``decode(as:)`` reads the body: the store's ``MessageStore/Configuration/bodyCoding``.
    var bodyCoding: BodyCoding = .fast

    /// Decodes the envelope's `data` as `Payload`.
    /// - Throws: ``MessageStoreError`` with code ``MessageStoreError/Code/decodingFailed`` when
    ///   the data does not fit the type.
    public func decode<Payload: Decodable>(as _: Payload.Type = Payload.self) throws(MessageStoreError) -> Payload {
        try Envelope.decodeData(
            Payload.self,
            from: body,
            type: type,
            subject: subject,
            sequence: sequence,
            coding: bodyCoding
        )
    }

    /// The envelope's `data` as untyped JSON.
    public var data: JSONValue {
        get throws(MessageStoreError) {
            try decode(as: JSONValue.self)
        }
    }

    init(raw: RawStoredMessage, naming: Naming, bodyCoding: BodyCoding) throws(MessageStoreError) {
        let subject = naming.applicationSubject(raw.natsSubject)
        let head = try Envelope.decodeHead(raw.body, subject: subject, sequence: raw.sequence, coding: bodyCoding)
        self.bodyCoding = bodyCoding
        type = head.type
        metadata = head.metadata
        self.subject = subject
        sequence = raw.sequence
        timestamp = Date(timeIntervalSince1970: Double(raw.timestamp) / 1_000_000_000)
        headers = raw.headers
        body = raw.body
    }
}

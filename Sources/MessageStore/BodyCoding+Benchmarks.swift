/// What the JSON micro-benchmarks (`Benchmarks/JSONCoding`) measure: the body coding of a
/// publish, of a worker's dispatch and of a read, as the store does them, with either
/// ``BodyCoding``. Not for applications: `@_spi(Benchmarks)`, and it may change at any time.
@_spi(Benchmarks)
public enum BodyCodingBenchmarks {
    /// The envelope bytes a publish of `payload` sends.
    public static func encodeEnvelope(
        _ payload: some MessagePayload,
        metadata: MessageMetadata?,
        coding: BodyCoding
    ) throws(MessageStoreError) -> [UInt8] {
        try Envelope.encode(payload, metadata: metadata, subject: "benchmark", coding: coding)
    }

    /// A worker's decoder for the message types of `payloadTypes`.
    public struct DispatchDecoder: Sendable {
        let decoder: BodyDecoder

        public init(payloadTypes: [any MessagePayload.Type], coding: BodyCoding) {
            var table: [String: any MessagePayload.Type] = [:]
            for type in payloadTypes { table[type.messageType] = type }
            decoder = Envelope.makeDispatchDecoder(payloadTypes: table, coding: coding)
        }

        /// Decodes `body` as a worker does before calling a handler; returns the typed payload,
        /// or nil when no handler takes the message's type.
        public func decode(_ body: [UInt8]) throws -> (any MessagePayload)? {
            try Envelope.decodeForDispatch(body, using: decoder).payload
        }
    }

    /// Decodes `body` as a read of one message does: the envelope's type and metadata, then its
    /// `data` as `Payload`.
    public static func decodeStored<Payload: MessagePayload>(
        _: Payload.Type,
        from body: [UInt8],
        coding: BodyCoding
    ) throws(MessageStoreError) -> Payload {
        let head = try Envelope.decodeHead(body, subject: nil, sequence: nil, coding: coding)
        return try Envelope.decodeData(
            Payload.self,
            from: body,
            type: head.type,
            subject: nil,
            sequence: nil,
            coding: coding
        )
    }
}

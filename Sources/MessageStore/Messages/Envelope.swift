import MessageStoreJSON

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The JSON body every message carries: `{"type": …, "data": {…}, "metadata": {…}}`.
enum Envelope {
    /// The parts of an incoming envelope that do not depend on the payload type.
    struct Head: Decodable {
        var type: String
        var metadata: MessageMetadata?

        private enum CodingKeys: String, CodingKey {
            case type, data, metadata
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            type = try container.decode(String.self, forKey: .type)
            // `data` must be a JSON object, whatever is inside it.
            _ = try container.nestedContainer(keyedBy: AnyKey.self, forKey: .data)
            metadata = try container.decodeIfPresent(MessageMetadata.self, forKey: .metadata)
        }
    }

    private struct DataOnly<Payload: Decodable>: Decodable {
        var data: Payload
    }

    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// Shared coders: configuring one per message costs more than the coding itself, and
    /// the coders are safe to share once configured. Message bodies are encoded by
    /// `FastJSONEncoder`, which falls back to this encoder, unless ``BodyCoding/foundation``.
    static let encoder = makeEncoder()
    /// The decoder for message bodies: `FastJSONDecoder`, falling back to `JSONDecoder`.
    static let bodyDecoder = BodyDecoder()
    /// The decoder for message bodies with ``BodyCoding/foundation``: `JSONDecoder` alone.
    static let foundationBodyDecoder = BodyDecoder(coding: .foundation)

    /// The shared decoder for `coding`.
    static func bodyDecoder(_ coding: BodyCoding) -> BodyDecoder {
        switch coding {
        case .fast: bodyDecoder
        case .foundation: foundationBodyDecoder
        }
    }

    static func makeEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }

    static func makeDecoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }

    /// Encodes a typed payload into envelope bytes.
    static func encode(
        _ payload: some MessagePayload,
        metadata: MessageMetadata?,
        subject: String,
        coding: BodyCoding = .fast
    ) throws(MessageStoreError) -> [UInt8] {
        try encode(
            type: type(of: payload).messageType,
            data: payload,
            metadata: metadata,
            subject: subject,
            coding: coding
        )
    }

    /// Encodes any encodable data under an explicit type name.
    ///
    /// The body is assembled as `{"type":…,"data":…,"metadata":…}`, the key order the Python
    /// package writes, and `data` must encode as a JSON object. `data` and `metadata` are written
    /// straight into the body by `FastJSONEncoder`, falling back to the shared `JSONEncoder`
    /// for what it cannot write exactly as that would (`data`'s `encode(to:)` then runs twice);
    /// with ``BodyCoding/foundation``, by the `JSONEncoder` alone.
    static func encode(
        type: String,
        data: some Encodable,
        metadata: MessageMetadata?,
        subject: String,
        coding: BodyCoding = .fast
    ) throws(MessageStoreError) -> [UInt8] {
        do {
            var body: [UInt8] = []
            body.reserveCapacity(type.utf8.count + 256)
            body += #"{"type":"#.utf8
            FastJSONEncoder.appendString(type, to: &body)
            body += #","data":"#.utf8
            let dataStart = body.count
            try encodeValue(data, appendingTo: &body, coding: coding)
            guard dataStart < body.count, body[dataStart] == UInt8(ascii: "{") else {
                throw EncodingError.invalidValue(
                    data,
                    .init(codingPath: [], debugDescription: "the payload must encode as a JSON object")
                )
            }
            if let metadata {
                body += #","metadata":"#.utf8
                try encodeValue(metadata, appendingTo: &body, coding: coding)
            }
            body.append(UInt8(ascii: "}"))
            return body
        } catch {
            throw MessageStoreError(
                code: .encodingFailed,
                message: "could not encode a \(type) message as a JSON envelope: \(error)",
                subject: subject,
                underlying: error
            )
        }
    }

    private static func encodeValue(_ value: some Encodable, appendingTo body: inout [UInt8], coding: BodyCoding) throws
    {
        switch coding {
        case .fast: try FastJSONEncoder.encodeWithFallback(value, appendingTo: &body, foundation: encoder)
        case .foundation: body += try encoder.encode(value)
        }
    }

    /// Reads the type and metadata of an envelope, checking that `data` is an object.
    static func decodeHead(
        _ body: [UInt8],
        subject: String?,
        sequence: UInt64?,
        coding: BodyCoding = .fast
    ) throws(MessageStoreError) -> Head {
        do {
            return try bodyDecoder(coding).decode(Head.self, from: body)
        } catch {
            throw MessageStoreError(
                code: .decodingFailed,
                message: "the message\(sequence.map { " at sequence \($0)" } ?? "") is not a valid envelope "
                    + "(a JSON object with a string \"type\" and an object \"data\"): \(describe(error))",
                subject: subject,
                underlying: error
            )
        }
    }

    /// Decodes the `data` of an envelope as `Payload`.
    static func decodeData<Payload: Decodable>(
        _: Payload.Type,
        from body: [UInt8],
        type: String,
        subject: String?,
        sequence: UInt64?,
        coding: BodyCoding = .fast
    ) throws(MessageStoreError) -> Payload {
        do {
            return try bodyDecoder(coding).decode(DataOnly<Payload>.self, from: body).data
        } catch {
            throw MessageStoreError(
                code: .decodingFailed,
                message: "the data of the \(LogText.peer(type)) message\(sequence.map { " at sequence \($0)" } ?? "") "
                    + "does not decode as \(Payload.self): \(describe(error))",
                subject: subject,
                underlying: error
            )
        }
    }

    static func describe(_ error: any Error) -> String {
        guard let decodingError = error as? DecodingError else { return "\(error)" }
        switch decodingError {
        case .keyNotFound(let key, let context):
            return "missing key \"\(path(context.codingPath + [key]))\""
        case .typeMismatch(let type, let context):
            return "expected \(type) at \"\(path(context.codingPath))\""
        case .valueNotFound(let type, let context):
            return "expected \(type) but found null at \"\(path(context.codingPath))\""
        case .dataCorrupted(let context):
            return context.codingPath.isEmpty
                ? "not valid JSON" : "invalid value at \"\(path(context.codingPath))\": \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }

    /// A coding path for an error message: its keys may come from a peer's body.
    private static func path(_ keys: [any CodingKey]) -> String {
        LogText.peer(keys.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: "."))
    }
}

/// `FastJSONDecoder` in front of a `JSONDecoder` configured like ``Envelope/makeDecoder()``,
/// both with the same user info: the fast decoder's result, or else `JSONDecoder`'s result or
/// error, so results and error messages are always `JSONDecoder`'s. With
/// ``BodyCoding/foundation``, the `JSONDecoder` alone.
struct BodyDecoder: Sendable {
    /// Nil with ``BodyCoding/foundation``.
    let fast: FastJSONDecoder?
    let foundation: JSONDecoder
    /// For a dispatch decoder (see ``Envelope/makeDispatchDecoder(payloadTypes:coding:)``), the
    /// payload type of each message type, also in `userInfo`: kept here too for the direct
    /// envelope path.
    var payloadTypes: [String: any MessagePayload.Type]?

    init(userInfo: [CodingUserInfoKey: any Sendable] = [:], coding: BodyCoding = .fast) {
        fast = coding == .fast ? FastJSONDecoder(userInfo: userInfo) : nil
        let foundation = Envelope.makeDecoder()
        for (key, value) in userInfo {
            foundation.userInfo[key] = value
        }
        self.foundation = foundation
    }

    /// Decodes `body`; a body with a key twice in one object is refused
    /// (``JSONDuplicateKeys/Found``), whichever decoder would have read it.
    func decode<T: Decodable>(_ type: T.Type, from body: [UInt8]) throws -> T {
        if let fast, let value = try? fast.decode(type, from: body) { return value }
        // The fast parser refuses duplicate keys, but `JSONDecoder` keeps the first value:
        // look before falling back.
        if let key = JSONDuplicateKeys.first(in: body) { throw JSONDuplicateKeys.Found(key: key) }
        return try foundation.decode(type, from: Data(body))
    }
}

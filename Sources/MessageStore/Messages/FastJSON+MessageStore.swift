import MessageStoreJSON

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

// What the store adds to its fast JSON coders (the `MessageStoreJSON` target): the coders as the
// store configures them, with this module's `JSONValue` and `MessageMetadata` coded directly,
// and the one-pass decoding of an envelope for dispatch.

extension FastJSONDecoder {
    /// The types the store's decoders read straight from the nodes.
    static let storeDirectTypes = [
        FastJSONDirectType(JSONValueDirectCoding.self), FastJSONDirectType(MessageMetadataDirectCoding.self),
    ]

    /// A decoder as the store uses one: `JSONValue` and `MessageMetadata` decoded directly.
    init(userInfo: [CodingUserInfoKey: any Sendable] = [:]) {
        self.init(userInfo: userInfo, directTypes: Self.storeDirectTypes)
    }

    /// Decodes a message envelope straight from the parsed nodes: `type`, `metadata`, and `data`
    /// as the payload type `payloadTypes` gives for the type (nil payload when none does).
    ///
    /// This is what ``Envelope/Dispatched``'s `init(from:)` gives, without its keyed container
    /// and user-info lookup on every message. It returns nil for anything out of the ordinary
    /// (a syntax error, a missing or mistyped member, data its payload type does not decode,
    /// metadata that needs `init(from:)`); the caller then decodes the usual way, which gives
    /// the result or the error. The payload's `init(from:)` may then run twice.
    func decodeEnvelope(
        _ bytes: [UInt8],
        payloadTypes: [String: any MessagePayload.Type]
    ) -> Envelope.Dispatched? {
        guard
            let state = try? parse(bytes),
            state.kind(0) == .object,
            let typeNode = state.member(of: 0, named: "type"),
            state.kind(typeNode) == .string,
            let type = state.string(of: state[typeNode]),
            let dataNode = state.member(of: 0, named: "data"),
            state.kind(dataNode) == .object
        else { return nil }
        var metadata: MessageMetadata?
        if let metadataNode = state.member(of: 0, named: "metadata"), state.kind(metadataNode) != .null {
            guard let direct = MessageMetadataDirectCoding.decode(from: state, node: metadataNode) else { return nil }
            metadata = direct
        }
        var payload: (any MessagePayload)?
        if let payloadType = payloadTypes[type] {
            func decode<Payload: MessagePayload>(_: Payload.Type) -> Payload? {
                try? state.unwrap(Payload.self, node: dataNode, parent: nil, key: Envelope.AnyKey(stringValue: "data"))
            }
            guard let decoded = decode(payloadType) else { return nil }
            payload = decoded
        }
        guard !state.mustFallBack else { return nil }
        return Envelope.Dispatched(type: type, metadata: metadata, payload: payload)
    }
}

extension FastJSONEncoder {
    /// An encoder as the store uses one: `JSONValue` and `MessageMetadata` written directly.
    init() {
        self.init(directTypes: FastJSONDecoder.storeDirectTypes)
    }

    /// ``encodeWithFallback(_:appendingTo:fast:foundation:)`` with the store's fast encoder.
    static func encodeWithFallback<T: Encodable>(
        _ value: T,
        appendingTo bytes: inout [UInt8],
        foundation: JSONEncoder
    ) throws {
        try encodeWithFallback(value, appendingTo: &bytes, fast: FastJSONEncoder(), foundation: foundation)
    }

    /// ``encodeWithFallback(_:fast:foundation:)`` with the store's fast encoder.
    static func encodeWithFallback<T: Encodable>(_ value: T, foundation: JSONEncoder) throws -> [UInt8] {
        try encodeWithFallback(value, fast: FastJSONEncoder(), foundation: foundation)
    }
}

extension JSONDuplicateKeys {
    /// Thrown for a body with a key twice in one object.
    struct Found: Error, CustomStringConvertible {
        var key: String
        var description: String {
            "the key \"\(LogText.peer(key, limit: 64))\" appears twice in one object; "
                + "bodies with duplicate keys are refused, since JSON readers disagree on which value counts"
        }
    }
}

// `JSONValue` and `MessageMetadata` are coded on every message that has metadata; going through
// their Codable conformances costs mostly Codable's own machinery (`allKeys` is cast twice, every
// keyed container is boxed, an encoder per member). These give what `init(from:)` gives and write
// what `encode(to:)` writes, members in the order it encodes them. Keep them in step with
// `JSONValue` and `MessageMetadata`; the differential tests check them against `JSONDecoder` and
// `JSONEncoder`, which use the conformances.

/// `JSONValue` read and written directly.
enum JSONValueDirectCoding: FastJSONDirectCoding {
    /// What `JSONValue.init(from:)` gives: null, then Bool, Int, Double, String, array, object.
    static func decode(from state: FastJSONDecodingState, node: Int) -> JSONValue? {
        let value = state[node]
        switch value.kind {
        case .null:
            return .null
        case .true:
            return .bool(true)
        case .false:
            return .bool(false)
        case .number:
            if let integer = try? state.decodeInteger(Int.self, node) { return .int(integer) }
            if let double = try? state.decodeFloatingPoint(Double.self, node) { return .double(double) }
            return nil
        case .string:
            return state.string(of: value).map(JSONValue.string)
        case .array:
            var items: [JSONValue] = []
            items.reserveCapacity(Int(value.a))
            var element = node + 1
            for _ in 0..<Int(value.a) {
                guard let item = decode(from: state, node: element) else { return nil }
                items.append(item)
                element = state.next(after: element)
            }
            return .array(items)
        case .object:
            var members: [String: JSONValue] = [:]
            members.reserveCapacity(Int(value.a))
            var key = node + 1
            for _ in 0..<Int(value.a) {
                guard let name = state.string(of: state[key]), let member = decode(from: state, node: key + 1) else {
                    return nil
                }
                members[name] = member
                key = state.next(after: key + 1)
            }
            return .object(members)
        }
    }

    static func encode(_ value: JSONValue, into state: FastJSONEncodingState) throws {
        try encode(value, into: state, openContainers: state.depth)
    }

    /// What `JSONValue.encode(to:)` writes, inside `openContainers` containers.
    static func encode(_ value: JSONValue, into state: FastJSONEncodingState, openContainers: Int) throws {
        switch value {
        case .null:
            state.appendASCII("null")
        case .bool(let value):
            state.appendBool(value)
        case .int(let value):
            state.appendInteger(value)
        case .double(let value):
            try state.appendFloatingPoint(value)
        case .string(let value):
            state.appendString(value)
        case .array(let items):
            guard openContainers + 1 < FastJSONEncodingState.maximumDepth else {
                throw state.fail("nesting too deep for JSONEncoder")
            }
            state.appendByte(UInt8(ascii: "["))
            var first = true
            for item in items {
                if !first { state.appendByte(UInt8(ascii: ",")) }
                first = false
                try encode(item, into: state, openContainers: openContainers + 1)
            }
            state.appendByte(UInt8(ascii: "]"))
        case .object(let members):
            guard openContainers + 1 < FastJSONEncodingState.maximumDepth else {
                throw state.fail("nesting too deep for JSONEncoder")
            }
            state.appendByte(UInt8(ascii: "{"))
            var first = true
            // A dictionary's keys are distinct by String equality, as JSONEncoder's keys must be.
            for (key, member) in members {
                if !first { state.appendByte(UInt8(ascii: ",")) }
                first = false
                state.appendString(key)
                state.appendByte(UInt8(ascii: ":"))
                try encode(member, into: state, openContainers: openContainers + 1)
            }
            state.appendByte(UInt8(ascii: "}"))
        }
    }
}

/// `MessageMetadata` read and written directly.
enum MessageMetadataDirectCoding: FastJSONDirectCoding {
    /// What `MessageMetadata.init(from:)` gives: `originSubject` and `traceId` as optional
    /// strings, every other key as a `JSONValue`.
    static func decode(from state: FastJSONDecodingState, node: Int) -> MessageMetadata? {
        let object = state[node]
        guard object.kind == .object else { return nil }
        var metadata = MessageMetadata()
        var additional: [String: JSONValue] = [:]
        var key = node + 1
        for _ in 0..<Int(object.a) {
            guard let name = state.string(of: state[key]) else { return nil }
            let value = state[key + 1]
            // As the initializer's `switch key.stringValue`, by String equality.
            if name == "originSubject" || name == "traceId" {
                let text: String?
                switch value.kind {
                case .null: text = nil
                case .string:
                    guard let string = state.string(of: value) else { return nil }
                    text = string
                default: return nil
                }
                if name == "originSubject" { metadata.originSubject = text } else { metadata.traceId = text }
            } else {
                guard let member = JSONValueDirectCoding.decode(from: state, node: key + 1) else { return nil }
                additional[name] = member
            }
            key = state.next(after: key + 1)
        }
        metadata.additionalFields = additional
        return metadata
    }

    /// What `MessageMetadata.encode(to:)` writes: the additional keys in sorted order, except
    /// the two it knows, then `originSubject` and `traceId` when set.
    static func encode(_ metadata: MessageMetadata, into state: FastJSONEncodingState) throws {
        let depth = state.depth
        guard depth + 1 < FastJSONEncodingState.maximumDepth else {
            throw state.fail("nesting too deep for JSONEncoder")
        }
        state.appendByte(UInt8(ascii: "{"))
        var first = true
        func member(_ key: String) {
            if !first { state.appendByte(UInt8(ascii: ",")) }
            first = false
            state.appendString(key)
            state.appendByte(UInt8(ascii: ":"))
        }
        // Sorting the pairs by key gives the order of `keys.sorted()`: the keys are distinct.
        for (key, value) in metadata.additionalFields.sorted(by: { $0.key < $1.key })
        where key != "originSubject" && key != "traceId" {
            member(key)
            try JSONValueDirectCoding.encode(value, into: state, openContainers: depth + 1)
        }
        if let originSubject = metadata.originSubject {
            member("originSubject")
            state.appendString(originSubject)
        }
        if let traceId = metadata.traceId {
            member("traceId")
            state.appendString(traceId)
        }
        state.appendByte(UInt8(ascii: "}"))
    }
}

/// What the fuzz targets check the readers against: they are another package, which sees this
/// module's internals through `@testable import` but cannot see `MessageStoreJSON`'s package API.
enum FuzzingJSON {
    /// Appends `string` as a JSON string, as the encoder writes it.
    static func appendString(_ string: String, to bytes: inout [UInt8]) {
        FastJSONEncoder.appendString(string, to: &bytes)
    }

    /// The first key that appears twice in one object of `bytes`, if any.
    static func firstDuplicateKey(in bytes: [UInt8]) -> String? {
        JSONDuplicateKeys.first(in: bytes)
    }
}

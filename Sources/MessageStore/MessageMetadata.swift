/// The optional `metadata` object of a message envelope.
///
/// `originSubject` and `traceId` are the keys the Python `message-store` package knows; every
/// other key is kept in ``additionalFields`` and written back unchanged, so metadata added by
/// another service survives a round trip through this library.
public struct MessageMetadata: Sendable, Hashable, Codable {
    /// The subject of the message that caused this one, without the environment prefix.
    public var originSubject: String?
    /// A trace id carried for correlation (trace context itself travels in headers).
    public var traceId: String?
    /// Every other metadata key, kept as JSON.
    public var additionalFields: [String: JSONValue]

    /// Creates metadata.
    /// - Parameters:
    ///   - originSubject: The subject of the causing message. Defaults to none.
    ///   - traceId: A trace id. Defaults to none.
    ///   - additionalFields: Other keys to write. Defaults to none.
    public init(
        originSubject: String? = nil,
        traceId: String? = nil,
        additionalFields: [String: JSONValue] = [:]
    ) {
        self.originSubject = originSubject
        self.traceId = traceId
        self.additionalFields = additionalFields.filter { !Self.knownKeys.contains($0.key) }
    }

    /// Reads or writes an additional metadata key.
    public subscript(key: String) -> JSONValue? {
        get { additionalFields[key] }
        set { additionalFields[key] = newValue }
    }

    private static let knownKeys: Set<String> = ["originSubject", "traceId"]

    private struct FieldName: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// Decodes metadata, keeping every key that is not `originSubject` or `traceId`.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: FieldName.self)
        var additional: [String: JSONValue] = [:]
        originSubject = nil
        traceId = nil
        for key in container.allKeys {
            switch key.stringValue {
            case "originSubject":
                originSubject = try container.decodeIfPresent(String.self, forKey: key)
            case "traceId":
                traceId = try container.decodeIfPresent(String.self, forKey: key)
            default:
                additional[key.stringValue] = try container.decode(JSONValue.self, forKey: key)
            }
        }
        additionalFields = additional
    }

    /// Encodes the additional keys, then `originSubject` and `traceId` when set.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: FieldName.self)
        for key in additionalFields.keys.sorted() where !Self.knownKeys.contains(key) {
            try container.encode(additionalFields[key], forKey: FieldName(stringValue: key))
        }
        try container.encodeIfPresent(originSubject, forKey: FieldName(stringValue: "originSubject"))
        try container.encodeIfPresent(traceId, forKey: FieldName(stringValue: "traceId"))
    }
}

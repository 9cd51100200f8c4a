/// NATS message headers: an ordered list of name/value pairs where a name may repeat.
///
/// Names are compared exactly, as the NATS C client does. The subscript reads the first value
/// of a name and replaces every value when written.
///
/// ```swift
/// var headers: MessageHeaders = ["traceparent": "00-…-01"]
/// headers.add("retry", for: "X-Reason")
/// ```
public struct MessageHeaders: Sendable, Hashable, Sequence, ExpressibleByDictionaryLiteral {
    /// One header line.
    public struct Field: Sendable, Hashable {
        /// The header name.
        public var name: String
        /// The header value.
        public var value: String

        /// Creates a header field.
        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    private var fields: [Field]

    /// Creates empty headers.
    public init() {
        fields = []
    }

    /// Creates headers from fields, keeping their order.
    public init(_ fields: some Sequence<Field>) {
        self.fields = Array(fields)
    }

    /// Creates headers from a dictionary, one line per entry, sorted by name (a dictionary has
    /// no order of its own, and sorting keeps the wire form the same from run to run).
    public init(_ dictionary: [String: String]) {
        fields = dictionary.sorted { $0.key < $1.key }.map { Field(name: $0.key, value: $0.value) }
    }

    /// Creates headers from a dictionary literal.
    public init(dictionaryLiteral elements: (String, String)...) {
        fields = elements.map { Field(name: $0.0, value: $0.1) }
    }

    /// Whether there are no headers.
    public var isEmpty: Bool { fields.isEmpty }

    /// The number of header lines.
    public var count: Int { fields.count }

    /// The first value of `name`; setting replaces every value of `name` (nil removes them).
    public subscript(name: String) -> String? {
        get { fields.first { $0.name == name }?.value }
        set {
            if let index = fields.firstIndex(where: { $0.name == name }), let newValue {
                fields[index].value = newValue
                var seen = false
                fields.removeAll { field in
                    guard field.name == name else { return false }
                    defer { seen = true }
                    return seen
                }
            } else if let newValue {
                fields.append(Field(name: name, value: newValue))
            } else {
                fields.removeAll { $0.name == name }
            }
        }
    }

    /// Every value of `name`, in order.
    public func values(for name: String) -> [String] {
        fields.filter { $0.name == name }.map(\.value)
    }

    /// Adds a value for `name`, keeping the values already there.
    public mutating func add(_ value: String, for name: String) {
        fields.append(Field(name: name, value: value))
    }

    /// Adds or replaces every field of `other`: its names override the same names here.
    public mutating func merge(_ other: MessageHeaders) {
        for name in Set(other.fields.map(\.name)) {
            fields.removeAll { $0.name == name }
        }
        fields.append(contentsOf: other.fields)
    }

    /// Iterates the header lines in order.
    public func makeIterator() -> IndexingIterator<[Field]> {
        fields.makeIterator()
    }
}

extension MessageHeaders: CustomStringConvertible {
    /// The headers as `[Name: value, …]`.
    public var description: String {
        "[" + fields.map { "\($0.name): \($0.value)" }.joined(separator: ", ") + "]"
    }
}

/// Header names the store writes and reads.
public enum MessageHeaderName {
    /// JetStream de-duplication id.
    public static let messageID = "Nats-Msg-Id"
    /// Optimistic concurrency: the expected stream sequence of the subject's last message.
    public static let expectedLastSubjectSequence = "Nats-Expected-Last-Subject-Sequence"
}

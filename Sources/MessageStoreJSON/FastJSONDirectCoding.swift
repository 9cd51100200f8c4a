/// How ``FastJSONDecoder`` and ``FastJSONEncoder`` read and write one type themselves instead of
/// through its `init(from:)` and `encode(to:)`, the way `JSONDecoder` and `JSONEncoder` handle
/// `Date` or `Decimal`.
///
/// For types coded on every message, whose Codable conformance costs mostly Codable's own
/// machinery (a boxed container per object, a decoder or encoder per member). A coder uses the
/// ones listed in its `directTypes`.
package protocol FastJSONDirectCoding: Sendable {
    associatedtype Value

    /// What `Value.init(from:)` gives for the value at `node`, or nil for anything this does not
    /// handle (an unusual input, a value that would be an error), which then goes through
    /// `init(from:)`.
    static func decode(from state: FastJSONDecodingState, node: Int) -> Value?

    /// Writes what `value.encode(to:)` writes, with the state's output methods.
    static func encode(_ value: Value, into state: FastJSONEncodingState) throws
}

/// One entry of a coder's `directTypes`: the type and how it is coded.
package struct FastJSONDirectType: Sendable {
    /// Compared with the type being coded: one pointer comparison per entry.
    let valueType: any Any.Type
    let coding: any FastJSONDirectCoding.Type

    package init<Coding: FastJSONDirectCoding>(_ coding: Coding.Type) {
        valueType = Coding.Value.self
        self.coding = coding
    }
}

#if canImport(FoundationEssentials)
    package import FoundationEssentials
#else
    package import Foundation
#endif

/// A coding path, shared by the decoders and containers below a value; built as values nest.
package final class FastJSONPathNode {
    package let parent: FastJSONPathNode?
    package let key: any CodingKey

    package init(parent: FastJSONPathNode?, key: any CodingKey) {
        self.parent = parent
        self.key = key
    }

    package static func path(_ node: FastJSONPathNode?, appending key: (any CodingKey)? = nil) -> [any CodingKey] {
        var keys: [any CodingKey] = []
        if let key { keys.append(key) }
        var current = node
        while let node = current {
            keys.append(node.key)
            current = node.parent
        }
        keys.reverse()
        return keys
    }
}

/// The keys the fast decoder and encoder add to coding paths themselves. They are Foundation's:
/// the same string and integer values, and the same type name, which a key's default
/// `description` shows, so that an `init(from:)` or `encode(to:)` writing out its coding path
/// writes the same text.
package enum _CodingKey: CodingKey {
    case index(Int)
    case `super`

    package var stringValue: String {
        switch self {
        case .index(let index): "Index \(index)"
        case .super: "super"
        }
    }

    package var intValue: Int? {
        switch self {
        case .index(let index): index
        case .super: nil
        }
    }

    package init?(stringValue: String) {
        guard stringValue == "super" else { return nil }
        self = .super
    }

    package init(intValue: Int) { self = .index(intValue) }
}

/// Why a value could not be converted; containers turn it into a `DecodingError` with the
/// coding path, which is only built then.
package enum FastJSONValueError: Error {
    case typeMismatch(any Any.Type, found: FastJSONKind)
    case valueNotFound(any Any.Type)
    case notRepresentable(any Any.Type, number: String)
    case dataCorrupted(String)
    /// Not decodable exactly as `JSONDecoder` would (see ``FastJSONDecodingState/mustFallBack``).
    case fallBack

    package func decodingError(at codingPath: [any CodingKey]) -> DecodingError {
        switch self {
        case .typeMismatch(let type, let found):
            let description: String =
                switch found {
                case .null: "null"
                case .true, .false: "bool"
                case .number: "number"
                case .string: "a string"
                case .array: "an array"
                case .object: "a dictionary"
                }
            return .typeMismatch(
                type,
                .init(
                    codingPath: codingPath,
                    debugDescription: "Expected to decode \(type) but found \(description) instead."
                )
            )
        case .valueNotFound(let type):
            return .valueNotFound(
                type,
                .init(
                    codingPath: codingPath,
                    debugDescription: "Cannot get value of type \(type) -- found null value instead"
                )
            )
        case .notRepresentable(let type, let number):
            return .dataCorrupted(
                .init(
                    codingPath: codingPath,
                    debugDescription: "Parsed JSON number <\(number)> does not fit in \(type)."
                )
            )
        case .dataCorrupted(let description):
            return .dataCorrupted(.init(codingPath: codingPath, debugDescription: description))
        case .fallBack:
            return .dataCorrupted(
                .init(codingPath: codingPath, debugDescription: FastJSONDecodingState.fallBackDescription)
            )
        }
    }
}

/// Where the last key lookup in an object ended, so that keys asked for in the order of the
/// JSON text are found without scanning the members before them.
package struct FastJSONLookupHint {
    package var object = -1
    package var key = 0
    package var ordinal = 0
}

/// What every decoder of one `decode` call shares, besides the nodes.
package struct FastJSONDocument {
    package let bytes: [UInt8]
    package let userInfo: [CodingUserInfoKey: Any]
    package let directTypes: [FastJSONDirectType]
    /// How many nodes are initialized.
    package var count = 0
    /// Set when a value was met that this decoder cannot decode exactly as `JSONDecoder`: the
    /// decoding then fails at the top even if an `init(from:)` caught the error.
    package var mustFallBack = false
    /// Lookup hints for up to four objects at a time, by object index modulo 4.
    package var hint0 = FastJSONLookupHint()
    package var hint1 = FastJSONLookupHint()
    package var hint2 = FastJSONLookupHint()
    package var hint3 = FastJSONLookupHint()

    package func hint(for object: Int) -> FastJSONLookupHint {
        switch object & 3 {
        case 0: hint0
        case 1: hint1
        case 2: hint2
        default: hint3
        }
    }

    package mutating func setHint(_ hint: FastJSONLookupHint) {
        switch hint.object & 3 {
        case 0: hint0 = hint
        case 1: hint1 = hint
        case 2: hint2 = hint
        default: hint3 = hint
        }
    }
}

/// The parsed document: the bytes, what decoders share, and the nodes, in one allocation.
package final class FastJSONDecodingState: ManagedBuffer<FastJSONDocument, FastJSONNode> {
    package static let fallBackDescription = "FastJSONDecoder cannot decode this input exactly as JSONDecoder does."

    /// Parses `bytes` into a new state.
    package static func parse(
        _ bytes: [UInt8],
        userInfo: [CodingUserInfoKey: Any],
        directTypes: [FastJSONDirectType]
    ) throws(FastJSONSyntaxError) -> FastJSONDecodingState {
        let capacity = FastJSONParser.capacity(forByteCount: bytes.count)
        let state = unsafeDowncast(
            create(minimumCapacity: capacity) { _ in
                FastJSONDocument(bytes: bytes, userInfo: userInfo, directTypes: directTypes)
            },
            to: FastJSONDecodingState.self
        )
        var failure: FastJSONSyntaxError?
        state.withUnsafeMutablePointers { document, nodes in
            bytes.withUnsafeBufferPointer { input in
                do throws(FastJSONSyntaxError) {
                    document.pointee.count = try FastJSONParser.parse(
                        input,
                        into: UnsafeMutableBufferPointer(start: nodes, count: capacity)
                    )
                } catch {
                    failure = error
                }
            }
        }
        if let failure { throw failure }
        return state
    }

    // The nodes are plain values: nothing to deinitialize.

    /// Runs `body` with the JSON text.
    @inline(__always)
    package func withBytes<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        try withUnsafeMutablePointerToHeader { try $0.pointee.bytes.withUnsafeBufferPointer(body) }
    }

    package var userInfo: [CodingUserInfoKey: Any] { withUnsafeMutablePointerToHeader { $0.pointee.userInfo } }
    package var directTypes: [FastJSONDirectType] {
        withUnsafeMutablePointerToHeader { $0.pointee.directTypes }
    }
    package var count: Int { withUnsafeMutablePointerToHeader { $0.pointee.count } }

    package var mustFallBack: Bool {
        get { withUnsafeMutablePointerToHeader { $0.pointee.mustFallBack } }
        set { withUnsafeMutablePointerToHeader { $0.pointee.mustFallBack = newValue } }
    }

    /// The node at `index`, which is always one the parser wrote.
    @inline(__always)
    package subscript(index: Int) -> FastJSONNode {
        withUnsafeMutablePointers { document, nodes in
            precondition(index >= 0 && index < document.pointee.count, "node index out of range")
            return nodes[index]
        }
    }

    /// The index of the node after `index` and its descendants.
    @inline(__always)
    package func next(after index: Int) -> Int {
        let node = self[index]
        return node.kind.rawValue >= FastJSONKind.array.rawValue ? Int(node.b) : index + 1
    }

    /// The index of the `null` node standing for absent values.
    package var absentNode: Int { count - 1 }

    /// Marks the decoding as failed (see ``FastJSONDocument/mustFallBack``) and returns the error to throw.
    package func fallBack() -> FastJSONValueError {
        mustFallBack = true
        return .fallBack
    }

    @inline(__always)
    package func kind(_ node: Int) -> FastJSONKind { self[node].kind }

    // MARK: Strings

    /// The raw text of a string or number node.
    package func text(of node: FastJSONNode) -> String {
        withBytes { buffer in
            let start = min(max(Int(node.a), 0), buffer.count)
            let end = min(max(Int(node.b), start), buffer.count)
            return String(decoding: UnsafeBufferPointer(rebasing: buffer[start..<end]), as: UTF8.self)
        }
    }

    /// The value of a string node, or nil when its escapes are malformed (which the parser rejects).
    package static func string(of node: FastJSONNode, in buffer: UnsafeBufferPointer<UInt8>) -> String? {
        let start = Int(node.a)
        let end = Int(node.b)
        guard start >= 0, start <= end, end <= buffer.count else { return nil }
        let raw = UnsafeBufferPointer(rebasing: buffer[start..<end])
        if node.flags & FastJSONNode.hasEscapes == 0 {
            return String(decoding: raw, as: UTF8.self)
        }
        var valid = true
        // Unescaping never makes the text longer.
        let result = String(unsafeUninitializedCapacity: raw.count) { out in
            var r = 0
            var w = 0
            func hex4(_ k: Int) -> UInt32? {
                guard k + 4 <= raw.count else { return nil }
                var value: UInt32 = 0
                for c in raw[k..<k + 4] {
                    let digit: UInt8
                    switch c {
                    case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = c &- UInt8(ascii: "0")
                    case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = c &- UInt8(ascii: "a") &+ 10
                    case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = c &- UInt8(ascii: "A") &+ 10
                    default: return nil
                    }
                    value = value << 4 | UInt32(digit)
                }
                return value
            }
            while r < raw.count {
                let c = raw[r]
                guard c == UInt8(ascii: "\\") else {
                    out[w] = c
                    w += 1
                    r += 1
                    continue
                }
                guard r + 1 < raw.count else {
                    valid = false
                    return w
                }
                let escaped = raw[r + 1]
                var scalar: UInt32
                switch escaped {
                case UInt8(ascii: "b"): scalar = 0x08
                case UInt8(ascii: "f"): scalar = 0x0C
                case UInt8(ascii: "n"): scalar = 0x0A
                case UInt8(ascii: "r"): scalar = 0x0D
                case UInt8(ascii: "t"): scalar = 0x09
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): scalar = UInt32(escaped)
                case UInt8(ascii: "u"):
                    guard let unit = hex4(r + 2) else {
                        valid = false
                        return w
                    }
                    scalar = unit
                    if unit >= 0xD800 && unit <= 0xDBFF {
                        guard r + 12 <= raw.count, raw[r + 6] == UInt8(ascii: "\\"), raw[r + 7] == UInt8(ascii: "u"),
                            let low = hex4(r + 8), low >= 0xDC00 && low <= 0xDFFF
                        else {
                            valid = false
                            return w
                        }
                        scalar = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                        r += 6
                    } else if unit >= 0xDC00 && unit <= 0xDFFF {
                        valid = false
                        return w
                    }
                    r += 4
                default:
                    valid = false
                    return w
                }
                r += 2
                // Encode the scalar as UTF-8; it takes no more bytes than its escape did.
                switch scalar {
                case 0..<0x80:
                    out[w] = UInt8(truncatingIfNeeded: scalar)
                    w += 1
                case 0x80..<0x800:
                    out[w] = UInt8(truncatingIfNeeded: 0xC0 | scalar >> 6)
                    out[w + 1] = UInt8(truncatingIfNeeded: 0x80 | scalar & 0x3F)
                    w += 2
                case 0x800..<0x10000:
                    out[w] = UInt8(truncatingIfNeeded: 0xE0 | scalar >> 12)
                    out[w + 1] = UInt8(truncatingIfNeeded: 0x80 | scalar >> 6 & 0x3F)
                    out[w + 2] = UInt8(truncatingIfNeeded: 0x80 | scalar & 0x3F)
                    w += 3
                default:
                    out[w] = UInt8(truncatingIfNeeded: 0xF0 | scalar >> 18)
                    out[w + 1] = UInt8(truncatingIfNeeded: 0x80 | scalar >> 12 & 0x3F)
                    out[w + 2] = UInt8(truncatingIfNeeded: 0x80 | scalar >> 6 & 0x3F)
                    out[w + 3] = UInt8(truncatingIfNeeded: 0x80 | scalar & 0x3F)
                    w += 4
                }
            }
            return w
        }
        return valid ? result : nil
    }

    package func string(of node: FastJSONNode) -> String? {
        withBytes { Self.string(of: node, in: $0) }
    }

    // MARK: Keyed lookup

    /// The index of the value of the member of the object at `object` whose key equals `name`
    /// (as Swift strings compare, like `JSONDecoder`).
    ///
    /// The scan starts after the member found last in the same object, wrapping around.
    package func member(of object: Int, named name: String) -> Int? {
        var utf8Name = name
        return utf8Name.withUTF8 { nameBytes in
            withUnsafeMutablePointers { document, nodes -> Int? in
                let nodeCount = document.pointee.count
                precondition(object >= 0 && object < nodeCount, "node index out of range")
                let members = Int(nodes[object].a)
                guard members > 0 else { return nil }
                var hint = document.pointee.hint(for: object)
                if hint.object != object || hint.ordinal >= members {
                    hint = FastJSONLookupHint(object: object, key: object + 1, ordinal: 0)
                }
                var nameIsASCII = true
                for byte in nameBytes where byte >= 0x80 {
                    nameIsASCII = false
                    break
                }
                /// The node after the value of the member whose key is at `key`.
                func nextKey(_ key: Int) -> Int {
                    let value = key + 1
                    precondition(value < nodeCount, "node index out of range")
                    let node = nodes[value]
                    return node.kind.rawValue >= FastJSONKind.array.rawValue ? Int(node.b) : value + 1
                }
                var keyIndex = hint.key
                var ordinal = hint.ordinal
                let found = document.pointee.bytes.withUnsafeBufferPointer { text -> Bool in
                    for _ in 0..<members {
                        precondition(keyIndex > object && keyIndex < nodeCount, "node index out of range")
                        let key = nodes[keyIndex]
                        if key.flags == 0 && nameIsASCII {
                            // Both plain ASCII: equal as strings exactly when the bytes are equal.
                            let start = Int(key.a)
                            precondition(start >= 0 && Int(key.b) <= text.count, "string range out of bounds")
                            if Int(key.b) - start == nameBytes.count {
                                var equal = true
                                for k in 0..<nameBytes.count where text[start + k] != nameBytes[k] {
                                    equal = false
                                    break
                                }
                                if equal { return true }
                            }
                        } else if Self.string(of: key, in: text) == name {
                            return true
                        }
                        ordinal += 1
                        if ordinal == members {
                            ordinal = 0
                            keyIndex = object + 1
                        } else {
                            keyIndex = nextKey(keyIndex)
                        }
                    }
                    return false
                }
                guard found else { return nil }
                document.pointee.setHint(
                    ordinal + 1 == members
                        ? FastJSONLookupHint(object: object, key: object + 1, ordinal: 0)
                        : FastJSONLookupHint(object: object, key: nextKey(keyIndex), ordinal: ordinal + 1)
                )
                return keyIndex + 1
            }
        }
    }

    // MARK: Values

    package func decodeBool(_ node: Int) throws(FastJSONValueError) -> Bool {
        switch self[node].kind {
        case .true: return true
        case .false: return false
        case let other: throw .typeMismatch(Bool.self, found: other)
        }
    }

    package func decodeString(_ node: Int) throws(FastJSONValueError) -> String {
        let value = self[node]
        switch value.kind {
        case .string:
            guard let string = string(of: value) else { throw fallBack() }
            return string
        case .null:
            throw .valueNotFound(String.self)
        case let other:
            throw .typeMismatch(String.self, found: other)
        }
    }

    /// An integer as `JSONDecoder` reads it: digits exactly; a number with a fraction or an
    /// exponent through `Double`, when that is an integer below 2^53 in magnitude.
    package func decodeInteger<T: FixedWidthInteger>(_: T.Type, _ node: Int) throws(FastJSONValueError) -> T {
        let value = self[node]
        guard value.kind == .number else {
            if value.kind == .null { throw .valueNotFound(T.self) }
            throw .typeMismatch(T.self, found: value.kind)
        }
        if value.flags & FastJSONNode.notInteger == 0 {
            let parsed: T? = withBytes { buffer in
                Self.parseInteger(buffer, Int(value.a), Int(value.b))
            }
            guard let parsed else { throw .notRepresentable(T.self, number: text(of: value)) }
            return parsed
        }
        guard let double = Double(text(of: value)) else { throw fallBack() }
        guard let integer = T(exactly: double) else { throw .notRepresentable(T.self, number: text(of: value)) }
        // Beyond 2^53, JSONDecoder goes on through Decimal, with rules of its own.
        guard double.magnitude < 9_007_199_254_740_992 else { throw fallBack() }
        return integer
    }

    /// Parses `-?[0-9]+` exactly; nil when it does not fit in `T`.
    package static func parseInteger<T: FixedWidthInteger>(
        _ buffer: UnsafeBufferPointer<UInt8>,
        _ start: Int,
        _ end: Int
    ) -> T? {
        guard start < end, start >= 0, end <= buffer.count else { return nil }
        var k = start
        let negative = buffer[k] == UInt8(ascii: "-")
        if negative { k += 1 }
        guard k < end else { return nil }
        var result: T = 0
        while k < end {
            let digit = buffer[k] &- UInt8(ascii: "0")
            guard digit < 10 else { return nil }
            let (shifted, overflow1) = result.multipliedReportingOverflow(by: 10)
            let (next, overflow2) =
                negative
                ? shifted.subtractingReportingOverflow(T(truncatingIfNeeded: digit))
                : shifted.addingReportingOverflow(T(truncatingIfNeeded: digit))
            guard !overflow1 && !overflow2 else { return nil }
            result = next
            k += 1
        }
        return result
    }

    /// A `Double` or `Float` as `JSONDecoder` reads it: correctly rounded, and an error when the
    /// number overflows to infinity or a nonzero number underflows to zero.
    package func decodeFloatingPoint<T: BinaryFloatingPoint & LosslessStringConvertible>(
        _: T.Type,
        _ node: Int
    ) throws(FastJSONValueError) -> T {
        let value = self[node]
        guard value.kind == .number else {
            if value.kind == .null { throw .valueNotFound(T.self) }
            throw .typeMismatch(T.self, found: value.kind)
        }
        if T.self == Double.self,
            let double = withBytes({ Self.exactDouble($0, Int(value.a), Int(value.b)) })
        {
            return T(double)
        }
        let text = text(of: value)
        guard let result = T(text) else { throw fallBack() }
        guard result.isFinite else { throw .notRepresentable(T.self, number: text) }
        if result == 0 && !withBytes({ Self.isTrueZero($0, Int(value.a), Int(value.b)) }) {
            throw .notRepresentable(T.self, number: text)
        }
        return result
    }

    private static let powersOfTen: [Double] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
        1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ]

    /// The value of a JSON number when it can be computed with one correctly rounded operation
    /// on exact operands (a significand up to 2^53 and a power of ten up to 10^22), which then
    /// is the correctly rounded value; nil otherwise.
    package static func exactDouble(_ buffer: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Double? {
        guard start < end, start >= 0, end <= buffer.count else { return nil }
        var k = start
        let negative = buffer[k] == UInt8(ascii: "-")
        if negative { k += 1 }
        var significand: UInt64 = 0
        var digits = 0
        var exponent = 0
        var seenPoint = false
        while k < end {
            let c = buffer[k]
            if c == UInt8(ascii: ".") {
                seenPoint = true
            } else if c == UInt8(ascii: "e") || c == UInt8(ascii: "E") {
                break
            } else {
                let digit = c &- UInt8(ascii: "0")
                guard digit < 10 else { return nil }
                if significand != 0 || digit != 0 {
                    digits += 1
                    guard digits <= 19 else { return nil }
                    significand = significand &* 10 &+ UInt64(digit)
                }
                if seenPoint { exponent -= 1 }
            }
            k += 1
        }
        if k < end {
            // The exponent part.
            k += 1
            var exponentNegative = false
            if k < end && (buffer[k] == UInt8(ascii: "+") || buffer[k] == UInt8(ascii: "-")) {
                exponentNegative = buffer[k] == UInt8(ascii: "-")
                k += 1
            }
            var written = 0
            var exponentDigits = 0
            while k < end {
                let digit = buffer[k] &- UInt8(ascii: "0")
                guard digit < 10 else { return nil }
                if written != 0 || digit != 0 {
                    exponentDigits += 1
                    guard exponentDigits <= 4 else { return nil }
                }
                written = written * 10 + Int(digit)
                k += 1
            }
            exponent += exponentNegative ? -written : written
        }
        if significand == 0 {
            return negative ? -0.0 : 0.0
        }
        guard significand <= 1 << 53, exponent >= -22, exponent <= 22 else { return nil }
        var result = Double(significand)
        if exponent >= 0 {
            result *= powersOfTen[exponent]
        } else {
            result /= powersOfTen[-exponent]
        }
        return negative ? -result : result
    }

    /// Whether the significand of a JSON number has only zeros.
    package static func isTrueZero(_ buffer: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Bool {
        for k in max(start, 0)..<min(end, buffer.count) {
            switch buffer[k] {
            case UInt8(ascii: "1")...UInt8(ascii: "9"): return false
            case UInt8(ascii: "e"), UInt8(ascii: "E"): return true
            default: continue
            }
        }
        return true
    }

    package func decodeDecimal(_ node: Int) throws(FastJSONValueError) -> Decimal {
        let value = self[node]
        guard value.kind == .number else {
            if value.kind == .null { throw .valueNotFound(Decimal.self) }
            throw .typeMismatch(Decimal.self, found: value.kind)
        }
        guard let decimal = Decimal(string: text(of: value)) else { throw fallBack() }
        return decimal
    }

    package func decodeDate(_ node: Int) throws(FastJSONValueError) -> Date {
        if self[node].kind == .null { throw .valueNotFound(Date.self) }
        let string = try decodeString(node)
        if let date = FastJSONDate.parse(string) { return date }
        // What JSONDecoder's `.iso8601` strategy does.
        guard let date = try? Date.ISO8601FormatStyle().parse(string) else {
            throw .dataCorrupted("Expected date string to be ISO8601-formatted.")
        }
        return date
    }

    package func decodeData(_ node: Int) throws(FastJSONValueError) -> Data {
        switch self[node].kind {
        case .null: throw .valueNotFound(Data.self)
        case .string: break
        case let other: throw .typeMismatch(String.self, found: other)
        }
        guard let data = Data(base64Encoded: try decodeString(node)) else {
            throw .dataCorrupted("Encountered Data is not valid Base64.")
        }
        return data
    }

    package func decodeURL(_ node: Int) throws(FastJSONValueError) -> URL {
        if self[node].kind == .null { throw .valueNotFound(URL.self) }
        guard let url = URL(string: try decodeString(node)) else { throw .dataCorrupted("Invalid URL string.") }
        return url
    }

    /// Decodes any `Decodable` from the node, handling the types `JSONDecoder` decodes itself.
    ///
    /// `parent` and `key` make the value's coding path.
    package func unwrap<T: Decodable>(_: T.Type, node: Int, parent: FastJSONPathNode?, key: (any CodingKey)?) throws
        -> T
    {
        do {
            // Common standard library types, decoded as their `init(from:)` would.
            if T.self == String.self { return Self.same(try decodeString(node), as: T.self) }
            if T.self == Int.self { return Self.same(try decodeInteger(Int.self, node), as: T.self) }
            if T.self == Bool.self { return Self.same(try decodeBool(node), as: T.self) }
            if T.self == Double.self { return Self.same(try decodeFloatingPoint(Double.self, node), as: T.self) }
            // The types JSONDecoder does not let decode themselves.
            if T.self == Date.self { return Self.same(try decodeDate(node), as: T.self) }
            if T.self == Data.self { return Self.same(try decodeData(node), as: T.self) }
            if T.self == URL.self { return Self.same(try decodeURL(node), as: T.self) }
            if T.self == Decimal.self { return Self.same(try decodeDecimal(node), as: T.self) }
        } catch {
            throw error.decodingError(at: FastJSONPathNode.path(parent, appending: key))
        }
        // The types read straight from the nodes when the input is ordinary.
        for direct in directTypes where direct.valueType == T.self {
            if let value = decodeDirectly(direct.coding, as: T.self, node: node) { return value }
        }
        let path = key.map { FastJSONPathNode(parent: parent, key: $0) } ?? parent
        return try T(from: FastJSONValueDecoder(state: self, node: node, path: path))
    }

    /// `Coding`'s direct decoding of the node, as `T`, which the caller checked is `Coding.Value`.
    private func decodeDirectly<Coding: FastJSONDirectCoding, T>(_: Coding.Type, as _: T.Type, node: Int) -> T? {
        Coding.decode(from: self, node: node).map { Self.same($0, as: T.self) }
    }

    /// `value` as `T`, which the caller checked is `U`.
    @inline(__always)
    package static func same<T, U>(_ value: U, as _: T.Type) -> T {
        unsafeBitCast(value, to: T.self)
    }

    package func keyedContainer<Key: CodingKey>(
        keyedBy _: Key.Type,
        node: Int,
        path: FastJSONPathNode?
    ) throws -> KeyedDecodingContainer<Key> {
        switch self[node].kind {
        case .object:
            return KeyedDecodingContainer(FastJSONKeyedContainer<Key>(state: self, object: node, path: path))
        case .null:
            throw DecodingError.valueNotFound(
                [String: Any].self,
                .init(
                    codingPath: FastJSONPathNode.path(path),
                    debugDescription: "Cannot get keyed decoding container -- found null value instead"
                )
            )
        case let other:
            throw FastJSONValueError.typeMismatch([String: Any].self, found: other)
                .decodingError(at: FastJSONPathNode.path(path))
        }
    }

    package func unkeyedContainer(node: Int, path: FastJSONPathNode?) throws -> any UnkeyedDecodingContainer {
        switch self[node].kind {
        case .array:
            return FastJSONUnkeyedContainer(state: self, array: node, path: path)
        case .null:
            throw DecodingError.valueNotFound(
                [Any].self,
                .init(
                    codingPath: FastJSONPathNode.path(path),
                    debugDescription: "Cannot get unkeyed decoding container -- found null value instead"
                )
            )
        case let other:
            throw FastJSONValueError.typeMismatch([Any].self, found: other).decodingError(
                at: FastJSONPathNode.path(path)
            )
        }
    }
}

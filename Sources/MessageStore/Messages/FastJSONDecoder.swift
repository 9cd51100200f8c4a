#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// A `Decoder` for JSON message bodies that is much faster than `JSONDecoder` on small documents.
///
/// The bytes are parsed once, strictly by RFC 8259, into a flat array of nodes (byte ranges for
/// strings and numbers, element counts and subtree ends for containers). Values are converted
/// only when a `Decodable` asks for them, and keyed containers find keys by comparing UTF-8
/// bytes in the object's members instead of building a dictionary per container.
///
/// It is meant as a fast path in front of a `JSONDecoder` configured like
/// ``Envelope/makeDecoder()`` (ISO 8601 dates, every other option at its default): whenever it
/// returns a value, that value is the one `JSONDecoder` returns for the same bytes. Anything it
/// cannot decode exactly like `JSONDecoder` makes it throw — including input that `JSONDecoder`
/// accepts, such as trailing commas, a byte order mark or duplicate keys — so callers fall back
/// to `JSONDecoder`, as ``decodeWithFallback(_:from:fast:foundation:)`` does, and keep its
/// results and error messages.
///
/// When an unusual value is met inside a type's `init(from:)` (an integer written with an exponent
/// beyond 2^53, two keys that name the same integer, as "1" and "01" do for an `[Int: V]`), the
/// decoder throws there and also marks the whole decoding as failed, so that an `init(from:)`
/// that catches the error cannot turn it into a result `JSONDecoder` would not produce.
///
/// Like `JSONDecoder`, which decodes `Date`, `Data`, `URL` and `Decimal` itself, it decodes
/// this module's `JSONValue` and `MessageMetadata` itself when their input is ordinary, giving
/// what their `init(from:)` gives.
struct FastJSONDecoder: Sendable {
    /// Visible to every `init(from:)` through `decoder.userInfo`.
    var userInfo: [CodingUserInfoKey: any Sendable] {
        didSet { userInfoStorage = UserInfoStorage(userInfo) }
    }

    /// `userInfo` converted once to the type `Decoder.userInfo` has.
    private var userInfoStorage: UserInfoStorage

    init(userInfo: [CodingUserInfoKey: any Sendable] = [:]) {
        self.userInfo = userInfo
        self.userInfoStorage = UserInfoStorage(userInfo)
    }

    /// Decodes a value from JSON bytes.
    ///
    /// - Throws: `DecodingError`; `.dataCorrupted` with an empty coding path when the bytes are
    ///   not JSON this decoder accepts or the value cannot be decoded exactly as `JSONDecoder` would.
    func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        let state: FastJSONDecodingState
        do {
            state = try FastJSONDecodingState.parse(bytes, userInfo: userInfoStorage.value)
        } catch {
            throw DecodingError.dataCorrupted(
                .init(codingPath: [], debugDescription: "The given data was not valid JSON.", underlyingError: error)
            )
        }
        let value = try state.unwrap(T.self, node: 0, parent: nil, key: nil)
        if state.mustFallBack {
            throw DecodingError.dataCorrupted(
                .init(codingPath: [], debugDescription: FastJSONDecodingState.fallBackDescription)
            )
        }
        return value
    }

    /// Decodes a value from JSON bytes; the bytes are copied first.
    func decode<T: Decodable>(_ type: T.Type, from bytes: UnsafeRawBufferPointer) throws -> T {
        try decode(type, from: [UInt8](bytes))
    }

    /// Decodes with `fast`, and when it throws, with `foundation`, whose result or error is then
    /// the one returned or thrown.
    ///
    /// `init(from:)` runs twice for a body the fast decoder rejects, so it should have no side effects.
    static func decodeWithFallback<T: Decodable>(
        _ type: T.Type,
        from bytes: [UInt8],
        fast: FastJSONDecoder,
        foundation: JSONDecoder
    ) throws -> T {
        do {
            return try fast.decode(type, from: bytes)
        } catch {
            return try foundation.decode(type, from: Data(bytes))
        }
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
            let state = try? FastJSONDecodingState.parse(bytes, userInfo: userInfoStorage.value),
            state.kind(0) == .object,
            let typeNode = state.member(of: 0, named: "type"),
            state.kind(typeNode) == .string,
            let type = state.string(of: state[typeNode]),
            let dataNode = state.member(of: 0, named: "data"),
            state.kind(dataNode) == .object
        else { return nil }
        var metadata: MessageMetadata?
        if let metadataNode = state.member(of: 0, named: "metadata"), state.kind(metadataNode) != .null {
            guard let direct = state.directMessageMetadata(metadataNode) else { return nil }
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

    /// The `Sendable` user info as `Decoder.userInfo` presents it.
    private final class UserInfoStorage: @unchecked Sendable {
        // Every value was `Sendable` when stored and the dictionary is never mutated.
        let value: [CodingUserInfoKey: Any]
        init(_ userInfo: [CodingUserInfoKey: any Sendable]) {
            var value: [CodingUserInfoKey: Any] = [:]
            value.reserveCapacity(userInfo.count)
            for (key, item) in userInfo { value[key] = item }
            self.value = value
        }
    }
}

// MARK: - Parsed representation

/// What a node stands for.
enum FastJSONKind: UInt8 {
    case null, `false`, `true`, number, string, array, object
}

/// One JSON value.
///
/// - string: `a`..<`b` is the byte range between the quotes; `flags` has
///   ``FastJSONNode/hasEscapes`` and ``FastJSONNode/nonASCII``.
/// - number: `a`..<`b` is the byte range of the number; `flags` has
///   ``FastJSONNode/notInteger`` when it has a fraction or an exponent.
/// - array, object: `a` is the number of elements (members for an object) and `b` the index of
///   the node after the container's last descendant. An object's members follow it as a key
///   (a string node) and the value's nodes.
struct FastJSONNode {
    var a: Int32
    var b: Int32
    var kind: FastJSONKind
    var flags: UInt8

    static let hasEscapes: UInt8 = 1
    static let nonASCII: UInt8 = 2
    static let notInteger: UInt8 = 1
}

/// Why bytes are not accepted as JSON.
struct FastJSONSyntaxError: Error, CustomStringConvertible {
    var offset: Int
    var reason: String
    var description: String { "\(reason) at byte \(offset)" }
}

/// A strict RFC 8259 parser producing ``FastJSONNode``s.
///
/// Stricter than `JSONDecoder` where the two differ (trailing commas, numbers such as `01` in
/// values that are never decoded, a byte order mark, bytes after a NUL) and it also rejects
/// duplicate keys, which `JSONDecoder` resolves by keeping the first.
enum FastJSONParser {
    /// The deepest nesting of arrays and objects accepted, as in `JSONDecoder`.
    static let maximumDepth = 512

    /// How many nodes a document of `byteCount` bytes may need at most: each value takes two
    /// bytes or more with the separator or the brackets after it, except the last one in a
    /// container, whose container takes two. The scanner checks it anyway and fails beyond.
    static func capacity(forByteCount byteCount: Int) -> Int {
        byteCount / 2 + 4
    }

    /// Parses a whole document into `out`, returning the number of nodes written. The last
    /// one is an extra `null` that decoders use for values that are absent
    /// (`superDecoder(forKey:)` for a missing key).
    static func parse(
        _ buffer: UnsafeBufferPointer<UInt8>,
        into out: UnsafeMutableBufferPointer<FastJSONNode>
    ) throws(FastJSONSyntaxError) -> Int {
        guard let base = buffer.baseAddress, buffer.count > 0 else {
            throw FastJSONSyntaxError(offset: 0, reason: "empty input")
        }
        guard buffer.count < Int(Int32.max) / 2 else {
            throw FastJSONSyntaxError(offset: 0, reason: "input too large")
        }
        var scanner = Scanner(p: base, n: buffer.count, out: out)
        try scanner.run()
        try scanner.append(FastJSONNode(a: 0, b: 0, kind: .null, flags: 0))
        return scanner.count
    }

    private struct Scanner {
        let p: UnsafePointer<UInt8>
        let n: Int
        /// Nodes are written here; `count` of them are initialized.
        let out: UnsafeMutableBufferPointer<FastJSONNode>
        var count = 0
        var i = 0

        init(p: UnsafePointer<UInt8>, n: Int, out: UnsafeMutableBufferPointer<FastJSONNode>) {
            self.p = p
            self.n = n
            self.out = out
        }

        func fail(_ reason: String) -> FastJSONSyntaxError {
            FastJSONSyntaxError(offset: i, reason: reason)
        }

        @inline(__always)
        mutating func append(_ node: FastJSONNode) throws(FastJSONSyntaxError) {
            guard count < out.count else { throw fail("too many values") }
            out.initializeElement(at: count, to: node)
            count += 1
        }

        /// The node after `index` and its descendants (all closed).
        @inline(__always)
        func next(after index: Int) -> Int {
            let node = out[index]
            return node.kind.rawValue >= FastJSONKind.array.rawValue ? Int(node.b) : index + 1
        }

        @inline(__always)
        mutating func skipWhitespace() {
            while i < n {
                switch p[i] {
                case 0x20, 0x0A, 0x0D, 0x09: i += 1
                default: return
                }
            }
        }

        mutating func run() throws(FastJSONSyntaxError) {
            // The innermost open container, or -1. While a container is open, its `b` holds the
            // index of the container around it; it becomes the subtree end when it closes.
            var open = -1
            var depth = 0
            var expectingValue = true
            while true {
                if expectingValue {
                    skipWhitespace()
                    guard i < n else { throw fail("unexpected end of input") }
                    switch p[i] {
                    case UInt8(ascii: "{"), UInt8(ascii: "["):
                        guard depth < FastJSONParser.maximumDepth else { throw fail("nesting too deep") }
                        let isObject = p[i] == UInt8(ascii: "{")
                        let index = count
                        try append(FastJSONNode(a: 0, b: Int32(open), kind: isObject ? .object : .array, flags: 0))
                        i += 1
                        skipWhitespace()
                        if i < n && p[i] == UInt8(ascii: isObject ? "}" : "]") {
                            i += 1
                            out[index].b = Int32(count)
                        } else {
                            open = index
                            depth += 1
                            if isObject { try scanKeyAndColon() }
                            continue
                        }
                    case UInt8(ascii: "\""):
                        try scanString()
                    case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                        try scanNumber()
                    case UInt8(ascii: "t"):
                        try scanLiteral("true", .true)
                    case UInt8(ascii: "f"):
                        try scanLiteral("false", .false)
                    case UInt8(ascii: "n"):
                        try scanLiteral("null", .null)
                    default:
                        throw fail("unexpected character")
                    }
                    expectingValue = false
                }
                // A value is complete.
                guard open >= 0 else {
                    skipWhitespace()
                    guard i == n else { throw fail("unexpected data after the value") }
                    return
                }
                out[open].a &+= 1
                skipWhitespace()
                guard i < n else { throw fail("unexpected end of input") }
                let c = p[i]
                let isObject = out[open].kind == .object
                if c == UInt8(ascii: ",") {
                    i += 1
                    if isObject {
                        skipWhitespace()
                        try scanKeyAndColon()
                    }
                    expectingValue = true
                } else if c == UInt8(ascii: isObject ? "}" : "]") {
                    i += 1
                    let parent = Int(out[open].b)
                    out[open].b = Int32(count)
                    if isObject { try checkDuplicateKeys(object: open) }
                    open = parent
                    depth -= 1
                } else {
                    throw fail(isObject ? "expected ',' or '}'" : "expected ',' or ']'")
                }
            }
        }

        mutating func scanKeyAndColon() throws(FastJSONSyntaxError) {
            guard i < n, p[i] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
            try scanString()
            skipWhitespace()
            guard i < n, p[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
            i += 1
        }

        mutating func scanLiteral(_ word: StaticString, _ kind: FastJSONKind) throws(FastJSONSyntaxError) {
            let length = word.utf8CodeUnitCount
            guard n - i >= length else { throw fail("invalid literal") }
            let expected = word.utf8Start
            for k in 0..<length where p[i + k] != expected[k] {
                throw fail("invalid literal")
            }
            i += length
            try append(FastJSONNode(a: 0, b: 0, kind: kind, flags: 0))
        }

        @inline(__always)
        func isDigit(_ k: Int) -> Bool {
            k < n && p[k] &- UInt8(ascii: "0") < 10
        }

        mutating func scanNumber() throws(FastJSONSyntaxError) {
            let start = i
            var flags: UInt8 = 0
            if p[i] == UInt8(ascii: "-") { i += 1 }
            guard isDigit(i) else { throw fail("invalid number") }
            if p[i] == UInt8(ascii: "0") {
                i += 1
            } else {
                while isDigit(i) { i += 1 }
            }
            if i < n && p[i] == UInt8(ascii: ".") {
                flags = FastJSONNode.notInteger
                i += 1
                guard isDigit(i) else { throw fail("invalid number") }
                while isDigit(i) { i += 1 }
            }
            if i < n && (p[i] == UInt8(ascii: "e") || p[i] == UInt8(ascii: "E")) {
                flags = FastJSONNode.notInteger
                i += 1
                if i < n && (p[i] == UInt8(ascii: "+") || p[i] == UInt8(ascii: "-")) { i += 1 }
                guard isDigit(i) else { throw fail("invalid number") }
                while isDigit(i) { i += 1 }
            }
            try append(FastJSONNode(a: Int32(start), b: Int32(i), kind: .number, flags: flags))
        }

        @inline(__always)
        func hexValue(_ k: Int) -> UInt32? {
            guard k < n else { return nil }
            let c = p[k]
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt32(c &- UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt32(c &- UInt8(ascii: "a") &+ 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt32(c &- UInt8(ascii: "A") &+ 10)
            default: return nil
            }
        }

        /// The value of the four hex digits at `k`.
        func hex4(_ k: Int) -> UInt32? {
            guard let a = hexValue(k), let b = hexValue(k + 1), let c = hexValue(k + 2), let d = hexValue(k + 3) else {
                return nil
            }
            return a << 12 | b << 8 | c << 4 | d
        }

        /// Whether the byte at `k` is a UTF-8 continuation byte within `low...high`.
        @inline(__always)
        func continuation(_ k: Int, _ low: UInt8 = 0x80, _ high: UInt8 = 0xBF) -> Bool {
            k < n && p[k] >= low && p[k] <= high
        }

        /// The high bit of each byte of `word` (bytes in memory order, first byte lowest) that is
        /// a quote, a backslash, a control character or a non-ASCII byte, exact for the first
        /// such byte. (`x - 1` borrows into a byte's high bit when the byte is zero, or when a
        /// borrow comes from a lower byte, which only happens above a byte already found.)
        @inline(__always)
        static func specialBytes(_ word: UInt64) -> UInt64 {
            let ones: UInt64 = 0x0101_0101_0101_0101
            let high: UInt64 = 0x8080_8080_8080_8080
            let quotes = word ^ (ones &* UInt64(UInt8(ascii: "\"")))
            let backslashes = word ^ (ones &* UInt64(UInt8(ascii: "\\")))
            let hasQuote = (quotes &- ones) & ~quotes
            let hasBackslash = (backslashes &- ones) & ~backslashes
            let hasControl = (word &- ones &* 0x20) & ~word
            return (hasQuote | hasBackslash | hasControl | word) & high
        }

        mutating func scanString() throws(FastJSONSyntaxError) {
            i += 1  // the opening quote
            let start = i
            var flags: UInt8 = 0
            while true {
                // Skip plain text eight bytes at a time, up to the first byte needing a look.
                while n - i >= 8 {
                    let word = UInt64(littleEndian: UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self))
                    let special = Self.specialBytes(word)
                    if special == 0 {
                        i += 8
                    } else {
                        i += special.trailingZeroBitCount >> 3
                        break
                    }
                }
                guard i < n else { throw fail("unterminated string") }
                let c = p[i]
                if c == UInt8(ascii: "\"") {
                    break
                } else if c == UInt8(ascii: "\\") {
                    flags |= FastJSONNode.hasEscapes
                    guard i + 1 < n else { throw fail("unterminated string") }
                    switch p[i + 1] {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
                        UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                        i += 2
                    case UInt8(ascii: "u"):
                        guard let unit = hex4(i + 2) else { throw fail("invalid \\u escape") }
                        i += 6
                        if unit >= 0xD800 && unit <= 0xDBFF {
                            guard i + 1 < n, p[i] == UInt8(ascii: "\\"), p[i + 1] == UInt8(ascii: "u"),
                                let low = hex4(i + 2), low >= 0xDC00 && low <= 0xDFFF
                            else { throw fail("unpaired surrogate in \\u escape") }
                            i += 6
                        } else if unit >= 0xDC00 && unit <= 0xDFFF {
                            throw fail("unpaired surrogate in \\u escape")
                        }
                    default:
                        throw fail("invalid escape")
                    }
                } else if c < 0x20 {
                    throw fail("unescaped control character in string")
                } else if c < 0x80 {
                    i += 1
                } else {
                    // Well-formed UTF-8, as in Table 3-7 of the Unicode Standard.
                    flags |= FastJSONNode.nonASCII
                    switch c {
                    case 0xC2...0xDF:
                        guard continuation(i + 1) else { throw fail("invalid UTF-8") }
                        i += 2
                    case 0xE0...0xEF:
                        let low: UInt8 = c == 0xE0 ? 0xA0 : 0x80
                        let high: UInt8 = c == 0xED ? 0x9F : 0xBF
                        guard continuation(i + 1, low, high), continuation(i + 2) else { throw fail("invalid UTF-8") }
                        i += 3
                    case 0xF0...0xF4:
                        let low: UInt8 = c == 0xF0 ? 0x90 : 0x80
                        let high: UInt8 = c == 0xF4 ? 0x8F : 0xBF
                        guard continuation(i + 1, low, high), continuation(i + 2), continuation(i + 3) else {
                            throw fail("invalid UTF-8")
                        }
                        i += 4
                    default:
                        throw fail("invalid UTF-8")
                    }
                }
            }
            try append(FastJSONNode(a: Int32(start), b: Int32(i), kind: .string, flags: flags))
            i += 1  // the closing quote
        }

        /// Throws when two keys of the object at `object` are equal as Swift strings (which is
        /// how `JSONDecoder` matches keys, so `"K"` and `"\u212A"` are the same key).
        func checkDuplicateKeys(object: Int) throws(FastJSONSyntaxError) {
            let members = Int(out[object].a)
            guard members > 1 else { return }
            var allPlain = true
            var key = object + 1
            for _ in 0..<members {
                if out[key].flags != 0 { allPlain = false }
                key = next(after: key + 1)
            }
            if allPlain && members <= 16 {
                var first = object + 1
                for m in 0..<members - 1 {
                    var second = next(after: first + 1)
                    for _ in m + 1..<members {
                        if sameBytes(out[first], out[second]) { throw fail("duplicate key in object") }
                        second = next(after: second + 1)
                    }
                    first = next(after: first + 1)
                }
            } else {
                var seen = Set<String>(minimumCapacity: members)
                key = object + 1
                let buffer = UnsafeBufferPointer(start: p, count: n)
                for _ in 0..<members {
                    guard let name = FastJSONDecodingState.string(of: out[key], in: buffer),
                        seen.insert(name).inserted
                    else { throw fail("duplicate key in object") }
                    key = next(after: key + 1)
                }
            }
        }

        func sameBytes(_ x: FastJSONNode, _ y: FastJSONNode) -> Bool {
            let length = Int(x.b - x.a)
            guard length == Int(y.b - y.a) else { return false }
            let xs = Int(x.a)
            let ys = Int(y.a)
            for k in 0..<length where p[xs + k] != p[ys + k] { return false }
            return true
        }
    }
}

// MARK: - Decoding state

/// A coding path, shared by the decoders and containers below a value; built as values nest.
final class FastJSONPathNode {
    let parent: FastJSONPathNode?
    let key: any CodingKey

    init(parent: FastJSONPathNode?, key: any CodingKey) {
        self.parent = parent
        self.key = key
    }

    static func path(_ node: FastJSONPathNode?, appending key: (any CodingKey)? = nil) -> [any CodingKey] {
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
enum _CodingKey: CodingKey {
    case index(Int)
    case `super`

    var stringValue: String {
        switch self {
        case .index(let index): "Index \(index)"
        case .super: "super"
        }
    }

    var intValue: Int? {
        switch self {
        case .index(let index): index
        case .super: nil
        }
    }

    init?(stringValue: String) {
        guard stringValue == "super" else { return nil }
        self = .super
    }

    init(intValue: Int) { self = .index(intValue) }
}

/// Why a value could not be converted; containers turn it into a `DecodingError` with the
/// coding path, which is only built then.
enum FastJSONValueError: Error {
    case typeMismatch(any Any.Type, found: FastJSONKind)
    case valueNotFound(any Any.Type)
    case notRepresentable(any Any.Type, number: String)
    case dataCorrupted(String)
    /// Not decodable exactly as `JSONDecoder` would (see ``FastJSONDecodingState/mustFallBack``).
    case fallBack

    func decodingError(at codingPath: [any CodingKey]) -> DecodingError {
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
struct FastJSONLookupHint {
    var object = -1
    var key = 0
    var ordinal = 0
}

/// What every decoder of one `decode` call shares, besides the nodes.
struct FastJSONDocument {
    let bytes: [UInt8]
    let userInfo: [CodingUserInfoKey: Any]
    /// How many nodes are initialized.
    var count = 0
    /// Set when a value was met that this decoder cannot decode exactly as `JSONDecoder`: the
    /// decoding then fails at the top even if an `init(from:)` caught the error.
    var mustFallBack = false
    /// Lookup hints for up to four objects at a time, by object index modulo 4.
    var hint0 = FastJSONLookupHint()
    var hint1 = FastJSONLookupHint()
    var hint2 = FastJSONLookupHint()
    var hint3 = FastJSONLookupHint()

    func hint(for object: Int) -> FastJSONLookupHint {
        switch object & 3 {
        case 0: hint0
        case 1: hint1
        case 2: hint2
        default: hint3
        }
    }

    mutating func setHint(_ hint: FastJSONLookupHint) {
        switch hint.object & 3 {
        case 0: hint0 = hint
        case 1: hint1 = hint
        case 2: hint2 = hint
        default: hint3 = hint
        }
    }
}

/// The parsed document: the bytes, what decoders share, and the nodes, in one allocation.
final class FastJSONDecodingState: ManagedBuffer<FastJSONDocument, FastJSONNode> {
    static let fallBackDescription = "FastJSONDecoder cannot decode this input exactly as JSONDecoder does."

    /// Parses `bytes` into a new state.
    static func parse(_ bytes: [UInt8], userInfo: [CodingUserInfoKey: Any]) throws(FastJSONSyntaxError)
        -> FastJSONDecodingState
    {
        let capacity = FastJSONParser.capacity(forByteCount: bytes.count)
        let state = unsafeDowncast(
            create(minimumCapacity: capacity) { _ in FastJSONDocument(bytes: bytes, userInfo: userInfo) },
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
    func withBytes<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        try withUnsafeMutablePointerToHeader { try $0.pointee.bytes.withUnsafeBufferPointer(body) }
    }

    var userInfo: [CodingUserInfoKey: Any] { withUnsafeMutablePointerToHeader { $0.pointee.userInfo } }
    var count: Int { withUnsafeMutablePointerToHeader { $0.pointee.count } }

    var mustFallBack: Bool {
        get { withUnsafeMutablePointerToHeader { $0.pointee.mustFallBack } }
        set { withUnsafeMutablePointerToHeader { $0.pointee.mustFallBack = newValue } }
    }

    /// The node at `index`, which is always one the parser wrote.
    @inline(__always)
    subscript(index: Int) -> FastJSONNode {
        withUnsafeMutablePointers { document, nodes in
            precondition(index >= 0 && index < document.pointee.count, "node index out of range")
            return nodes[index]
        }
    }

    /// The index of the node after `index` and its descendants.
    @inline(__always)
    func next(after index: Int) -> Int {
        let node = self[index]
        return node.kind.rawValue >= FastJSONKind.array.rawValue ? Int(node.b) : index + 1
    }

    /// The index of the `null` node standing for absent values.
    var absentNode: Int { count - 1 }

    /// Marks the decoding as failed (see ``FastJSONDocument/mustFallBack``) and returns the error to throw.
    func fallBack() -> FastJSONValueError {
        mustFallBack = true
        return .fallBack
    }

    @inline(__always)
    func kind(_ node: Int) -> FastJSONKind { self[node].kind }

    // MARK: Strings

    /// The raw text of a string or number node.
    func text(of node: FastJSONNode) -> String {
        withBytes { buffer in
            let start = min(max(Int(node.a), 0), buffer.count)
            let end = min(max(Int(node.b), start), buffer.count)
            return String(decoding: UnsafeBufferPointer(rebasing: buffer[start..<end]), as: UTF8.self)
        }
    }

    /// The value of a string node, or nil when its escapes are malformed (which the parser rejects).
    static func string(of node: FastJSONNode, in buffer: UnsafeBufferPointer<UInt8>) -> String? {
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

    func string(of node: FastJSONNode) -> String? {
        withBytes { Self.string(of: node, in: $0) }
    }

    // MARK: Keyed lookup

    /// The index of the value of the member of the object at `object` whose key equals `name`
    /// (as Swift strings compare, like `JSONDecoder`).
    ///
    /// The scan starts after the member found last in the same object, wrapping around.
    func member(of object: Int, named name: String) -> Int? {
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

    func decodeBool(_ node: Int) throws(FastJSONValueError) -> Bool {
        switch self[node].kind {
        case .true: return true
        case .false: return false
        case let other: throw .typeMismatch(Bool.self, found: other)
        }
    }

    func decodeString(_ node: Int) throws(FastJSONValueError) -> String {
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
    func decodeInteger<T: FixedWidthInteger>(_: T.Type, _ node: Int) throws(FastJSONValueError) -> T {
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
    static func parseInteger<T: FixedWidthInteger>(_ buffer: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> T?
    {
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
    func decodeFloatingPoint<T: BinaryFloatingPoint & LosslessStringConvertible>(
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
    static func exactDouble(_ buffer: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Double? {
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
    static func isTrueZero(_ buffer: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Bool {
        for k in max(start, 0)..<min(end, buffer.count) {
            switch buffer[k] {
            case UInt8(ascii: "1")...UInt8(ascii: "9"): return false
            case UInt8(ascii: "e"), UInt8(ascii: "E"): return true
            default: continue
            }
        }
        return true
    }

    func decodeDecimal(_ node: Int) throws(FastJSONValueError) -> Decimal {
        let value = self[node]
        guard value.kind == .number else {
            if value.kind == .null { throw .valueNotFound(Decimal.self) }
            throw .typeMismatch(Decimal.self, found: value.kind)
        }
        guard let decimal = Decimal(string: text(of: value)) else { throw fallBack() }
        return decimal
    }

    func decodeDate(_ node: Int) throws(FastJSONValueError) -> Date {
        if self[node].kind == .null { throw .valueNotFound(Date.self) }
        let string = try decodeString(node)
        if let date = FastJSONDate.parse(string) { return date }
        // What JSONDecoder's `.iso8601` strategy does.
        guard let date = try? Date.ISO8601FormatStyle().parse(string) else {
            throw .dataCorrupted("Expected date string to be ISO8601-formatted.")
        }
        return date
    }

    func decodeData(_ node: Int) throws(FastJSONValueError) -> Data {
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

    func decodeURL(_ node: Int) throws(FastJSONValueError) -> URL {
        if self[node].kind == .null { throw .valueNotFound(URL.self) }
        guard let url = URL(string: try decodeString(node)) else { throw .dataCorrupted("Invalid URL string.") }
        return url
    }

    /// Decodes any `Decodable` from the node, handling the types `JSONDecoder` decodes itself.
    ///
    /// `parent` and `key` make the value's coding path.
    func unwrap<T: Decodable>(_: T.Type, node: Int, parent: FastJSONPathNode?, key: (any CodingKey)?) throws -> T {
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
        // This module's own types, read straight from the nodes when the input is ordinary.
        if T.self == JSONValue.self, let value = directJSONValue(node) { return Self.same(value, as: T.self) }
        if T.self == MessageMetadata.self, let value = directMessageMetadata(node) {
            return Self.same(value, as: T.self)
        }
        let path = key.map { FastJSONPathNode(parent: parent, key: $0) } ?? parent
        return try T(from: FastJSONValueDecoder(state: self, node: node, path: path))
    }

    // MARK: Direct decoding of this module's types

    // `JSONValue` and `MessageMetadata` are decoded on every message; going through their
    // `init(from:)` costs mostly Codable's own machinery (`allKeys` is cast twice, every keyed
    // container is boxed). These functions give what those initializers give for the inputs
    // they handle, and nil for anything else (an error on the way, a number that is neither an
    // `Int` nor a `Double`), which then goes through `init(from:)`. Keep them in step with
    // `JSONValue.init(from:)` and `MessageMetadata.init(from:)`; the differential tests check
    // them against JSONDecoder, which uses those initializers.

    /// What `JSONValue.init(from:)` gives: null, then Bool, Int, Double, String, array, object.
    func directJSONValue(_ node: Int) -> JSONValue? {
        let value = self[node]
        switch value.kind {
        case .null:
            return .null
        case .true:
            return .bool(true)
        case .false:
            return .bool(false)
        case .number:
            if let integer = try? decodeInteger(Int.self, node) { return .int(integer) }
            if let double = try? decodeFloatingPoint(Double.self, node) { return .double(double) }
            return nil
        case .string:
            return string(of: value).map(JSONValue.string)
        case .array:
            var items: [JSONValue] = []
            items.reserveCapacity(Int(value.a))
            var element = node + 1
            for _ in 0..<Int(value.a) {
                guard let item = directJSONValue(element) else { return nil }
                items.append(item)
                element = next(after: element)
            }
            return .array(items)
        case .object:
            var members: [String: JSONValue] = [:]
            members.reserveCapacity(Int(value.a))
            var key = node + 1
            for _ in 0..<Int(value.a) {
                guard let name = string(of: self[key]), let member = directJSONValue(key + 1) else { return nil }
                members[name] = member
                key = next(after: key + 1)
            }
            return .object(members)
        }
    }

    /// What `MessageMetadata.init(from:)` gives: `originSubject` and `traceId` as optional
    /// strings, every other key as a `JSONValue`.
    func directMessageMetadata(_ node: Int) -> MessageMetadata? {
        let object = self[node]
        guard object.kind == .object else { return nil }
        var metadata = MessageMetadata()
        var additional: [String: JSONValue] = [:]
        var key = node + 1
        for _ in 0..<Int(object.a) {
            guard let name = string(of: self[key]) else { return nil }
            let value = self[key + 1]
            // As the initializer's `switch key.stringValue`, by String equality.
            if name == "originSubject" || name == "traceId" {
                let text: String?
                switch value.kind {
                case .null: text = nil
                case .string:
                    guard let string = string(of: value) else { return nil }
                    text = string
                default: return nil
                }
                if name == "originSubject" { metadata.originSubject = text } else { metadata.traceId = text }
            } else {
                guard let member = directJSONValue(key + 1) else { return nil }
                additional[name] = member
            }
            key = next(after: key + 1)
        }
        metadata.additionalFields = additional
        return metadata
    }

    /// `value` as `T`, which the caller checked is `U`.
    @inline(__always)
    static func same<T, U>(_ value: U, as _: T.Type) -> T {
        unsafeBitCast(value, to: T.self)
    }

    func keyedContainer<Key: CodingKey>(
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

    func unkeyedContainer(node: Int, path: FastJSONPathNode?) throws -> any UnkeyedDecodingContainer {
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

// MARK: - Decoder and single value container

/// The decoder of one value; also its single value container.
struct FastJSONValueDecoder: Decoder, SingleValueDecodingContainer {
    let state: FastJSONDecodingState
    let node: Int
    let path: FastJSONPathNode?

    var codingPath: [any CodingKey] { FastJSONPathNode.path(path) }
    var userInfo: [CodingUserInfoKey: Any] { state.userInfo }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        try state.keyedContainer(keyedBy: type, node: node, path: path)
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try state.unkeyedContainer(node: node, path: path)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { self }

    /// Runs a conversion, adding the coding path to its error.
    @inline(__always)
    private func value<T>(_ convert: () throws(FastJSONValueError) -> T) throws -> T {
        do {
            return try convert()
        } catch {
            throw error.decodingError(at: codingPath)
        }
    }

    func decodeNil() -> Bool { state.kind(node) == .null }
    func decode(_ type: Bool.Type) throws -> Bool {
        try value { () throws(FastJSONValueError) in try state.decodeBool(node) }
    }
    func decode(_ type: String.Type) throws -> String {
        try value { () throws(FastJSONValueError) in try state.decodeString(node) }
    }
    func decode(_ type: Double.Type) throws -> Double { try floatingPoint(type) }
    func decode(_ type: Float.Type) throws -> Float { try floatingPoint(type) }
    func decode(_ type: Int.Type) throws -> Int { try integer(type) }
    func decode(_ type: Int8.Type) throws -> Int8 { try integer(type) }
    func decode(_ type: Int16.Type) throws -> Int16 { try integer(type) }
    func decode(_ type: Int32.Type) throws -> Int32 { try integer(type) }
    func decode(_ type: Int64.Type) throws -> Int64 { try integer(type) }
    func decode(_ type: Int128.Type) throws -> Int128 { try integer(type) }
    func decode(_ type: UInt.Type) throws -> UInt { try integer(type) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try integer(type) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try integer(type) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try integer(type) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try integer(type) }
    func decode(_ type: UInt128.Type) throws -> UInt128 { try integer(type) }

    @inline(__always)
    private func integer<T: FixedWidthInteger>(_ type: T.Type) throws -> T {
        try value { () throws(FastJSONValueError) in try state.decodeInteger(type, node) }
    }

    @inline(__always)
    private func floatingPoint<T: BinaryFloatingPoint & LosslessStringConvertible>(_ type: T.Type) throws -> T {
        try value { () throws(FastJSONValueError) in try state.decodeFloatingPoint(type, node) }
    }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try state.unwrap(type, node: node, parent: path, key: nil)
    }
}

// MARK: - Keyed container

struct FastJSONKeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let state: FastJSONDecodingState
    let object: Int
    let path: FastJSONPathNode?

    var codingPath: [any CodingKey] { FastJSONPathNode.path(path) }

    /// The keys in the order of the JSON text.
    var allKeys: [Key] {
        let count = Int(state[object].a)
        var keys: [Key] = []
        keys.reserveCapacity(count)
        var integers: [Int] = []
        var keyIndex = object + 1
        for _ in 0..<count {
            if let name = state.string(of: state[keyIndex]), let key = Key(stringValue: name) {
                if let integer = key.intValue {
                    // Two keys naming the same integer ("1" and "01" in a `[Int: V]`): JSONDecoder
                    // keeps whichever its hashed dictionary yields last, so do not guess.
                    if integers.contains(integer) { state.mustFallBack = true }
                    integers.append(integer)
                }
                keys.append(key)
            }
            keyIndex = state.next(after: keyIndex + 1)
        }
        return keys
    }

    /// The node of the value for `key`; throws `keyNotFound` when there is none.
    @inline(__always)
    private func require(_ key: Key) throws -> Int {
        guard let node = state.member(of: object, named: key.stringValue) else { throw keyNotFound(key) }
        return node
    }

    private func keyNotFound(_ key: Key) -> DecodingError {
        .keyNotFound(
            key,
            .init(
                codingPath: codingPath,
                debugDescription: "No value associated with key \(key) (\"\(key.stringValue)\")."
            )
        )
    }

    /// The value's node, or nil when the key is missing or the value is null.
    @inline(__always)
    private func present(_ key: Key) -> Int? {
        guard let node = state.member(of: object, named: key.stringValue), state.kind(node) != .null else { return nil }
        return node
    }

    /// Runs a conversion, adding the coding path to its error.
    @inline(__always)
    private func value<T>(_ key: Key, _ convert: () throws(FastJSONValueError) -> T) throws -> T {
        do {
            return try convert()
        } catch {
            throw error.decodingError(at: FastJSONPathNode.path(path, appending: key))
        }
    }

    func contains(_ key: Key) -> Bool { state.member(of: object, named: key.stringValue) != nil }

    func decodeNil(forKey key: Key) throws -> Bool {
        state.kind(try require(key)) == .null
    }

    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool {
        let node = try require(key)
        return try value(key) { () throws(FastJSONValueError) in try state.decodeBool(node) }
    }

    func decode(_ type: String.Type, forKey key: Key) throws -> String {
        let node = try require(key)
        return try value(key) { () throws(FastJSONValueError) in try state.decodeString(node) }
    }

    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try floatingPoint(type, key) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try floatingPoint(type, key) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try integer(type, key) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try integer(type, key) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try integer(type, key) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try integer(type, key) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try integer(type, key) }
    func decode(_ type: Int128.Type, forKey key: Key) throws -> Int128 { try integer(type, key) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try integer(type, key) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try integer(type, key) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try integer(type, key) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try integer(type, key) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try integer(type, key) }
    func decode(_ type: UInt128.Type, forKey key: Key) throws -> UInt128 { try integer(type, key) }

    @inline(__always)
    private func integer<T: FixedWidthInteger>(_ type: T.Type, _ key: Key) throws -> T {
        let node = try require(key)
        return try value(key) { () throws(FastJSONValueError) in try state.decodeInteger(type, node) }
    }

    @inline(__always)
    private func floatingPoint<T: BinaryFloatingPoint & LosslessStringConvertible>(_ type: T.Type, _ key: Key) throws
        -> T
    {
        let node = try require(key)
        return try value(key) { () throws(FastJSONValueError) in try state.decodeFloatingPoint(type, node) }
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try state.unwrap(type, node: try require(key), parent: path, key: key)
    }

    // One lookup instead of the three of the default implementations.

    func decodeIfPresent(_ type: Bool.Type, forKey key: Key) throws -> Bool? {
        guard let node = present(key) else { return nil }
        return try value(key) { () throws(FastJSONValueError) in try state.decodeBool(node) }
    }

    func decodeIfPresent(_ type: String.Type, forKey key: Key) throws -> String? {
        guard let node = present(key) else { return nil }
        return try value(key) { () throws(FastJSONValueError) in try state.decodeString(node) }
    }

    func decodeIfPresent(_ type: Double.Type, forKey key: Key) throws -> Double? {
        guard let node = present(key) else { return nil }
        return try value(key) { () throws(FastJSONValueError) in try state.decodeFloatingPoint(type, node) }
    }

    func decodeIfPresent(_ type: Int.Type, forKey key: Key) throws -> Int? {
        guard let node = present(key) else { return nil }
        return try value(key) { () throws(FastJSONValueError) in try state.decodeInteger(type, node) }
    }

    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard let node = present(key) else { return nil }
        return try state.unwrap(type, node: node, parent: path, key: key)
    }

    func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type,
        forKey key: Key
    ) throws -> KeyedDecodingContainer<NestedKey> {
        let node = try require(key)
        return try state.keyedContainer(keyedBy: type, node: node, path: FastJSONPathNode(parent: path, key: key))
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        let node = try require(key)
        return try state.unkeyedContainer(node: node, path: FastJSONPathNode(parent: path, key: key))
    }

    /// A decoder for the value of `super`, or for null when there is none.
    func superDecoder() throws -> any Decoder {
        let node = state.member(of: object, named: "super") ?? state.absentNode
        return FastJSONValueDecoder(
            state: state,
            node: node,
            path: FastJSONPathNode(parent: path, key: _CodingKey.super)
        )
    }

    /// A decoder for the value of `key`, or for null when there is none.
    func superDecoder(forKey key: Key) throws -> any Decoder {
        let node = state.member(of: object, named: key.stringValue) ?? state.absentNode
        return FastJSONValueDecoder(state: state, node: node, path: FastJSONPathNode(parent: path, key: key))
    }
}

// MARK: - Unkeyed container

struct FastJSONUnkeyedContainer: UnkeyedDecodingContainer {
    let state: FastJSONDecodingState
    let path: FastJSONPathNode?
    let elementCount: Int
    /// The node of the element at `currentIndex`, when not at the end.
    private var cursor: Int
    private(set) var currentIndex = 0

    init(state: FastJSONDecodingState, array: Int, path: FastJSONPathNode?) {
        self.state = state
        self.path = path
        self.elementCount = Int(state[array].a)
        self.cursor = array + 1
    }

    var codingPath: [any CodingKey] { FastJSONPathNode.path(path) }
    var count: Int? { elementCount }
    var isAtEnd: Bool { currentIndex >= elementCount }

    private var indexKey: _CodingKey { .index(currentIndex) }

    /// The current element's node; throws `valueNotFound` at the end.
    private func current(_ type: any Any.Type, _ message: String = "Unkeyed container is at end.") throws -> Int {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(
                type,
                .init(codingPath: FastJSONPathNode.path(path, appending: indexKey), debugDescription: message)
            )
        }
        return cursor
    }

    /// Moves to the next element; past the end only the index moves, as in `JSONDecoder`.
    private mutating func advance() {
        if currentIndex < elementCount {
            cursor = state.next(after: cursor)
        }
        currentIndex += 1
    }

    /// Converts the current element, adding the coding path to a conversion error, and moves on.
    @inline(__always)
    private mutating func next<T>(_ type: T.Type, _ convert: (Int) throws(FastJSONValueError) -> T) throws -> T {
        let node = try current(type)
        let result: T
        do {
            result = try convert(node)
        } catch {
            throw error.decodingError(at: FastJSONPathNode.path(path, appending: indexKey))
        }
        advance()
        return result
    }

    mutating func decodeNil() throws -> Bool {
        let node = try current(Never.self)
        guard state.kind(node) == .null else { return false }
        advance()
        return true
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool {
        let state = state
        return try next(type) { node throws(FastJSONValueError) in try state.decodeBool(node) }
    }

    mutating func decode(_ type: String.Type) throws -> String {
        let state = state
        return try next(type) { node throws(FastJSONValueError) in try state.decodeString(node) }
    }

    mutating func decode(_ type: Double.Type) throws -> Double { try floatingPoint(type) }
    mutating func decode(_ type: Float.Type) throws -> Float { try floatingPoint(type) }
    mutating func decode(_ type: Int.Type) throws -> Int { try integer(type) }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try integer(type) }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try integer(type) }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try integer(type) }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try integer(type) }
    mutating func decode(_ type: Int128.Type) throws -> Int128 { try integer(type) }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try integer(type) }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try integer(type) }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try integer(type) }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try integer(type) }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try integer(type) }
    mutating func decode(_ type: UInt128.Type) throws -> UInt128 { try integer(type) }

    @inline(__always)
    private mutating func integer<T: FixedWidthInteger>(_ type: T.Type) throws -> T {
        let state = state
        return try next(type) { node throws(FastJSONValueError) in try state.decodeInteger(type, node) }
    }

    @inline(__always)
    private mutating func floatingPoint<T: BinaryFloatingPoint & LosslessStringConvertible>(_ type: T.Type) throws -> T
    {
        let state = state
        return try next(type) { node throws(FastJSONValueError) in try state.decodeFloatingPoint(type, node) }
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let node = try current(type)
        let result = try state.unwrap(type, node: node, parent: path, key: indexKey)
        advance()
        return result
    }

    // `decodeIfPresent` gives nil for a null element and also at the end, moving the index on
    // in both cases, as in `JSONDecoder` (the default implementations do not move at the end).

    @inline(__always)
    private mutating func ifPresent<T>(_ decode: (inout Self) throws -> T) throws -> T? {
        guard !isAtEnd, state.kind(cursor) != .null else {
            advance()
            return nil
        }
        return try decode(&self)
    }

    mutating func decodeIfPresent(_ type: Bool.Type) throws -> Bool? { try ifPresent { try $0.decode(type) } }
    mutating func decodeIfPresent(_ type: String.Type) throws -> String? { try ifPresent { try $0.decode(type) } }
    mutating func decodeIfPresent(_ type: Double.Type) throws -> Double? { try ifPresent { try $0.decode(type) } }
    mutating func decodeIfPresent(_ type: Float.Type) throws -> Float? { try ifPresent { try $0.decode(type) } }
    mutating func decodeIfPresent(_ type: Int.Type) throws -> Int? { try ifPresent { try $0.decode(type) } }
    mutating func decodeIfPresent(_ type: Int8.Type) throws -> Int8? { try ifPresent { try $0.decode(type) } }
    mutating func decodeIfPresent(_ type: Int16.Type) throws -> Int16? { try ifPresent { try $0.decode(type) } }
    mutating func decodeIfPresent(_ type: Int32.Type) throws -> Int32? { try ifPresent { try $0.decode(type) } }
    mutating func decodeIfPresent(_ type: Int64.Type) throws -> Int64? { try ifPresent { try $0.decode(type) } }
    mutating func decodeIfPresent(_ type: Int128.Type) throws -> Int128? { try ifPresent { try $0.decode(type) } }
    mutating func decodeIfPresent(_ type: UInt.Type) throws -> UInt? { try ifPresent { try $0.decode(type) } }
    mutating func decodeIfPresent(_ type: UInt8.Type) throws -> UInt8? { try ifPresent { try $0.decode(type) } }
    mutating func decodeIfPresent(_ type: UInt16.Type) throws -> UInt16? { try ifPresent { try $0.decode(type) } }
    mutating func decodeIfPresent(_ type: UInt32.Type) throws -> UInt32? { try ifPresent { try $0.decode(type) } }
    mutating func decodeIfPresent(_ type: UInt64.Type) throws -> UInt64? { try ifPresent { try $0.decode(type) } }
    mutating func decodeIfPresent(_ type: UInt128.Type) throws -> UInt128? { try ifPresent { try $0.decode(type) } }
    mutating func decodeIfPresent<T: Decodable>(_ type: T.Type) throws -> T? { try ifPresent { try $0.decode(type) } }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type
    ) throws -> KeyedDecodingContainer<NestedKey> {
        let node = try current(KeyedDecodingContainer<NestedKey>.self)
        let container = try state.keyedContainer(
            keyedBy: type,
            node: node,
            path: FastJSONPathNode(parent: path, key: indexKey)
        )
        advance()
        return container
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let node = try current(
            (any UnkeyedDecodingContainer).self,
            "Cannot get nested unkeyed container -- unkeyed container is at end."
        )
        let container = try state.unkeyedContainer(node: node, path: FastJSONPathNode(parent: path, key: indexKey))
        advance()
        return container
    }

    mutating func superDecoder() throws -> any Decoder {
        let node = try current((any Decoder).self, "Cannot get superDecoder() -- unkeyed container is at end.")
        let decoder = FastJSONValueDecoder(
            state: state,
            node: node,
            path: FastJSONPathNode(parent: path, key: indexKey)
        )
        advance()
        return decoder
    }
}

// MARK: - Dates

/// The one ISO 8601 form `JSONEncoder` writes, `2024-01-02T03:04:05Z`, read without a calendar.
/// Every other string goes to `Date.ISO8601FormatStyle`, as in `JSONDecoder`.
enum FastJSONDate {
    static func parse(_ string: String) -> Date? {
        var string = string
        return string.withUTF8 { s -> Date? in
            guard s.count == 20, s[4] == UInt8(ascii: "-"), s[7] == UInt8(ascii: "-"), s[10] == UInt8(ascii: "T"),
                s[13] == UInt8(ascii: ":"), s[16] == UInt8(ascii: ":"), s[19] == UInt8(ascii: "Z")
            else { return nil }
            func number(_ start: Int, _ length: Int) -> Int? {
                var value = 0
                for k in start..<start + length {
                    let digit = s[k] &- UInt8(ascii: "0")
                    guard digit < 10 else { return nil }
                    value = value * 10 + Int(digit)
                }
                return value
            }
            guard let year = number(0, 4), let month = number(5, 2), let day = number(8, 2),
                let hour = number(11, 2), let minute = number(14, 2), let second = number(17, 2),
                // Gregorian dates well after the Julian cutover, and no rolling over of fields.
                (1900...9999).contains(year), (1...12).contains(month), day >= 1,
                day <= daysInMonth(year, month), hour < 24, minute < 60, second < 60
            else { return nil }
            let days = daysSince1970(year: year, month: month, day: day)
            let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second
            return Date(timeIntervalSince1970: Double(seconds))
        }
    }

    static func isLeap(_ year: Int) -> Bool {
        year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
    }

    static func daysInMonth(_ year: Int, _ month: Int) -> Int {
        switch month {
        case 2: isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Days from 1970-01-01 to the given Gregorian date (year 1900 or later).
    static func daysSince1970(year: Int, month: Int, day: Int) -> Int {
        // Count from 1 March of year 0 so the leap day is the last day of the year.
        let y = month <= 2 ? year - 1 : year
        let m = month <= 2 ? month + 9 : month - 3
        let daysBeforeYear = 365 * y + y / 4 - y / 100 + y / 400
        let daysBeforeMonth = (153 * m + 2) / 5
        // 719_468 is the count from 0000-03-01 to 1970-01-01.
        return daysBeforeYear + daysBeforeMonth + day - 1 - 719_468
    }
}

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// What a node stands for.
package enum FastJSONKind: UInt8 {
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
package struct FastJSONNode {
    package var a: Int32
    package var b: Int32
    package var kind: FastJSONKind
    package var flags: UInt8

    package static let hasEscapes: UInt8 = 1
    package static let nonASCII: UInt8 = 2
    package static let notInteger: UInt8 = 1
}

/// Why bytes are not accepted as JSON.
package struct FastJSONSyntaxError: Error, CustomStringConvertible {
    package var offset: Int
    package var reason: String
    package var description: String { "\(reason) at byte \(offset)" }
}

/// A strict RFC 8259 parser producing ``FastJSONNode``s.
///
/// Stricter than `JSONDecoder` where the two differ (trailing commas, numbers such as `01` in
/// values that are never decoded, a byte order mark, bytes after a NUL) and it also rejects
/// duplicate keys, which `JSONDecoder` resolves by keeping the first.
package enum FastJSONParser {
    /// The deepest nesting of arrays and objects accepted, as in `JSONDecoder`.
    package static let maximumDepth = 512

    /// How many nodes a document of `byteCount` bytes may need at most: each value takes two
    /// bytes or more with the separator or the brackets after it, except the last one in a
    /// container, whose container takes two. The scanner checks it anyway and fails beyond.
    package static func capacity(forByteCount byteCount: Int) -> Int {
        byteCount / 2 + 4
    }

    /// Parses a whole document into `out`, returning the number of nodes written. The last
    /// one is an extra `null` that decoders use for values that are absent
    /// (`superDecoder(forKey:)` for a missing key).
    package static func parse(
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

        mutating func scanString() throws(FastJSONSyntaxError) {
            i += 1  // the opening quote
            let start = i
            var flags: UInt8 = 0
            while true {
                // Skip plain text eight bytes at a time, up to the first byte needing a look.
                while n - i >= 8 {
                    let word = UInt64(littleEndian: UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self))
                    let special = JSONWords.specialBytes(word)
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

/// Eight bytes of JSON text at a time, for the parser and the encoder.
enum JSONWords {
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
}

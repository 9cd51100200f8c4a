#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// What JetStream answered to a publish, read from the JSON body of its reply.
///
/// The server answers `{"stream":"S","seq":7}` (with `"duplicate":true` when it had already
/// stored a message with the same `Nats-Msg-Id`, and `"domain"` when the account has one), or
/// `{"error":{"code":400,"err_code":10071,"description":"..."}}`. Only those fields are read,
/// by hand, in one pass: publishing at full speed reads one of these for every message, and a
/// general JSON decoder costs several times the rest of the work. Any other field is skipped;
/// anything that is not such an object is `unreadable`, never a crash.
enum PublishAckReply: Equatable {
    case stored(stream: String, sequence: UInt64, isDuplicate: Bool)
    case refused(code: Int, errorCode: Int, description: String)
    case unreadable(reason: String)

    /// Reads `body`. `previousStream` is returned instead of a new String when the stream's
    /// name is the same, as it is for most acknowledgements.
    static func parse(_ body: UnsafeRawBufferPointer, previousStream: String = "") -> PublishAckReply {
        var reader = Reader(bytes: body)
        do {
            return try reader.readReply(previousStream: previousStream)
        } catch {
            return .unreadable(reason: error.reason)
        }
    }

    static func parse(_ body: [UInt8], previousStream: String = "") -> PublishAckReply {
        body.withUnsafeBytes { parse($0, previousStream: previousStream) }
    }
}

private struct Unreadable: Error {
    let reason: String
}

/// A cursor over the bytes of one reply.
private struct Reader {
    let bytes: UnsafeRawBufferPointer
    var position = 0

    init(bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    mutating func readReply(previousStream: String) throws(Unreadable) -> PublishAckReply {
        guard !bytes.isEmpty else { throw Unreadable(reason: "empty reply") }
        skipWhitespace()
        var stream: String?
        var sequence: UInt64?
        var isDuplicate = false
        var refusal: PublishAckReply?
        try readObject { (reader, key) throws(Unreadable) in
            if reader.keyIs(key, "stream") {
                stream = try reader.readString(reusing: previousStream)
            } else if reader.keyIs(key, "seq") {
                sequence = try reader.readUnsigned()
            } else if reader.keyIs(key, "duplicate") {
                isDuplicate = try reader.readBool()
            } else if reader.keyIs(key, "error") {
                refusal = try reader.readError()
            } else {
                try reader.skipValue()
            }
        }
        skipWhitespace()
        guard position == bytes.count else { throw Unreadable(reason: "unexpected bytes after the object") }
        // As cnats: an error object with neither code set does not refuse the message.
        if let refusal, case .refused(let code, let errorCode, _) = refusal, code != 0 || errorCode != 0 {
            return refusal
        }
        guard let stream, let sequence else {
            throw Unreadable(reason: "no stream and sequence in the acknowledgement")
        }
        return .stored(stream: stream, sequence: sequence, isDuplicate: isDuplicate)
    }

    private mutating func readError() throws(Unreadable) -> PublishAckReply {
        var code = 0
        var errorCode = 0
        var description = ""
        try readObject { (reader, key) throws(Unreadable) in
            if reader.keyIs(key, "code") {
                code = Int(clamping: try reader.readUnsigned())
            } else if reader.keyIs(key, "err_code") {
                errorCode = Int(clamping: try reader.readUnsigned())
            } else if reader.keyIs(key, "description") {
                description = try reader.readString(reusing: "")
            } else {
                try reader.skipValue()
            }
        }
        return .refused(code: code, errorCode: errorCode, description: description)
    }

    /// Reads `{ "key": value, ... }`, calling `field` with each key's raw bytes (escapes not
    /// decoded: the keys of interest have none) positioned at the value, which it must consume.
    private mutating func readObject(
        _ field: (inout Reader, Range<Int>) throws(Unreadable) -> Void
    ) throws(Unreadable) {
        try expect(UInt8(ascii: "{"))
        skipWhitespace()
        if peek() == UInt8(ascii: "}") {
            position += 1
            return
        }
        while true {
            skipWhitespace()
            let key = try readRawString()
            skipWhitespace()
            try expect(UInt8(ascii: ":"))
            skipWhitespace()
            try field(&self, key)
            skipWhitespace()
            guard let next = peek() else { throw Unreadable(reason: "unterminated object") }
            position += 1
            if next == UInt8(ascii: "}") { return }
            guard next == UInt8(ascii: ",") else { throw Unreadable(reason: "expected ',' or '}' in an object") }
        }
    }

    func keyIs(_ key: Range<Int>, _ name: StaticString) -> Bool {
        guard key.count == name.utf8CodeUnitCount else { return false }
        let expected = UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount)
        return Self.same(bytes[key], expected)
    }

    /// Whether two runs of bytes are equal: a comparison of memory, not of two sequences element
    /// by element (every acknowledgement compares its stream's name).
    static func same(_ slice: Slice<UnsafeRawBufferPointer>, _ other: UnsafeRawBufferPointer) -> Bool {
        guard slice.count == other.count else { return false }
        guard let start = slice.base.baseAddress, let otherStart = other.baseAddress else { return slice.isEmpty }
        return memcmp(start + slice.startIndex, otherStart, slice.count) == 0
    }

    private func peek() -> UInt8? {
        position < bytes.count ? bytes[position] : nil
    }

    private mutating func expect(_ byte: UInt8) throws(Unreadable) {
        guard peek() == byte else {
            throw Unreadable(reason: "expected '\(Character(Unicode.Scalar(byte)))' at byte \(position)")
        }
        position += 1
    }

    private mutating func skipWhitespace() {
        while let byte = peek(), byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 {
            position += 1
        }
    }

    /// The bytes between the quotes of a string, escapes left as they are.
    private mutating func readRawString() throws(Unreadable) -> Range<Int> {
        try expect(UInt8(ascii: "\""))
        let start = position
        while let byte = peek() {
            if byte == UInt8(ascii: "\"") {
                position += 1
                return start..<(position - 1)
            }
            guard byte >= 0x20 else { throw Unreadable(reason: "control character in a string") }
            if byte == UInt8(ascii: "\\") {
                position += 1
                guard let escaped = peek(), Self.escapes.contains(escaped) else {
                    throw Unreadable(reason: "unknown escape in a string")
                }
            }
            position += 1
        }
        throw Unreadable(reason: "unterminated string")
    }

    private static let escapes = Array(#""\/bfnrtu"#.utf8)

    private mutating func readString(reusing previous: String) throws(Unreadable) -> String {
        let raw = try readRawString()
        let slice = bytes[raw]
        guard slice.contains(UInt8(ascii: "\\")) else {
            var previous = previous
            if previous.withUTF8({ Self.same(slice, UnsafeRawBufferPointer($0)) }) { return previous }
            return String(decoding: slice, as: UTF8.self)
        }
        return try unescape(raw)
    }

    private func unescape(_ raw: Range<Int>) throws(Unreadable) -> String {
        var scalars = String.UnicodeScalarView()
        var utf8: [UInt8] = []
        var index = raw.lowerBound
        func flush() {
            scalars.append(contentsOf: String(decoding: utf8, as: UTF8.self).unicodeScalars)
            utf8.removeAll()
        }
        func hex4(at position: Int) throws(Unreadable) -> UInt32 {
            guard position + 4 <= raw.upperBound else { throw Unreadable(reason: "short \\u escape") }
            var value: UInt32 = 0
            for offset in 0..<4 {
                let byte = bytes[position + offset]
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: throw Unreadable(reason: "bad \\u escape")
                }
                value = value << 4 | UInt32(digit)
            }
            return value
        }
        while index < raw.upperBound {
            let byte = bytes[index]
            guard byte == UInt8(ascii: "\\") else {
                utf8.append(byte)
                index += 1
                continue
            }
            guard index + 1 < raw.upperBound else { throw Unreadable(reason: "dangling escape") }
            let escaped = bytes[index + 1]
            index += 2
            switch escaped {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escaped)
            case UInt8(ascii: "b"): utf8.append(0x08)
            case UInt8(ascii: "f"): utf8.append(0x0C)
            case UInt8(ascii: "n"): utf8.append(0x0A)
            case UInt8(ascii: "r"): utf8.append(0x0D)
            case UInt8(ascii: "t"): utf8.append(0x09)
            case UInt8(ascii: "u"):
                var value = try hex4(at: index)
                index += 4
                if (0xD800..<0xDC00).contains(value), index + 6 <= raw.upperBound,
                    bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u")
                {
                    let low = try hex4(at: index + 2)
                    if (0xDC00..<0xE000).contains(low) {
                        value = 0x10000 + ((value - 0xD800) << 10) + (low - 0xDC00)
                        index += 6
                    }
                }
                flush()
                scalars.append(Unicode.Scalar(value) ?? "\u{FFFD}")
            default:
                throw Unreadable(reason: "unknown escape")
            }
        }
        flush()
        return String(scalars)
    }

    private mutating func readUnsigned() throws(Unreadable) -> UInt64 {
        var value: UInt64 = 0
        let start = position
        while let byte = peek(), byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") {
            guard let next = value.appendingDecimalDigit(byte) else { throw Unreadable(reason: "number too large") }
            value = next
            position += 1
        }
        guard position > start else { throw Unreadable(reason: "expected a number at byte \(start)") }
        guard bytes[start] != UInt8(ascii: "0") || position == start + 1 else {
            throw Unreadable(reason: "leading zero in a number at byte \(start)")
        }
        if let byte = peek(), byte == UInt8(ascii: ".") || byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") {
            throw Unreadable(reason: "expected a whole number at byte \(start)")
        }
        return value
    }

    private mutating func readBool() throws(Unreadable) -> Bool {
        if matchLiteral("true") { return true }
        if matchLiteral("false") { return false }
        throw Unreadable(reason: "expected true or false at byte \(position)")
    }

    private mutating func matchLiteral(_ literal: StaticString) -> Bool {
        let count = literal.utf8CodeUnitCount
        guard position + count <= bytes.count else { return false }
        let expected = UnsafeRawBufferPointer(start: literal.utf8Start, count: count)
        guard Self.same(bytes[position..<(position + count)], expected) else { return false }
        position += count
        return true
    }

    /// Skips one value, nested or not, checking its syntax as it goes, without recursion (a
    /// hostile reply cannot exhaust the stack).
    private mutating func skipValue() throws(Unreadable) {
        // The containers open around the current position: `{` or `[`.
        var open: [UInt8] = []
        while true {
            // A value is expected here.
            skipWhitespace()
            guard let byte = peek() else { throw Unreadable(reason: "unterminated value") }
            switch byte {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                position += 1
                skipWhitespace()
                let close = byte == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]")
                if peek() == close {
                    position += 1
                } else {
                    open.append(byte)
                    if byte == UInt8(ascii: "{") { try readKeyAndColon() }
                    continue
                }
            case UInt8(ascii: "\""):
                _ = try readRawString()
            case UInt8(ascii: "t"), UInt8(ascii: "f"), UInt8(ascii: "n"):
                guard matchLiteral("true") || matchLiteral("false") || matchLiteral("null") else {
                    throw Unreadable(reason: "unknown literal at byte \(position)")
                }
            default:
                try skipNumber()
            }
            // A value ended: close containers, or go on to the next member or element.
            while let container = open.last {
                skipWhitespace()
                guard let next = peek() else { throw Unreadable(reason: "unterminated container") }
                position += 1
                if next == UInt8(ascii: ",") {
                    if container == UInt8(ascii: "{") {
                        skipWhitespace()
                        try readKeyAndColon()
                    }
                    break
                }
                guard next == (container == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]")) else {
                    throw Unreadable(reason: "expected ',' or the end of a container at byte \(position - 1)")
                }
                open.removeLast()
            }
            if open.isEmpty { return }
        }
    }

    private mutating func readKeyAndColon() throws(Unreadable) {
        _ = try readRawString()
        skipWhitespace()
        try expect(UInt8(ascii: ":"))
    }

    /// `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`
    private mutating func skipNumber() throws(Unreadable) {
        let start = position
        func digits(_ reader: inout Reader) -> Int {
            var count = 0
            while let byte = reader.peek(), byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") {
                reader.position += 1
                count += 1
            }
            return count
        }
        if peek() == UInt8(ascii: "-") { position += 1 }
        if peek() == UInt8(ascii: "0") {
            position += 1
        } else if digits(&self) == 0 {
            throw Unreadable(reason: "unexpected byte at \(start)")
        }
        if peek() == UInt8(ascii: ".") {
            position += 1
            guard digits(&self) > 0 else { throw Unreadable(reason: "bad number at byte \(start)") }
        }
        if let byte = peek(), byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") {
            position += 1
            if let sign = peek(), sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") { position += 1 }
            guard digits(&self) > 0 else { throw Unreadable(reason: "bad number at byte \(start)") }
        }
    }
}

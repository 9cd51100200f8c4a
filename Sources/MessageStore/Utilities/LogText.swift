/// Text a peer controls (a message type, a subject, a header, an error text with either in it),
/// made safe for a log line or metadata value.
///
/// A peer can publish anything: a type with CR or LF in it would start a forged log line of its
/// own, and a megabyte type would make megabyte log lines. ``peer(_:limit:)`` escapes control
/// characters, Unicode line and paragraph separators and the backslash (so the escaping cannot be
/// forged either), and cuts the text to `limit` characters, saying how long it was.
enum LogText {
    /// The default cap, in characters, for peer text in a log line.
    static let defaultLimit = 256

    /// `text` with control characters escaped (`\n`, `\r`, `\t`, `\\`, `\u{…}`) and at most
    /// `limit` characters of it kept; a cut text ends with `…` and the original size in bytes.
    static func peer(_ text: String, limit: Int = defaultLimit) -> String {
        let limit = max(limit, 1)
        // Fast path: short printable ASCII without a backslash, which types and subjects are.
        if text.utf8.count <= limit,
            text.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\\") })
        {
            return text
        }
        var result = ""
        var kept = 0
        var cut = false
        for scalar in text.unicodeScalars {
            if kept >= limit {
                cut = true
                break
            }
            switch scalar {
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case "\\": result += "\\\\"
            default:
                let value = scalar.value
                if value < 0x20 || (0x7F...0x9F).contains(value) || value == 0x2028 || value == 0x2029
                    || (0x202A...0x202E).contains(value) || (0x2066...0x2069).contains(value)
                {
                    result += "\\u{" + String(value, radix: 16) + "}"
                } else {
                    result.unicodeScalars.append(scalar)
                }
            }
            kept += 1
        }
        if cut {
            result += "…(\(text.utf8.count) bytes)"
        }
        return result
    }
}

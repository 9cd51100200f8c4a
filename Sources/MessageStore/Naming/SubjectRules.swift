/// The rules application subjects, filters, categories and prefixes follow.
///
/// Checked before anything is sent, so a bad subject is a clear error instead of a message that
/// silently goes nowhere.
enum SubjectRules {
    enum Kind {
        /// A concrete subject to publish to: no wildcards.
        case publish
        /// A subscription or read filter: `*` as a whole token, `>` as the last token.
        case filter
    }

    static func validate(_ subject: String, as kind: Kind) throws(MessageStoreError) {
        if subject.isEmpty {
            throw .invalidSubject(subject, "the subject is empty")
        }
        try validateCharacters(subject, what: "subject")
        // One pass over the bytes: only a subject with an empty token or a wildcard needs the
        // token-by-token look below, which says precisely what is wrong.
        var tokenLength = 0
        var needsCloserLook = false
        for byte in subject.utf8 {
            switch byte {
            case UInt8(ascii: "."):
                if tokenLength == 0 { needsCloserLook = true }
                tokenLength = 0
            case UInt8(ascii: "*"), UInt8(ascii: ">"):
                needsCloserLook = true
                tokenLength += 1
            default:
                tokenLength += 1
            }
        }
        guard needsCloserLook || tokenLength == 0 else { return }
        let tokens = subject.split(separator: ".", omittingEmptySubsequences: false)
        for (index, token) in tokens.enumerated() {
            if token.isEmpty {
                throw .invalidSubject(subject, "it has an empty token (a leading, trailing or doubled \".\")")
            }
            let hasWildcard = token.contains("*") || token.contains(">")
            guard hasWildcard else { continue }
            switch kind {
            case .publish:
                throw .invalidSubject(subject, "wildcards (\"*\", \">\") are not allowed in a subject to publish to")
            case .filter:
                if token == "*" { continue }
                if token == ">" {
                    if index == tokens.count - 1 { continue }
                    throw .invalidSubject(subject, "\">\" may only be the last token")
                }
                throw .invalidSubject(subject, "a wildcard must be a whole token, not part of \"\(token)\"")
            }
        }
    }

    /// A category is one token that also forms part of a stream name.
    static func validateCategory(_ category: String) throws(MessageStoreError) {
        if category.isEmpty {
            throw .invalidSubject(category, "the category is empty")
        }
        try validateCharacters(category, what: "category")
        for character in category where "./\\*>".contains(character) {
            throw .invalidSubject(category, "a category is one token and may not contain \"\(character)\"")
        }
    }

    /// A prefix is one token of ASCII letters, digits and `_`; a trailing "." has already been
    /// removed.
    ///
    /// So no two stores overlap: with a "." in it, prefix `a.x` would publish into the subjects
    /// of prefix `a`'s category `x` (and reuse its stream `a-x`); with a "-", prefix `a-b`'s
    /// category `c` and prefix `a`'s category `b-c` would both be stream `a-b-c`. Without either,
    /// a stream name splits at its first "-" into the prefix and the category. Stream names cannot
    /// hold "/", "\", "." or whitespace, which the server would refuse only later.
    static func validatePrefix(_ prefix: String) throws(MessageStoreError) {
        guard !prefix.isEmpty else { return }
        let isAllowed = { (byte: UInt8) in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"):
                return true
            default:
                return false
            }
        }
        guard prefix.utf8.allSatisfy(isAllowed) else {
            throw MessageStoreError(
                code: .invalidConfiguration,
                message: "invalid environment prefix \"\(prefix)\": a prefix is one token of ASCII letters, digits "
                    + "and \"_\" (no \".\", \"-\", \"/\", \"\\\\\", wildcards or whitespace), so that no two "
                    + "prefixes share a subject or a stream name"
            )
        }
    }

    /// nats-server's default `max_control_line`: the longest `PUB`/`HPUB` line (subject, reply
    /// subject and sizes) it reads. A longer line makes it close the connection. The server
    /// does not announce its limit (nor does cnats expose one), so the default is assumed.
    static let defaultMaxControlLine = 4096

    /// Room kept in a control line for everything but the subject: the reply subject (the
    /// library's inboxes take about 60 bytes), two sizes and the spaces.
    static let controlLineReserve = 256

    /// The longest NATS subject (prefix included) the store publishes to, in bytes.
    static let maxPublishSubjectLength = defaultMaxControlLine - controlLineReserve

    /// Checks that a NATS subject fits the server's control line with room for a reply subject.
    /// - Parameters:
    ///   - natsSubject: The subject as sent, prefix included.
    ///   - limit: The longest subject allowed, in UTF-8 bytes. Defaults to ``maxPublishSubjectLength``.
    ///   - subject: The application subject, for the error. Defaults to `natsSubject`.
    /// - Throws: ``MessageStoreError/Code/invalidSubject`` when it is longer.
    static func validateLength(
        _ natsSubject: String,
        limit: Int = maxPublishSubjectLength,
        subject: String? = nil
    ) throws(MessageStoreError) {
        let length = natsSubject.utf8.count
        guard length > limit else { return }
        throw MessageStoreError(
            code: .invalidSubject,
            message: "invalid subject \"\(LogText.peer(natsSubject, limit: 64))\": it is \(length) bytes long, "
                + "more than the \(limit) the server's control line leaves room for; nothing was sent",
            subject: subject ?? natsSubject
        )
    }

    private static func validateCharacters(_ value: String, what: String) throws(MessageStoreError) {
        // Fast path: printable ASCII without space is always fine, and it is what subjects are.
        if value.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) { return }
        for scalar in value.unicodeScalars {
            if scalar.properties.isWhitespace {
                throw .invalidSubject(value, "a \(what) may not contain whitespace")
            }
            if scalar.properties.generalCategory == .control {
                throw .invalidSubject(value, "a \(what) may not contain control characters")
            }
        }
    }

    /// Whether every subject that matches `inner` also matches `outer` (both valid filters).
    static func filter(_ outer: String, covers inner: String) -> Bool {
        let outerTokens = outer.split(separator: ".", omittingEmptySubsequences: false)
        let innerTokens = inner.split(separator: ".", omittingEmptySubsequences: false)
        for (index, outerToken) in outerTokens.enumerated() {
            if outerToken == ">" {
                return innerTokens.count > index
            }
            guard index < innerTokens.count else { return false }
            let innerToken = innerTokens[index]
            if innerToken == ">" { return false }
            if outerToken == "*" { continue }
            if innerToken == "*" || innerToken != outerToken { return false }
        }
        return outerTokens.count == innerTokens.count
    }

    /// Whether some subject matches both filters.
    static func filter(_ first: String, overlaps second: String) -> Bool {
        let a = first.split(separator: ".", omittingEmptySubsequences: false)
        let b = second.split(separator: ".", omittingEmptySubsequences: false)
        var index = 0
        while index < a.count && index < b.count {
            if a[index] == ">" || b[index] == ">" { return true }
            if a[index] != "*" && b[index] != "*" && a[index] != b[index] { return false }
            index += 1
        }
        return a.count == b.count
    }
}

/// Whether two NATS subject filters can match the same subject.
///
/// Tokens are compared one by one: `*` matches any one token, `>` (last) any one or more, and
/// literal tokens only themselves.
enum SubjectOverlap {
    static func overlaps(_ first: String, _ second: String) -> Bool {
        let a = first.split(separator: ".", omittingEmptySubsequences: false)
        let b = second.split(separator: ".", omittingEmptySubsequences: false)
        var index = 0
        while index < a.count && index < b.count {
            let (x, y) = (a[index], b[index])
            if x == ">" || y == ">" { return true }
            if x != "*" && y != "*" && x != y { return false }
            index += 1
        }
        // Both ended together, or the longer one goes on with `>` only where the shorter ended
        // with one (handled above).
        return a.count == b.count
    }
}

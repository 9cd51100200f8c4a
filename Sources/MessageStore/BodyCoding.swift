/// How a store encodes and decodes the JSON of message bodies.
///
/// Either way the bytes written, the values read and the errors thrown are those of Foundation's
/// `JSONEncoder` and `JSONDecoder` (ISO 8601 dates, slashes not escaped); the choice is only how
/// they are reached. Set it with ``MessageStore/Configuration/bodyCoding``.
public enum BodyCoding: Sendable, Hashable {
    /// The library's own JSON coders, several times faster than Foundation's on message bodies,
    /// with Foundation's behind them for whatever they cannot code exactly as Foundation would
    /// (they then run a body's `init(from:)` or `encode(to:)` twice). The default.
    case fast
    /// Foundation's `JSONEncoder` and `JSONDecoder` alone: an escape hatch, should a payload type
    /// rely on something the fast coders do differently (such as an `encode(to:)` with side
    /// effects), or to compare the two.
    case foundation
}

/// The delivery facts JetStream encodes in the reply subject of every message it delivers to a
/// consumer, read without allocating.
///
/// cnats' `natsMsg_GetMetaData` gives the same facts, but allocates a structure and copies the
/// stream and consumer names for every message; the fetch path reads these five numbers for every
/// message, so it parses the subject itself. The two layouts the server uses:
///
/// - `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>`
/// - `$JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>.<random>`
///   (11 tokens or more; later servers may append tokens)
struct JetStreamReplySubject: Equatable {
    /// How many times the message has been delivered, this delivery included.
    var deliveryCount: UInt64
    var streamSequence: UInt64
    var consumerSequence: UInt64
    /// Nanoseconds since the Unix epoch at which the message was stored.
    var timestamp: Int64
    /// How many messages the consumer still had for the client after this one.
    var pending: UInt64

    /// Parses a reply subject; nil when it is not a JetStream acknowledgement subject.
    static func parse(_ subject: UnsafeBufferPointer<UInt8>) -> JetStreamReplySubject? {
        // "$JS.ACK." then the tokens.
        let prefix: StaticString = "$JS.ACK."
        let prefixLength = prefix.utf8CodeUnitCount
        guard subject.count > prefixLength else { return nil }
        for index in 0..<prefixLength where subject[index] != prefix.utf8Start[index] {
            return nil
        }
        // The numbers start at the third token after the prefix in the first layout and at the
        // fifth in the second; which layout it is shows only from the number of tokens.
        var tokenCount = 0
        var thirdStart = 0
        var fifthStart = 0
        var tokenStart = prefixLength
        for index in prefixLength...subject.count where index == subject.count || subject[index] == UInt8(ascii: ".") {
            guard index > tokenStart else { return nil }
            if tokenCount == 2 { thirdStart = tokenStart }
            if tokenCount == 4 { fifthStart = tokenStart }
            tokenCount += 1
            tokenStart = index + 1
        }
        let first: Int
        switch tokenCount {
        case 7: first = thirdStart
        case 9...: first = fifthStart
        default: return nil
        }
        func number(at start: Int) -> (value: UInt64, end: Int)? {
            var value: UInt64 = 0
            var position = start
            while position < subject.count, subject[position] != UInt8(ascii: ".") {
                guard let next = value.appendingDecimalDigit(subject[position]) else { return nil }
                value = next
                position += 1
            }
            guard position > start else { return nil }
            return (value, position + 1)
        }
        guard
            let delivered = number(at: first),
            let streamSequence = number(at: delivered.end),
            let consumerSequence = number(at: streamSequence.end),
            let time = number(at: consumerSequence.end),
            let pending = number(at: time.end),
            let timestamp = Int64(exactly: time.value)
        else { return nil }
        return JetStreamReplySubject(
            deliveryCount: delivered.value,
            streamSequence: streamSequence.value,
            consumerSequence: consumerSequence.value,
            timestamp: timestamp,
            pending: pending.value
        )
    }

    /// Parses a reply subject given as a string (for tests and diagnostics).
    static func parse(_ subject: String) -> JetStreamReplySubject? {
        var copy = subject
        return copy.withUTF8 { parse($0) }
    }
}

// Fuzzes the reader of the reply subjects JetStream delivers messages with,
// `JetStreamReplySubject.parse`, which reads the delivery count and sequences of every message.
//
// Beyond not crashing: it answers exactly as a plain reference reading does (split on dots, the
// five numbers at the place the token count gives, each all digits and in range).

import Foundation
import FuzzSupport

@testable import MessageStore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzReplySubject(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let parsed = JetStreamReplySubject.parse(bytes)
    let expected = reference(Array(bytes))
    guard parsed == expected else {
        fatalError(
            "invariant broken: read \(String(describing: parsed)), expected \(String(describing: expected)); "
                + "input: \(String(decoding: bytes, as: UTF8.self).debugDescription)"
        )
    }
    return 0
}

func reference(_ bytes: [UInt8]) -> JetStreamReplySubject? {
    let tokens = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
    guard tokens.count > 2, tokens[0].elementsEqual("$JS".utf8), tokens[1].elementsEqual("ACK".utf8) else { return nil }
    let rest = Array(tokens.dropFirst(2))
    guard rest.allSatisfy({ !$0.isEmpty }) else { return nil }
    let first: Int
    switch rest.count {
    case 7: first = 2
    case 9...: first = 4
    default: return nil
    }
    var numbers: [UInt64] = []
    for token in rest[first..<(first + 5)] {
        guard token.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
            let value = UInt64(String(decoding: token, as: UTF8.self))
        else { return nil }
        numbers.append(value)
    }
    guard let timestamp = Int64(exactly: numbers[3]) else { return nil }
    return JetStreamReplySubject(
        deliveryCount: numbers[0],
        streamSequence: numbers[1],
        consumerSequence: numbers[2],
        timestamp: timestamp,
        pending: numbers[4]
    )
}

@main
enum Main {
    static func main() {
        runFuzzer(fuzzReplySubject)
    }
}

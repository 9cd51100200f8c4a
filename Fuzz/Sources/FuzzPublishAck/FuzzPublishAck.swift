// Fuzzes the reader of JetStream's publish acknowledgements, `PublishAckReply.parse`, which reads
// the reply to every awaited publish by hand.
//
// Beyond not crashing: the answer does not depend on the stream name it may reuse; an accepted
// acknowledgement or refusal, written again as the server writes it, reads back the same; and what
// it reads agrees with Foundation's JSONSerialization, an independent parser, on the stream and
// sequence of a body without duplicate keys.

import Foundation
import FuzzSupport

@testable import MessageStore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPublishAck(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let body = Array(UnsafeBufferPointer(start: data, count: size))
    let reply = PublishAckReply.parse(body)
    switch reply {
    case .unreadable:
        return 0
    case .stored(let stream, let sequence, let isDuplicate):
        guard PublishAckReply.parse(body, previousStream: stream) == reply else {
            fail("reusing the previous stream's name changed the answer", body)
        }
        var again = Array(#"{"stream":"#.utf8)
        FuzzingJSON.appendString(stream, to: &again)
        again += #", "seq":\#(sequence)\#(isDuplicate ? #","duplicate":true"# : "")}"#.utf8
        guard PublishAckReply.parse(again) == reply else {
            fail(
                "\(reply) written as \(String(decoding: again, as: UTF8.self).debugDescription) reads differently",
                body
            )
        }
        guard FuzzingJSON.firstDuplicateKey(in: body) == nil,
            let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any]
        else { return 0 }
        // An error object with a code takes precedence; JSONSerialization does not see that.
        if let error = object["error"] as? [String: Any], error.isEmpty == false { return 0 }
        guard object["stream"] as? String == stream else {
            fail(
                "stream \(stream.debugDescription), JSONSerialization reads \(String(describing: object["stream"]))",
                body
            )
        }
        if sequence < 1 << 53, let number = object["seq"] as? NSNumber {
            guard number.uint64Value == sequence else {
                fail("sequence \(sequence), JSONSerialization reads \(number)", body)
            }
        }
    case .refused(let code, let errorCode, let description):
        guard code != 0 || errorCode != 0 else { fail("a refusal without a code", body) }
        var again = Array(#"{"error":{"code":\#(code),"err_code":\#(errorCode),"description":"#.utf8)
        FuzzingJSON.appendString(description, to: &again)
        again += "}}".utf8
        guard PublishAckReply.parse(again) == reply else {
            fail(
                "\(reply) written as \(String(decoding: again, as: UTF8.self).debugDescription) reads differently",
                body
            )
        }
    }
    return 0
}

@main
enum Main {
    static func main() {
        runFuzzer(fuzzPublishAck)
    }
}

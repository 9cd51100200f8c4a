// Fuzzes the envelope reader: `Envelope.decodeHead` and `Envelope.decodeData`, as a worker and a
// reader use them on every body a peer stored.
//
// Beyond not crashing: an accepted envelope is a JSON object (as Foundation's JSONSerialization,
// an independent parser, reads it) whose "type" is that string and whose "data" is an object, and
// it survives being written again by the library's encoder and read back unchanged.

import Foundation
import FuzzSupport

@testable import MessageStore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEnvelope(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let body = Array(UnsafeBufferPointer(start: data, count: size))
    guard let head = try? Envelope.decodeHead(body, subject: "fuzz", sequence: 1) else {
        // Whatever was refused, the payload decoder must refuse or decode it without crashing.
        _ = try? Envelope.decodeData([String: JSONValue].self, from: body, type: "Fuzz", subject: "fuzz", sequence: 1)
        return 0
    }
    if let object = try? JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed]) {
        guard let dictionary = object as? [String: Any] else { fail("accepted a body that is not an object", body) }
        guard let type = dictionary["type"] as? String else { fail("accepted a \"type\" that is not a string", body) }
        guard type == head.type else {
            fail("read type \(head.type.debugDescription), not \(type.debugDescription)", body)
        }
        guard dictionary["data"] is [String: Any] else { fail("accepted a \"data\" that is not an object", body) }
    }
    // `data` is an object, but what is inside it is checked only when it is decoded: a string
    // that is not UTF-8 or a number out of range is a typed error then (a dead letter for a
    // worker). What decodes, written back and read again, does not change.
    guard
        let payload = try? Envelope.decodeData(
            [String: JSONValue].self,
            from: body,
            type: head.type,
            subject: "fuzz",
            sequence: 1
        )
    else { return 0 }
    let again: [UInt8]
    do {
        again = try Envelope.encode(type: head.type, data: payload, metadata: head.metadata, subject: "fuzz")
    } catch {
        fail("could not write back a decoded envelope: \(error)", body)
    }
    guard let reread = try? Envelope.decodeHead(again, subject: "fuzz", sequence: 1) else {
        fail("could not read back \(String(decoding: again, as: UTF8.self).debugDescription)", body)
    }
    guard reread.type == head.type, reread.metadata.map(canonical) == head.metadata.map(canonical) else {
        fail("the envelope changed when written back: \(String(decoding: again, as: UTF8.self).debugDescription)", body)
    }
    let rereadPayload = try? Envelope.decodeData(
        [String: JSONValue].self,
        from: again,
        type: head.type,
        subject: "fuzz",
        sequence: 1
    )
    guard rereadPayload.map(canonical) == canonical(payload) else {
        fail("the data changed when written back: \(String(decoding: again, as: UTF8.self).debugDescription)", body)
    }
    return 0
}

// JSON has one kind of number: `1e3`, written back as `1000.0` or `1000`, may come back as the
// other case of JSONValue (noted in the report, not a defect of the reader), so numbers compare
// by value.
func canonical(_ value: JSONValue) -> JSONValue {
    switch value {
    case .double(let number): if let whole = Int(exactly: number) { return .int(whole) } else { return value }
    case .array(let elements): return .array(elements.map(canonical))
    case .object(let members): return .object(members.mapValues(canonical))
    default: return value
    }
}

func canonical(_ members: [String: JSONValue]) -> [String: JSONValue] { members.mapValues(canonical) }

func canonical(_ metadata: MessageMetadata) -> MessageMetadata {
    var metadata = metadata
    metadata.additionalFields = canonical(metadata.additionalFields)
    return metadata
}

@main
enum Main {
    static func main() {
        runFuzzer(fuzzEnvelope)
    }
}

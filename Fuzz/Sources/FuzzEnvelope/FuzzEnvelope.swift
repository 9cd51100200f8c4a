// Fuzzes the envelope reader: `Envelope.decodeHead` and `Envelope.decodeData`, as a worker and a
// reader use them on every body a peer stored.
//
// Beyond not crashing: an accepted envelope is a JSON object (as Foundation's JSONSerialization,
// an independent parser, reads it) whose "type" is that string and whose "data" is an object, and
// it survives being written again by the library's encoder and read back unchanged.
import FuzzDriver
import Foundation
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
        guard type == head.type else { fail("read type \(head.type.debugDescription), not \(type.debugDescription)", body) }
        guard dictionary["data"] is [String: Any] else { fail("accepted a \"data\" that is not an object", body) }
    }
    // `data` is an object, so it decodes as one; written back and read again, nothing changes.
    let payload: [String: JSONValue]
    do {
        payload = try Envelope.decodeData([String: JSONValue].self, from: body, type: head.type, subject: "fuzz", sequence: 1)
    } catch {
        fail("decoded the head but not the data as JSON values: \(error)", body)
    }
    let again: [UInt8]
    do {
        again = try Envelope.encode(type: head.type, data: payload, metadata: head.metadata, subject: "fuzz")
    } catch {
        fail("could not write back a decoded envelope: \(error)", body)
    }
    guard let reread = try? Envelope.decodeHead(again, subject: "fuzz", sequence: 1) else {
        fail("could not read back \(String(decoding: again, as: UTF8.self).debugDescription)", body)
    }
    guard reread.type == head.type, reread.metadata == head.metadata else {
        fail("the envelope changed when written back: \(String(decoding: again, as: UTF8.self).debugDescription)", body)
    }
    let rereadPayload = try? Envelope.decodeData([String: JSONValue].self, from: again, type: head.type, subject: "fuzz", sequence: 1)
    guard rereadPayload == payload else {
        fail("the data changed when written back: \(String(decoding: again, as: UTF8.self).debugDescription)", body)
    }
    return 0
}

func fail(_ message: String, _ body: [UInt8]) -> Never {
    fatalError("invariant broken: \(message); input: \(String(decoding: body, as: UTF8.self).debugDescription)")
}

@main
enum Main {
    static func main() {
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzEnvelope))
    }
}

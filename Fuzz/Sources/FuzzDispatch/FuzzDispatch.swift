// Fuzzes the dispatch decoder a worker runs on every delivered body: `Envelope.decodeForDispatch`
// with a decoder for two payload types, which goes through FastJSONDecoder, the JSONDecoder
// fallback and the duplicate-key check.
//
// Beyond not crashing: a dispatched envelope's payload is present exactly when its type is
// registered, and then of that type's payload type; the dispatch decoder agrees with
// `Envelope.decodeHead` (what a reader uses) on whether the envelope is well formed and on its type
// and metadata; and what FastJSONDecoder accepts, JSONDecoder reads the same.

import Foundation
import FuzzSupport

@testable import MessageStore

struct OrderPlaced: MessagePayload, Equatable {
    var orderId: String
    var quantity: Int
    var price: Double?
    var tags: [String]?
    var placedAt: Date?
}

struct Counter: MessagePayload, Equatable {
    var value: Int
    var step: UInt8?
    var note: String?
}

let payloadTypes: [String: any MessagePayload.Type] = ["OrderPlaced": OrderPlaced.self, "Counter": Counter.self]
let decoder = Envelope.makeDispatchDecoder(payloadTypes: payloadTypes)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDispatch(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let body = Array(UnsafeBufferPointer(start: data, count: size))
    let head = try? Envelope.decodeHead(body, subject: "fuzz", sequence: 1)
    let dispatched: Envelope.Dispatched
    do {
        dispatched = try Envelope.decodeForDispatch(body, using: decoder)
    } catch {
        switch error {
        case .malformedEnvelope:
            guard head == nil else { fail("a reader reads the envelope a worker calls malformed", body) }
        case .undecodableData(let type, _):
            guard let head else { fail("a worker reads the type of an envelope a reader calls malformed", body) }
            guard head.type == type else {
                fail("type \(type.debugDescription), not \(head.type.debugDescription)", body)
            }
            guard payloadTypes[type] != nil else {
                fail("undecodable data of unregistered type \(type.debugDescription)", body)
            }
        }
        return 0
    }
    guard let head else { fail("a worker dispatches an envelope a reader calls malformed", body) }
    guard head.type == dispatched.type, head.metadata == dispatched.metadata else {
        fail(
            "worker and reader disagree: \(dispatched.type.debugDescription) against \(head.type.debugDescription)",
            body
        )
    }
    switch (payloadTypes[dispatched.type], dispatched.payload) {
    case (nil, nil):
        break
    case (let expected?, let payload?):
        guard Swift.type(of: payload) == expected else {
            fail("a \(dispatched.type) payload decoded as \(Swift.type(of: payload))", body)
        }
    case (nil, _?):
        fail("a payload for the unregistered type \(dispatched.type.debugDescription)", body)
    case (_?, nil):
        fail("no payload for the registered type \(dispatched.type.debugDescription)", body)
    }
    // What the fast path accepted, JSONDecoder reads the same way.
    if decoder.fast?.decodeEnvelope(body, payloadTypes: payloadTypes) != nil {
        let reference: Envelope.Dispatched
        do {
            reference = try decoder.foundation.decode(Envelope.Dispatched.self, from: Data(body))
        } catch {
            fail("FastJSONDecoder accepted what JSONDecoder refuses: \(error)", body)
        }
        guard reference.type == dispatched.type, reference.metadata == dispatched.metadata,
            samePayload(reference.payload, dispatched.payload)
        else {
            fail("FastJSONDecoder and JSONDecoder disagree: \(reference) against \(dispatched)", body)
        }
    }
    return 0
}

func samePayload(_ a: (any MessagePayload)?, _ b: (any MessagePayload)?) -> Bool {
    switch (a, b) {
    case (nil, nil): true
    case (let a as OrderPlaced, let b as OrderPlaced): a == b
    case (let a as Counter, let b as Counter): a == b
    default: false
    }
}

@main
enum Main {
    static func main() {
        runFuzzer(fuzzDispatch)
    }
}

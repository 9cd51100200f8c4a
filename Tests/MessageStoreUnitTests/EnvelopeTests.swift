import Foundation
import MessageStoreTestSupport
import Testing

@testable import MessageStore

@Suite("Envelope and metadata")
struct EnvelopeTests {
    private func json(_ bytes: [UInt8]) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: Data(bytes))
    }

    @Test func typeNameDefaultsToTheSwiftTypeName() {
        #expect(OrderPlaced.messageType == "OrderPlaced")
        #expect(RenamedEvent.messageType == "legacy.renamed.v1")
    }

    enum Namespace {
        struct Nested: MessagePayload { var value: Int }
    }

    struct Generic<Value: Codable & Sendable>: MessagePayload { var value: Value }

    @Test func defaultTypeNamesAreWhatStringDescribingPrintsForTheType() {
        // The names on the wire since the first release: String(describing:) of the type.
        #expect(Namespace.Nested.messageType == "Nested")
        #expect(Namespace.Nested.messageType == String(describing: Namespace.Nested.self))
        #expect(Generic<Int>.messageType == "Generic<Int>")
        #expect(Generic<[String: Int]>.messageType == String(describing: Generic<[String: Int]>.self))
        #expect(Generic<Namespace.Nested>.messageType == String(describing: Generic<Namespace.Nested>.self))
    }

    @Test func encodesTheSameShapeAsThePythonPackage() throws {
        // What message-store 0.4.0 writes for
        // Message("OrderPlaced", {"orderId": "42", "amount": 5}, MessageMetadata("orders.command.42", "abc", tenant="t1"))
        let python =
            #"{"type": "OrderPlaced", "data": {"orderId": "42", "amount": 5}, "metadata": {"tenant": "t1", "originSubject": "orders.command.42", "traceId": "abc"}}"#
        let metadata = MessageMetadata(
            originSubject: "orders.command.42",
            traceId: "abc",
            additionalFields: ["tenant": "t1"]
        )
        let bytes = try Envelope.encode(OrderPlaced(orderId: "42", amount: 5), metadata: metadata, subject: "orders.x")
        #expect(try json(bytes) == json(Array(python.utf8)))
    }

    @Test func omitsMetadataWhenThereIsNone() throws {
        let bytes = try Envelope.encode(OrderPlaced(orderId: "1", amount: 1), metadata: nil, subject: "orders.1")
        #expect(try json(bytes) == ["type": "OrderPlaced", "data": ["orderId": "1", "amount": 1]])
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.hasPrefix(#"{"type":"OrderPlaced","data":{"#))
    }

    @Test func typeNamesAreEscaped() throws {
        struct Odd: MessagePayload {
            static let messageType = #"quote"and\slash/"#
            var x = 1
        }
        let bytes = try Envelope.encode(Odd(), metadata: nil, subject: "a.b")
        let head = try Envelope.decodeHead(bytes, subject: nil, sequence: nil)
        #expect(head.type == Odd.messageType)
    }

    @Test func unknownMetadataKeysRoundTripUntouched() throws {
        let incoming =
            #"{"type":"OrderPlaced","data":{"orderId":"7","amount":3},"metadata":{"originSubject":"a.b","count":1,"ratio":1.5,"nested":{"list":[true,null,"x"]},"traceId":"t"}}"#
        let head = try Envelope.decodeHead(Array(incoming.utf8), subject: nil, sequence: nil)
        #expect(head.type == "OrderPlaced")
        #expect(head.metadata?.originSubject == "a.b")
        #expect(head.metadata?.traceId == "t")
        #expect(head.metadata?["count"] == .int(1))
        #expect(head.metadata?["ratio"] == .double(1.5))
        #expect(head.metadata?["nested"] == ["list": [true, nil, "x"]])

        let payload = try Envelope.decodeData(
            OrderPlaced.self,
            from: Array(incoming.utf8),
            type: head.type,
            subject: nil,
            sequence: nil
        )
        #expect(payload == OrderPlaced(orderId: "7", amount: 3))
        let reencoded = try Envelope.encode(payload, metadata: head.metadata, subject: "x")
        #expect(try json(reencoded) == json(Array(incoming.utf8)))
    }

    @Test(arguments: [
        ("not json", "not valid JSON"),
        (#"{"data":{}}"#, "missing key \"type\""),
        (#"{"type":5,"data":{}}"#, "type"),
        (#"{"type":"X"}"#, "missing key \"data\""),
        (#"{"type":"X","data":[1]}"#, "data"),
        (#"{"type":"X","data":"text"}"#, "data"),
        (#"[1,2]"#, "not a valid envelope"),
    ])
    func malformedEnvelopesAreDecodingErrors(body: String, detail: String) {
        let error = #expect(throws: MessageStoreError.self) {
            try Envelope.decodeHead(Array(body.utf8), subject: "orders.1", sequence: 9)
        }
        #expect(error?.code == .decodingFailed)
        #expect(error?.subject == "orders.1")
        #expect(error?.message.contains("sequence 9") == true)
        #expect(error?.message.contains(detail) == true)
    }

    @Test func dataOfTheWrongShapeIsADecodingError() throws {
        let body = Array(#"{"type":"OrderPlaced","data":{"orderId":42}}"#.utf8)
        let error = #expect(throws: MessageStoreError.self) {
            try Envelope.decodeData(OrderPlaced.self, from: body, type: "OrderPlaced", subject: "orders.1", sequence: 1)
        }
        #expect(error?.code == .decodingFailed)
        #expect(error?.message.contains("OrderPlaced") == true)
    }

    @Test func payloadsThatAreNotObjectsCannotBeEncoded() {
        struct Bare: MessagePayload {
            var value: Int
            func encode(to encoder: any Encoder) throws {
                var container = encoder.singleValueContainer()
                try container.encode(value)
            }
        }
        let error = #expect(throws: MessageStoreError.self) {
            try Envelope.encode(Bare(value: 1), metadata: nil, subject: "orders.1")
        }
        #expect(error?.code == .encodingFailed)
    }
}

@Suite("Headers and backoff")
struct ValueTypeTests {
    @Test func headerSubscriptReadsFirstAndReplacesAll() {
        var headers: MessageHeaders = ["A": "1"]
        headers.add("2", for: "A")
        headers.add("x", for: "B")
        #expect(headers["A"] == "1")
        #expect(headers.values(for: "A") == ["1", "2"])
        headers["A"] = "3"
        #expect(headers.values(for: "A") == ["3"])
        headers["B"] = nil
        #expect(headers["B"] == nil)
        #expect(headers.count == 1)
    }

    @Test func mergeOverridesNames() {
        var headers: MessageHeaders = ["A": "1", "B": "2"]
        headers.merge(["B": "3", "C": "4"])
        #expect(headers["A"] == "1")
        #expect(headers.values(for: "B") == ["3"])
        #expect(headers["C"] == "4")
    }

    @Test func publishBackoffDoubles() {
        let backoff = MessageStore.Configuration.PublishRetryPolicy()
        #expect(backoff.maxAttempts == 3)
        #expect(backoff.delay(afterAttempt: 1) == .milliseconds(250))
        #expect(backoff.delay(afterAttempt: 2) == .milliseconds(500))
        #expect(backoff.delay(afterAttempt: 3) == .milliseconds(1000))
    }

    @Test func errorDescriptionNamesTheContext() {
        let error = MessageStoreError(
            code: .serverError,
            message: "creating stream failed",
            stream: "env-orders",
            jetStreamErrorCode: 10065
        )
        #expect(error.description.contains("serverError"))
        #expect(error.description.contains("env-orders"))
        #expect(error.description.contains("10065"))
        #expect(!error.isRetriable)
    }
}

import Testing

@testable import MessageStore

@Suite("Tracing names and trace context (unit)")
struct TracingNamesTests {
    @Test(arguments: [
        ("orders.command.61dc61d8a5073a4d0b036cc5", "orders.command.{id}"),
        ("import-podcast:command.61DC61D8A5073A4D0B036CC5", "import-podcast:command.{id}"),
        ("orders.6f1c2a9e-3b4d-4e5f-8a9b-0c1d2e3f4a5b.placed", "orders.{id}.placed"),
        ("orders.command.42", "orders.command.42"),
        // One digit short, a non-hex digit, a misplaced dash: kept.
        ("orders.61dc61d8a5073a4d0b036cc", "orders.61dc61d8a5073a4d0b036cc"),
        ("orders.61dc61d8a5073a4d0b036ccg", "orders.61dc61d8a5073a4d0b036ccg"),
        ("orders.6f1c2a9e3-b4d-4e5f-8a9b-0c1d2e3f4a5b", "orders.6f1c2a9e3-b4d-4e5f-8a9b-0c1d2e3f4a5b"),
        ("61dc61d8a5073a4d0b036cc5", "{id}"),
        ("a..b", "a..b"),
    ])
    func idLikeTokensBecomePlaceholders(subject: String, expected: String) {
        #expect(MessageTracing.subjectWithIDPlaceholders(subject) == expected)
        #expect(MessageTracing.publishSpanName(subject: subject) == "nats publish " + expected)
    }

    @Test func processSpanNamesTheFilterAndTheConsumer() {
        #expect(
            MessageTracing.processSpanName(filter: "orders.>", consumer: "billing") == "nats process orders.> (billing)"
        )
    }

    @Test func traceParentReadsWellFormedValues() throws {
        let parent = try #require(TraceParent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"))
        #expect(parent.traceID == "0af7651916cd43dd8448eb211c80319c")
        #expect(parent.spanID == "b7ad6b7169203331")
        // A later version may carry more fields.
        #expect(TraceParent("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra") != nil)
    }

    @Test(arguments: [
        "",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
        "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
        "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0g",
    ])
    func traceParentRefusesMalformedValues(value: String) {
        #expect(TraceParent(value) == nil)
    }

    @Test func followingTakesTheTraceIDFromTheCausesHeadersWhenItsMetadataHasNone() {
        let headers: MessageHeaders = ["traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"]
        let fromHeaders = MessageMetadata.following(subject: "a.b", sequence: 3, metadata: nil, headers: headers)
        #expect(fromHeaders.traceId == "0af7651916cd43dd8448eb211c80319c")
        let fromMetadata = MessageMetadata.following(
            subject: "a.b",
            sequence: 3,
            metadata: MessageMetadata(traceId: "zen-1"),
            headers: headers
        )
        #expect(fromMetadata.traceId == "zen-1")
        #expect(MessageMetadata.following(subject: "a.b", sequence: 3, metadata: nil, headers: [:]).traceId == nil)
    }
}

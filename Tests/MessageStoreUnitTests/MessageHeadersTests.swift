import Testing

@testable import MessageStore

@Suite("Message headers")
struct MessageHeadersTests {
    @Test func fromADictionarySortedByName() {
        let headers = MessageHeaders(["X-Tenant": "acme", "Traceparent": "00-abc-def-01", "A": "1"])
        #expect(headers.map(\.name) == ["A", "Traceparent", "X-Tenant"])
        #expect(headers["X-Tenant"] == "acme")
        #expect(headers.count == 3)
        #expect(MessageHeaders([String: String]()).isEmpty)
        #expect(MessageHeaders(["A": "1", "B": "2"]) == ["A": "1", "B": "2"])
    }
}

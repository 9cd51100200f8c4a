import Testing

@testable import MessageStore

@Suite("JetStream reply subjects")
struct JetStreamReplySubjectTests {
    @Test func firstLayout() {
        let facts = JetStreamReplySubject.parse("$JS.ACK.env-orders.worker.3.1042.17.1700000000123456789.250")
        #expect(
            facts
                == JetStreamReplySubject(
                    deliveryCount: 3,
                    streamSequence: 1042,
                    consumerSequence: 17,
                    timestamp: 1_700_000_000_123_456_789,
                    pending: 250
                )
        )
    }

    @Test func secondLayoutWithDomainAndHash() {
        let facts = JetStreamReplySubject.parse(
            "$JS.ACK.hub.ACCHASH.env-orders.worker.1.5.4.1700000000000000000.0.r4nd0m"
        )
        #expect(
            facts
                == JetStreamReplySubject(
                    deliveryCount: 1,
                    streamSequence: 5,
                    consumerSequence: 4,
                    timestamp: 1_700_000_000_000_000_000,
                    pending: 0
                )
        )
        // Eleven tokens (no random token) and later extra tokens read the same.
        #expect(JetStreamReplySubject.parse("$JS.ACK._.H.s.c.1.5.4.9.0") == facts.map { with($0, timestamp: 9) })
        #expect(JetStreamReplySubject.parse("$JS.ACK._.H.s.c.1.5.4.9.0.x.y.z") == facts.map { with($0, timestamp: 9) })
    }

    @Test func largestSequences() {
        let max = UInt64.max
        let facts = JetStreamReplySubject.parse("$JS.ACK.s.c.\(max).\(max).\(max).\(Int64.max).\(max)")
        #expect(facts?.streamSequence == max)
        #expect(facts?.timestamp == Int64.max)
    }

    @Test(
        arguments: [
            "",
            "$JS.ACK.",
            "_INBOX.abc.def",
            "$JS.ACK.s.c.1.2.3.4",  // one token short
            "$JS.ACK.s.c.1.2.3.4.5.6",  // eight tokens: neither layout
            "$JS.ACK.s.c.1.2.x.4.5",  // not a number
            "$JS.ACK.s.c.1.2.-3.4.5",
            "$JS.ACK.s..1.2.3.4.5",  // empty token
            "$JS.ACK.s.c.1.2.3.4.5.",
            "$JS.ACK.s.c.18446744073709551616.2.3.4.5",  // overflows UInt64
            "$JS.ACK.s.c.1.2.3.9223372036854775808.5",  // time overflows Int64
            "$JS.ACX.s.c.1.2.3.4.5",
        ]
    )
    func rejectsWhatIsNotAnAckSubject(subject: String) {
        #expect(JetStreamReplySubject.parse(subject) == nil)
    }

    private func with(_ facts: JetStreamReplySubject, timestamp: Int64) -> JetStreamReplySubject {
        var copy = facts
        copy.timestamp = timestamp
        return copy
    }
}

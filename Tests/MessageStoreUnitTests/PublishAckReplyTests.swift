import Testing

@testable import MessageStore

@Suite("Publish acknowledgement replies")
struct PublishAckReplyTests {
    private func parse(_ text: String, previousStream: String = "") -> PublishAckReply {
        PublishAckReply.parse(Array(text.utf8), previousStream: previousStream)
    }

    @Test func acknowledgement() {
        #expect(
            parse(#"{"stream":"env-orders","seq":42}"#)
                == .stored(stream: "env-orders", sequence: 42, isDuplicate: false)
        )
    }

    @Test func duplicateWithDomainAndUnknownFields() {
        let text =
            #"{"stream":"S","domain":"hub","seq":18446744073709551615,"duplicate":true,"#
            + #""future":{"nested":[1,2.5e3,"x\"y",{"a":null}],"flag":false},"val":-7}"#
        #expect(parse(text) == .stored(stream: "S", sequence: .max, isDuplicate: true))
    }

    @Test func whitespaceAnywhere() {
        #expect(
            parse(" {\n\t\"seq\" : 3 ,\r\n \"stream\" : \"S\" } ")
                == .stored(stream: "S", sequence: 3, isDuplicate: false)
        )
    }

    @Test func error() {
        let text = #"{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 5"},"stream":"S"}"#
        #expect(parse(text) == .refused(code: 400, errorCode: 10071, description: "wrong last sequence: 5"))
    }

    @Test func escapedStrings() {
        let text = #"{"error":{"description":"a\"b\\c\/d\n\u00e9\ud83d\ude00 \u0041","code":503}}"#
        #expect(parse(text) == .refused(code: 503, errorCode: 0, description: "a\"b\\c/d\né😀 A"))
        #expect(parse(#"{"stream":"caf\u00e9","seq":1}"#) == .stored(stream: "café", sequence: 1, isDuplicate: false))
    }

    @Test func theStreamNameOfTheLastAcknowledgementIsReused() {
        // Longer than a small string, so that it has storage of its own to compare.
        let previous = String(decoding: Array("production-orders-stream".utf8), as: UTF8.self)
        let reply = #"{"stream":"production-orders-stream","seq":1}"#
        guard case .stored(let stream, _, _) = parse(reply, previousStream: previous) else {
            Issue.record("not an acknowledgement")
            return
        }
        #expect(stream == previous)
        #expect(
            stream.utf8.withContiguousStorageIfAvailable { $0.baseAddress }
                == previous.utf8.withContiguousStorageIfAvailable { $0.baseAddress }
        )
        #expect(
            parse(#"{"stream":"other","seq":1}"#, previousStream: previous)
                == .stored(stream: "other", sequence: 1, isDuplicate: false)
        )
    }

    @Test(arguments: [
        "",
        "   ",
        "null",
        "[]",
        "{}",
        #"{"stream":"S"}"#,
        #"{"seq":1}"#,
        #"{"stream":"S","seq":-1}"#,
        #"{"stream":"S","seq":1.5}"#,
        #"{"stream":"S","seq":18446744073709551616}"#,
        #"{"stream":"S","seq":"1"}"#,
        #"{"stream":S,"seq":1}"#,
        #"{"stream":"S","seq":1"#,
        #"{"stream":"S","seq":1}x"#,
        #"{"stream":"S,"seq":1}"#,
        #"{"stream":"S" "seq":1}"#,
        #"{"stream":"S","duplicate":yes,"seq":1}"#,
        #"{"stream":"\q","seq":1}"#,
        #"{"stream":"\u12","seq":1}"#,
        #"{"x":[1,2,"seq":1}"#,
        #"{"x":]}"#,
        #"{"error":"bad"}"#,
        #"{"x":[},"stream":"S","seq":1}"#,
        #"{"x":nul,"stream":"S","seq":1}"#,
        #"{"x":{"a" "b"},"stream":"S","seq":1}"#,
        #"{"x":{"a"},"stream":"S","seq":1}"#,
        #"{"x":[1 2],"stream":"S","seq":1}"#,
        #"{"x":[1,],"stream":"S","seq":1}"#,
        #"{"x":01,"stream":"S","seq":1}"#,
        #"{"x":1.,"stream":"S","seq":1}"#,
        #"{"x":-,"stream":"S","seq":1}"#,
        #"{"x":1e,"stream":"S","seq":1}"#,
        #"{"x":"a\qb","stream":"S","seq":1}"#,
        "{\"x\":\"a\u{01}b\",\"stream\":\"S\",\"seq\":1}",
        #"{"stream":"S","seq":007}"#,
        #"{"error":{"code":0,"err_code":0}}"#,
        "{\"stream\":\"S\",\"seq\":1,\"x\":" + String(repeating: "[", count: 100_000),
    ])
    func malformedRepliesAreUnreadable(_ text: String) {
        guard case .unreadable(let reason) = parse(text) else {
            Issue.record("read \(text.prefix(60)) as \(parse(text))")
            return
        }
        #expect(!reason.isEmpty)
    }

    @Test func unknownValuesOfEveryKindAreSkipped() {
        let text =
            #"{"a":{},"b":[],"c":[{}, [], "s", -0.5e+3, 1E2, 0, true, false, null],"#
            + #""d":{"e":{"f":["\u0041\n"]}},"stream":"S","seq":0}"#
        #expect(parse(text) == .stored(stream: "S", sequence: 0, isDuplicate: false))
    }

    @Test func anErrorWithoutCodesDoesNotRefuse() {
        // As cnats: only a non-zero code or err_code makes the reply an error.
        let text = #"{"error":{"code":0,"err_code":0},"stream":"S","seq":1}"#
        #expect(parse(text) == .stored(stream: "S", sequence: 1, isDuplicate: false))
        #expect(
            parse(#"{"error":{"err_code":10077},"stream":"S","seq":1}"#)
                == .refused(code: 0, errorCode: 10077, description: "")
        )
    }

    @Test func deepNestingIsSkippedWithoutRecursion() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(
            parse(#"{"x":"# + deep + #","stream":"S","seq":9}"#)
                == .stored(stream: "S", sequence: 9, isDuplicate: false)
        )
    }

    @Test func arbitraryBytesNeverCrash() {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array(#"{}[]":,\ u0123456789abcdefstreamqdupliclrno-.eE"#.utf8) + [0, 0xFF, 0xC3]
        for _ in 0..<5_000 {
            let length = Int.random(in: 0..<40, using: &generator)
            let bytes = (0..<length).map { _ in alphabet.randomElement(using: &generator)! }
            _ = PublishAckReply.parse(bytes)
        }
        let valid = Array(#"{"stream":"S","seq":12,"duplicate":false}"#.utf8)
        for cut in 0..<valid.count {
            #expect(
                PublishAckReply.parse(Array(valid[..<cut])) != .stored(stream: "S", sequence: 12, isDuplicate: false)
            )
        }
    }
}

import Foundation
import MessageStoreJSON
import MessageStoreTestSupport
import Testing

@testable import MessageStore

/// A careless caller: what the API is given is checked before anything is sent (the checks
/// that need no server; the ones that publish are in the integration tests).
@Suite("Hostile input: the caller's side (unit)")
struct CallerInputTests {
    // MARK: Headers and message ids

    @Test func headerRulesByThemselves() throws {
        #expect(HeaderRules.isValidName("Nats-Msg-Id"))
        #expect(HeaderRules.isValidName("traceparent"))
        #expect(!HeaderRules.isValidName("a:b"))
        #expect(!HeaderRules.isValidName("a\u{7F}"))
        #expect(HeaderRules.isValidValue("any text: with colons, tabs\tand ü"))
        #expect(!HeaderRules.isValidValue("a\u{0}"))
        let error = #expect(throws: MessageStoreError.self) {
            try HeaderRules.validate(["Nats-Msg-Id": "a\nb"], subject: "orders.1")
        }
        #expect(error?.code == .invalidMessageID)
        // The error shows the bad name escaped, on one line.
        let named = #expect(throws: MessageStoreError.self) {
            try HeaderRules.validate(MessageHeaders([.init(name: "X\r\nY", value: "v")]), subject: nil)
        }
        #expect(named?.message.contains("X\\r\\nY") == true)
        #expect(named?.message.contains("\n") == false)
    }

    // MARK: Subject length

    @Test func subjectLengthRule() throws {
        #expect(SubjectRules.maxPublishSubjectLength == 4096 - 256)
        try SubjectRules.validateLength(String(repeating: "a", count: SubjectRules.maxPublishSubjectLength))
        let error = #expect(throws: MessageStoreError.self) {
            try SubjectRules.validateLength(String(repeating: "a", count: 11), limit: 10, subject: "app")
        }
        #expect(error?.code == .invalidSubject)
        #expect(error?.subject == "app")
        // The prefix counts: it is sent too.
        let naming = try Naming(prefix: "env")
        let justFits = String(repeating: "a", count: SubjectRules.maxPublishSubjectLength - 4)
        #expect(try naming.publishSubject(justFits).utf8.count == SubjectRules.maxPublishSubjectLength)
        #expect(throws: MessageStoreError.self) { try naming.publishSubject(justFits + "a") }
    }

    // MARK: Configuration values

    @Test func retryScheduleArithmeticSaturates() throws {
        let infinite = RetrySchedule.exponential(initial: .seconds(1), multiplier: .infinity, maximum: .seconds(60))
        #expect(infinite.delay(afterAttempt: 1) == .seconds(1))
        #expect(infinite.delay(afterAttempt: 2) == .seconds(60))
        #expect(infinite.delay(afterAttempt: .max) == .seconds(60))
        let notANumber = RetrySchedule.exponential(initial: .seconds(1), multiplier: .nan, maximum: .seconds(60))
        #expect(notANumber.delay(afterAttempt: 5) == .seconds(1))
        // A fixed schedule at attempt Int.max answers at once (it used to loop Int.max times).
        #expect(RetrySchedule.fixed(.seconds(2)).delay(afterAttempt: .max) == .seconds(2))
        #expect(RetrySchedule.exponential().delay(afterAttempt: .max) == .seconds(60))
        #expect(RetrySchedule.exponential().delay(afterAttempt: 3) == .seconds(4))
        #expect(RetrySchedule.exponential(initial: .seconds(-5)).delay(afterAttempt: 3) == .zero)
        let huge = RetrySchedule.exponential(initial: .seconds(Int64.max), maximum: .seconds(Int64.max))
        #expect(huge.delay(afterAttempt: 2) == ExponentialDelay.longestNanoseconds)
        #expect(huge.delay(afterAttempt: 2).nanoseconds == .max)
    }

    @Test(arguments: [
        RetrySchedule.exponential(multiplier: .infinity), .exponential(multiplier: .nan),
        .exponential(multiplier: -2), .exponential(multiplier: 0.5), .exponential(initial: .seconds(-1)),
        .fixed(.seconds(-1)), .exponential(maximum: .seconds(Int64.max)),
    ])
    func retrySchedulesTheServerCannotFollowAreRefused(schedule: RetrySchedule) {
        let error = #expect(throws: MessageStoreError.self) { try schedule.validate() }
        #expect(error?.code == .invalidConfiguration)
    }

    @Test func ordinaryRetrySchedulesPass() throws {
        try RetrySchedule.exponential().validate()
        try RetrySchedule.immediate.validate()
        try RetrySchedule.fixed(.seconds(30)).validate()
        try RetrySchedule.exponential(initial: .milliseconds(10), multiplier: 1, maximum: .seconds(3600)).validate()
    }

    @Test func connectionTimeoutsOutOfRangeAreConfigurationErrors() async throws {
        var configurations: [NATSConnection.Configuration] = []
        var configuration = NATSConnection.Configuration(url: "nats://127.0.0.1:1")
        configuration.connectTimeout = .seconds(Int64.max)
        configurations.append(configuration)
        configuration = NATSConnection.Configuration(url: "nats://127.0.0.1:1")
        configuration.connectTimeout = .zero
        configurations.append(configuration)
        configuration = NATSConnection.Configuration(url: "nats://127.0.0.1:1")
        configuration.requestTimeout = .seconds(-3)
        configurations.append(configuration)
        configuration = NATSConnection.Configuration(url: "nats://127.0.0.1:1")
        configuration.reconnect.wait = .seconds(Int64.max)
        configurations.append(configuration)
        for configuration in configurations {
            let time = await elapsed {
                let error = await #expect(throws: MessageStoreError.self) {
                    try await NATSConnection.connect(configuration, logger: testLogger)
                }
                #expect(error?.code == .invalidConfiguration)
            }
            #expect(time < .seconds(1))
        }
    }

    // MARK: Prefixes

    @Test(arguments: ["a.x", "a.b", "a-x", "a/b", "a\\b", "ü", "a b", "a*", "a>", "a..", ".a"])
    func prefixesThatCouldOverlapAnotherTenantAreRefused(prefix: String) {
        let error = #expect(throws: MessageStoreError.self) { try Naming(prefix: prefix) }
        #expect(error?.code == .invalidConfiguration)
    }

    @Test(arguments: ["dev", "staging_2", "T1", "a", "env."])
    func prefixesOfOneSafeToken(prefix: String) throws {
        _ = try Naming(prefix: prefix)
    }

    // MARK: Log text

    @Test func peerTextIsEscapedAndCut() {
        #expect(LogText.peer("OrderPlaced") == "OrderPlaced")
        #expect(LogText.peer("a\r\nlevel=critical forged") == "a\\r\\nlevel=critical forged")
        #expect(LogText.peer("back\\slash") == "back\\\\slash")
        #expect(LogText.peer("nul\u{0}bell\u{7}del\u{7F}sep\u{2028}") == "nul\\u{0}bell\\u{7}del\\u{7f}sep\\u{2028}")
        #expect(LogText.peer("naïve ü") == "naïve ü")
        let huge = String(repeating: "y", count: 1_000_000)
        let cut = LogText.peer(huge)
        #expect(cut.hasPrefix(String(repeating: "y", count: LogText.defaultLimit)))
        #expect(cut.hasSuffix("…(1000000 bytes)"))
        #expect(cut.utf8.count < 300)
        #expect(!LogText.peer(String(repeating: "\n", count: 10_000)).contains("\n"))
    }

    @Test func decodingErrorsDoNotCarryAPeersLineBreaksOrMegabytes() throws {
        let type = "Evil\r\nlevel=critical" + String(repeating: "z", count: 1_000_000)
        let body = try Envelope.encode(type: type, data: ["value": "not a number"], metadata: nil, subject: "s")
        let error = #expect(throws: MessageStoreError.self) {
            _ = try Envelope.decodeData(Counter.self, from: body, type: type, subject: "s", sequence: 1)
        }
        #expect(error?.message.contains("\n") == false)
        #expect((error?.message.utf8.count ?? .max) < 1_000)
    }

    // MARK: Duplicate JSON keys

    static let duplicateBodies: [String] = [
        #"{"type":"First","data":{},"type":"Second"}"#,
        #"{"type":"Counter","data":{"value":1,"value":2}}"#,
        #"{"type":"Counter","data":{"value":1},"metadata":{"traceId":"a","traceId":"b"}}"#,
        // Escaped spellings of the same key count as the same key.
        #"{"type":"First","data":{},"t\u0079pe":"Second"}"#,
        // A byte order mark sends the body past the strict parser to JSONDecoder, which would keep the first.
        "\u{FEFF}" + #"{"type":"First","data":{},"type":"Second"}"#,
        #"{"type":"Counter","data":{"value":1, "value":2,}}"#,
    ]

    @Test(arguments: duplicateBodies)
    func bodiesWithDuplicateKeysArePoisonForEveryDecoder(body: String) throws {
        let bytes = Array(body.utf8)
        let decoder = Envelope.makeDispatchDecoder(payloadTypes: ["Counter": Counter.self, "First": Counter.self])
        #expect(throws: Envelope.DispatchFailure.self) { try Envelope.decodeForDispatch(bytes, using: decoder) }
        do {
            _ = try Envelope.decodeForDispatch(bytes, using: decoder)
        } catch {
            guard case .malformedEnvelope(let detail) = error else {
                Issue.record("expected a malformed envelope, got \(error)")
                return
            }
            #expect(detail.contains("appears twice"), "\(detail)")
        }
        let head = #expect(throws: MessageStoreError.self) { try Envelope.decodeHead(bytes, subject: "s", sequence: 1) }
        #expect(head?.code == .decodingFailed)
        #expect(throws: MessageStoreError.self) {
            try Envelope.decodeData(Counter.self, from: bytes, type: "Counter", subject: "s", sequence: 1)
        }
    }

    @Test func duplicateKeyScanner() {
        #expect(JSONDuplicateKeys.first(in: Array(#"{"a":1,"b":{"a":2},"c":[{"a":1},{"a":2}]}"#.utf8)) == nil)
        #expect(JSONDuplicateKeys.first(in: Array(#"{"a":"\"a\":","a":2}"#.utf8)) == "a")
        #expect(JSONDuplicateKeys.first(in: Array(#"[{"x":1,"y":2,"x":3}]"#.utf8)) == "x")
        #expect(JSONDuplicateKeys.first(in: Array(#"{"k":{"k":{"k":1}}}"#.utf8)) == nil)
        #expect(JSONDuplicateKeys.first(in: Array(#"{"unterminated"#.utf8)) == nil)
        #expect(JSONDuplicateKeys.first(in: []) == nil)
    }
}

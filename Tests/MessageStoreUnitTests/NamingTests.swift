import Testing

@testable import MessageStore

@Suite("Naming and subject rules")
struct NamingTests {
    @Test func prefixWithTrailingDotIsTrimmed() throws {
        let naming = try Naming(prefix: "env.")
        #expect(naming.prefix == "env")
        #expect(naming.subjectPrefix == "env.")
        #expect(naming.streamPrefix == "env-")
        #expect(try naming.publishSubject("orders.command.42") == "env.orders.command.42")
        #expect(naming.streamName(category: "orders") == "env-orders")
        #expect(naming.categoryFilter("orders") == "env.orders.>")
    }

    @Test func emptyPrefixAddsNothing() throws {
        let naming = try Naming(prefix: "")
        #expect(naming.subjectPrefix == "")
        #expect(naming.streamPrefix == "")
        #expect(try naming.publishSubject("orders.command.42") == "orders.command.42")
        #expect(naming.streamName(category: "orders") == "orders")
        #expect(naming.categoryFilter("orders") == "orders.>")
        #expect(naming.applicationSubject("orders.command.42") == "orders.command.42")
    }

    @Test func applicationSubjectStripsOnlyTheOwnPrefix() throws {
        let naming = try Naming(prefix: "env")
        #expect(naming.applicationSubject("env.orders.1") == "orders.1")
        #expect(naming.applicationSubject("environment.orders.1") == "environment.orders.1")
    }

    @Test func applicationSubjectComparesThePrefixByItsBytes() throws {
        let naming = try Naming(prefix: "u")
        #expect(naming.applicationSubject(try naming.publishSubject("orders.1")) == "orders.1")
        // "u" followed by a combining diaeresis is "ü" to Swift's `==`, but other bytes to NATS.
        #expect(naming.applicationSubject("u\u{308}.orders.1") == "u\u{308}.orders.1")
    }

    @Test(arguments: ["bad prefix", "a..b", "tab\there", "star*", "gt.>"])
    func invalidPrefixIsAConfigurationError(prefix: String) {
        #expect {
            try Naming(prefix: prefix)
        } throws: { error in
            (error as? MessageStoreError)?.code == .invalidConfiguration
                && (error as? MessageStoreError)?.message.contains(prefix) == true
        }
    }

    @Test(arguments: [
        ("", "empty"),
        ("orders..42", "empty token"),
        (".orders", "empty token"),
        ("orders.", "empty token"),
        ("orders 42", "whitespace"),
        ("orders.\n42", "whitespace"),
        ("orders.\u{7}", "control"),
        ("orders.*", "wildcards"),
        ("orders.>", "wildcards"),
        ("orders.a*b", "wildcards"),
    ])
    func invalidPublishSubjectsNameTheSubject(subject: String, reason: String) throws {
        let naming = try Naming(prefix: "env")
        let error = #expect(throws: MessageStoreError.self) { try naming.publishSubject(subject) }
        #expect(error?.code == .invalidSubject)
        #expect(error?.subject == subject)
        #expect(error?.message.contains("\"\(subject)\"") == true)
        #expect(error?.message.contains(reason) == true)
    }

    @Test(arguments: ["orders.*", "orders.>", "orders.*.42", "*.command.>", ">"])
    func wildcardsAreAllowedInFilters(filter: String) throws {
        let naming = try Naming(prefix: "env")
        #expect(try naming.filterSubject(filter) == "env." + filter)
    }

    @Test(arguments: ["orders.>.42", "orders.a*", "orders.>x", "orders..*"])
    func misplacedWildcardsAreRejectedInFilters(filter: String) throws {
        let naming = try Naming(prefix: "env")
        #expect(throws: MessageStoreError.self) { try naming.filterSubject(filter) }
    }

    @Test(arguments: ["orders.x", "", "a b", "a/b", "a*", ">"])
    func categoriesAreSingleSafeTokens(category: String) {
        #expect(throws: MessageStoreError.self) { try SubjectRules.validateCategory(category) }
    }

    @Test func coverage() {
        #expect(SubjectRules.filter("env.orders.>", covers: "env.orders.>"))
        #expect(SubjectRules.filter("env.>", covers: "env.orders.>"))
        #expect(SubjectRules.filter(">", covers: "env.orders.>"))
        #expect(SubjectRules.filter("env.*.>", covers: "env.orders.>"))
        #expect(SubjectRules.filter("env.orders.*", covers: "env.orders.42"))
        #expect(!SubjectRules.filter("env.orders.*", covers: "env.orders.>"))
        #expect(!SubjectRules.filter("env.orders.special", covers: "env.orders.>"))
        #expect(!SubjectRules.filter("env.orders.>", covers: "env.orders"))
        #expect(!SubjectRules.filter("env.payments.>", covers: "env.orders.>"))
        #expect(!SubjectRules.filter("env.orders.42", covers: "env.orders.*"))
    }

    @Test func overlap() {
        #expect(SubjectRules.filter("env.orders.special", overlaps: "env.orders.>"))
        #expect(SubjectRules.filter("env.*.x", overlaps: "env.orders.*"))
        #expect(!SubjectRules.filter("env.payments.>", overlaps: "env.orders.>"))
        #expect(!SubjectRules.filter("env.orders", overlaps: "env.orders.>"))
    }

    @Test func categoryOfSubject() {
        #expect(Naming.category(of: "orders.command.42") == "orders")
        #expect(Naming.category(of: "orders") == "orders")
    }
}

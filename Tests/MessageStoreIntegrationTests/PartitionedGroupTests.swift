import Foundation
import MessageStoreTestSupport
import MessageStoreTesting
import Synchronization
import Testing

@testable import MessageStore

/// Whether the test server has stream subject transforms (2.10 or later), which partitioned
/// groups need.
let testServerHasSubjectTransforms: Bool = {
    guard let version = NATSTestServer.binaryVersion else { return false }
    return version.lexicographicallyPrecedes([2, 10]) == false
}()

extension NATSTestServer {
    /// The test server binary's version, such as [2, 9, 10].
    static let binaryVersion: [Int]? = {
        let binary = ProcessInfo.processInfo.environment["NATS_SERVER_BIN"] ?? "/usr/sbin/nats-server"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["--version"]
        let output = Pipe()
        process.standardOutput = output
        guard (try? process.run()) != nil else { return nil }
        process.waitUntilExit()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        // "nats-server: v2.9.10"
        guard let start = text.range(of: " v") else { return nil }
        let numbers = text[start.upperBound...].prefix { $0.isNumber || $0 == "." }
        return numbers.split(separator: ".").compactMap { Int($0) }
    }()
}

/// Runs each group member in a child task for the duration of `body`, then stops them all and
/// waits for their `run()` to return.
@discardableResult
func withRunning<R>(
    members: [PartitionedGroup],
    body: () async throws -> R
) async throws -> R {
    try await withThrowingTaskGroup(of: Void.self) { group in
        for member in members {
            group.addTask { try await member.run() }
        }
        do {
            let result = try await body()
            for member in members { member.stop() }
            try await group.waitForAll()
            return result
        } catch {
            for member in members { member.stop() }
            try? await group.waitForAll()
            throw error
        }
    }
}

@Suite("Partitioned consumer groups", .serverRequired)
struct PartitionedGroupTests {
    static let handlerless = MessageHandlers()

    @Test func invalidGroupsAreRefusedAtOnce() async throws {
        try await withStore { store, _ in
            func refusal(_ filter: String, _ configuration: PartitionedGroup.Configuration) -> String? {
                do {
                    _ = try store.partitionedGroup(
                        "g",
                        to: filter,
                        handlers: Self.handlerless,
                        configuration: configuration
                    )
                    return nil
                } catch {
                    return error.code == .invalidConfiguration ? error.message : "wrong code \(error.code)"
                }
            }
            #expect(refusal("orders.>", .init())?.contains("no \"*\" token") == true)
            #expect(refusal("orders.*.*", .init(keyWildcards: [3]))?.contains("keyWildcards") == true)
            #expect(refusal("orders.*.*", .init(keyWildcards: [1, 1]))?.contains("keyWildcards") == true)
            #expect(refusal("orders.*", .init(partitions: 0))?.contains("partitions") == true)
            #expect(refusal("orders.*", .init(memberID: "a.b"))?.contains("member id") == true)
            #expect(refusal("orders.*.*", .init(keyWildcards: [2])) == nil)
            #expect(throws: MessageStoreError.self) {
                try store.partitionedGroup("a.b", to: "orders.*", handlers: Self.handlerless)
            }
        }
    }

    /// Before 2.10 a server would drop the subject transform without a word: the member refuses
    /// to start instead, and leaves no stream behind.
    @Test(.enabled(if: !testServerHasSubjectTransforms)) func anOlderServerIsRefusedClearly() async throws {
        try await withStore { store, _ in
            let member = try store.partitionedGroup("old", to: "orders.*", handlers: Self.handlerless)
            let error = try await #require(throws: MessageStoreError.self) { try await member.run() }
            #expect(error.code == .unsupportedServer)
            #expect(error.message.contains("2.10"))
            #expect(try await store.jetStream.streamNames(storing: "$GROUP.>").isEmpty)
        }
    }

    /// Two members split the partitions, each key in order and handled once; when one leaves,
    /// the other takes its partitions over with nothing lost, repeated or out of order.
    @Test(.enabled(if: testServerHasSubjectTransforms)) func membersShareKeysInOrderAndHandOver() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            let checker = OrderChecker()
            let handled = Recorder<String>()
            let handlers = MessageHandlers().handling(Counter.self) { message in
                let run = OrderChecker.Run(key: message.subject, value: message.data.value, attempt: message.attempt)
                checker.started(run)
                try? await Task.sleep(for: .microseconds(Int.random(in: 0...2_000)))
                checker.finished(run, succeeded: true)
                handled.record("\(message.subject) \(message.data.value)")
            }
            var configuration = PartitionedGroup.Configuration(partitions: 8)
            configuration.heartbeatInterval = .milliseconds(200)
            configuration.worker.maxConcurrentHandlers = 8
            configuration.worker.ackWait = .seconds(2)
            let first = try store.partitionedGroup(
                "pair",
                to: "orders.*",
                handlers: handlers,
                configuration: configuration
            )
            let second = try store.partitionedGroup(
                "pair",
                to: "orders.*",
                handlers: handlers,
                configuration: configuration
            )
            let keys = 40
            func publish(values: Range<Int>) async throws {
                var messages: [OutgoingMessage] = []
                for value in values {
                    for key in 0..<keys {
                        messages.append(OutgoingMessage(Counter(value: value), to: "orders.k\(key)"))
                    }
                }
                for result in await store.publish(contentsOf: messages) { _ = try result.get() }
            }
            try await publish(values: 0..<10)
            try await withRunning(members: [first]) {
                try await withRunning(members: [second]) {
                    try await handled.wait(forCount: keys * 10, timeout: .seconds(30))
                    try await waitUntil("the partitions are split 4 and 4") {
                        first.partitions.count == 4 && second.partitions.count == 4
                    }
                    #expect(Set(first.partitions).isDisjoint(with: second.partitions))
                    try await publish(values: 10..<20)
                    try await handled.wait(forCount: keys * 20, timeout: .seconds(30))
                }
                // The second left: the first holds all eight and goes on.
                try await waitUntil("the first member holds every partition") { first.partitions.count == 8 }
                try await publish(values: 20..<30)
                try await handled.wait(forCount: keys * 30, timeout: .seconds(30))
            }
            Self.checkHandledOnceInOrder(checker: checker, handled: handled.events, keys: keys, perKey: 30)
        }
    }

    static func checkHandledOnceInOrder(checker: OrderChecker, handled: [String], keys: Int, perKey: Int) {
        #expect(checker.violations.isEmpty, "\(checker.violations.prefix(5))")
        #expect(handled.count == keys * perKey, "duplicates: \(handled.count - keys * perKey)")
        #expect(Set(handled).count == keys * perKey)
        #expect(checker.succeeded.values.allSatisfy { $0 == Array(0..<perKey) })
    }
}

import Foundation
import MessageStoreTestSupport
import MessageStoreTesting
import Synchronization
import Testing

@testable import MessageStore

/// Watches handler runs per key: a run that starts while another of its key runs, or a message
/// that starts before an earlier one of its key has succeeded, is a violation.
final class OrderChecker: Sendable {
    struct Run: Sendable, Hashable {
        var key: String
        var value: Int
        var attempt: Int
    }

    private struct State {
        var running: Set<String> = []
        var succeeded: [String: [Int]] = [:]
        var started: [Run] = []
        var violations: [String] = []
        var concurrent = 0
        var mostConcurrent = 0
    }

    private let state = Mutex(State())

    func started(_ run: Run) {
        state.withLock { state in
            if !state.running.insert(run.key).inserted {
                state.violations.append("\(run.key) \(run.value) started while another of its key ran")
            }
            let done = state.succeeded[run.key] ?? []
            if done.count != run.value {
                state.violations.append("\(run.key) \(run.value) started after \(done.count) of its key succeeded")
            }
            state.started.append(run)
            state.concurrent += 1
            state.mostConcurrent = max(state.mostConcurrent, state.concurrent)
        }
    }

    func finished(_ run: Run, succeeded: Bool) {
        state.withLock { state in
            state.running.remove(run.key)
            state.concurrent -= 1
            if succeeded { state.succeeded[run.key, default: []].append(run.value) }
        }
    }

    var violations: [String] { state.withLock { $0.violations } }
    var started: [Run] { state.withLock { $0.started } }
    var succeeded: [String: [Int]] { state.withLock { $0.succeeded } }
    var mostConcurrent: Int { state.withLock { $0.mostConcurrent } }
}

@Suite("Ordering per key", .serverRequired)
struct OrderingTests {
    /// 40 keys × 25 messages, interleaved, concurrency 16, handlers of random latency, and every
    /// seventh value failing its first attempt: per key, runs never overlap and follow the
    /// stream's order (a retried message holds its key back), while keys run in parallel.
    @Test func perKeyOrderHoldsUnderConcurrencyWithRetries() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            let keys = 40
            let perKey = 25
            let checker = OrderChecker()
            let done = Recorder<Int>()
            let handlers = MessageHandlers().handling(Counter.self) { message in
                let run = OrderChecker.Run(key: message.subject, value: message.data.value, attempt: message.attempt)
                checker.started(run)
                try? await Task.sleep(for: .microseconds(Int.random(in: 0...3_000)))
                let fails = message.data.value % 7 == 3 && message.attempt == 1
                checker.finished(run, succeeded: !fails)
                if fails { throw HandlerFailure() }
                done.record(message.data.value)
            }
            var configuration = Subscription.Configuration()
            configuration.ordering = .perSubject
            configuration.maxConcurrentHandlers = 16
            configuration.batchSize = 64
            configuration.retrySchedule = .fixed(.milliseconds(5))
            let worker = try store.subscription(
                to: "orders.>",
                consumer: "ordered-\(uniquePrefix())",
                handlers: handlers,
                configuration: configuration
            )
            var messages: [OutgoingMessage] = []
            for value in 0..<perKey {
                for key in 0..<keys { messages.append(OutgoingMessage(Counter(value: value), to: "orders.k\(key)")) }
            }
            let results = await store.publish(contentsOf: messages)
            #expect(results.allSatisfy { (try? $0.get()) != nil })
            try await withRunning(worker) {
                try await done.wait(forCount: keys * perKey)
            }
            #expect(checker.violations.isEmpty, "\(checker.violations.prefix(5))")
            let succeeded = checker.succeeded
            #expect(succeeded.count == keys)
            #expect(succeeded.values.allSatisfy { $0 == Array(0..<perKey) })
            // Each failing value ran twice (attempts 1 and 2), every other once.
            let retried = checker.started.filter { $0.attempt == 2 }
            #expect(retried.count == keys * (0..<perKey).count { $0 % 7 == 3 })
            #expect(checker.started.count == keys * perKey + retried.count)
            #expect(checker.mostConcurrent > 1 && checker.mostConcurrent <= 16, "\(checker.mostConcurrent)")
        }
    }

    /// A handler that takes long holds back its own key only: the messages of other keys behind
    /// it, over many small batches, are all handled meanwhile.
    @Test func aSlowMessageHoldsBackOnlyItsKey() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            let (release, releaser) = AsyncStream.makeStream(of: Void.self)
            let handled = Recorder<String>()
            let handlers = MessageHandlers().handling(Counter.self) { message in
                if message.subject == "orders.slow" && message.data.value == 0 {
                    handled.record("slow started")
                    for await _ in release { break }
                }
                handled.record("\(message.subject) \(message.data.value)")
            }
            var configuration = Subscription.Configuration()
            configuration.ordering = .perSubject
            configuration.maxConcurrentHandlers = 4
            configuration.batchSize = 10
            let worker = try store.subscription(
                to: "orders.>",
                consumer: "barrier-\(uniquePrefix())",
                handlers: handlers,
                configuration: configuration
            )
            var messages = [
                OutgoingMessage(Counter(value: 0), to: "orders.slow"),
                OutgoingMessage(Counter(value: 1), to: "orders.slow"),
            ]
            for value in 0..<100 {
                messages.append(OutgoingMessage(Counter(value: value), to: "orders.k\(value % 20)"))
            }
            _ = await store.publish(contentsOf: messages)
            try await withRunning(worker) {
                let seen = try await handled.wait(for: "the other keys' 100 messages") { events in
                    events.count { $0.hasPrefix("orders.k") } == 100
                }
                #expect(seen.contains("slow started"))
                #expect(!seen.contains("orders.slow 0") && !seen.contains("orders.slow 1"))
                releaser.yield()
                releaser.finish()
                let all = try await handled.wait(for: "the slow key") { $0.contains("orders.slow 1") }
                let slow = all.filter { $0.hasPrefix("orders.slow") }
                #expect(slow == ["orders.slow 0", "orders.slow 1"])
            }
        }
    }

    /// A failing message is retried in place: the later messages of its key wait (and are not
    /// redelivered meanwhile); once it is dead-lettered, they go on. Other keys are not held.
    @Test func aRetriedMessageHoldsItsKeyUntilItSucceedsOrIsDeadLettered() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            try await store.ensureStream("dlq")
            let runs = Recorder<String>()
            let handlers = MessageHandlers().handling(Counter.self) { message in
                let name = "\(message.subject.split(separator: ".").last ?? "")\(message.data.value)"
                runs.record("\(name)#\(message.attempt)")
                switch (name, message.attempt) {
                case ("a1", 1), ("a1", 2): throw HandlerFailure()  // succeeds on the third
                case ("c1", _): throw HandlerFailure()  // never succeeds: dead-lettered
                default: break
                }
            }
            var configuration = Subscription.Configuration()
            configuration.ordering = .perSubject
            configuration.maxConcurrentHandlers = 4
            configuration.retrySchedule = .fixed(.milliseconds(150))
            configuration.deadLetterSubject = "dlq"
            let worker = try store.subscription(
                to: "orders.>",
                consumer: "retry-order-\(uniquePrefix())",
                handlers: handlers,
                configuration: configuration
            )
            _ = await store.publish(contentsOf: [
                OutgoingMessage(Counter(value: 1), to: "orders.a"),
                OutgoingMessage(Counter(value: 2), to: "orders.a"),
                OutgoingMessage(Counter(value: 1), to: "orders.b"),
                OutgoingMessage(Counter(value: 2), to: "orders.b"),
                OutgoingMessage(Counter(value: 1), to: "orders.c"),
                OutgoingMessage(Counter(value: 2), to: "orders.c"),
            ])
            try await withRunning(worker) {
                let all = try await runs.wait(for: "a2 and c2") { $0.contains("a2#1") && $0.contains("c2#1") }
                func attempts(of prefix: String) -> [String] { all.filter { $0.hasPrefix(prefix) } }
                #expect(attempts(of: "a") == ["a1#1", "a1#2", "a1#3", "a2#1"])
                #expect(attempts(of: "c") == ["c1#1", "c1#2", "c1#3", "c2#1"])
                // b is not held back by a's retries: done before a1's second attempt.
                let b2 = try #require(all.firstIndex(of: "b2#1"))
                let a1Again = try #require(all.firstIndex(of: "a1#2"))
                #expect(b2 < a1Again, "\(all)")
                try await waitUntil("c1's dead letter") { try await store.lastMessageRaw(on: "dlq.orders.c") != nil }
            }
            // Retried in place: the server delivered a1 once.
            let consumer = try #require(try await store.consumers(of: "orders").first { $0.name == worker.consumer })
            #expect(consumer.redelivered == 0 && consumer.ackPending == 0 && consumer.pending == 0)
        }
    }

    /// A stop while messages wait in key queues gives them back at once (they are not held for
    /// the ack wait), the held key's running message finishes, and a new worker handles the rest:
    /// every message is handled, the first worker's handled in order per key.
    ///
    /// Not asserted, as the server does not give it: that given-back messages come back before
    /// newer ones (they may come after, so order across a restart is not kept), and, on
    /// nats-server 2.9, that none comes back twice or only after the ack wait (it happens there
    /// when a pull request is still open at the stop; the ack wait here bounds that).
    @Test func aStopGivesBackQueuedMessagesAndANewWorkerHandlesTheRest() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            let consumer = "stop-order-\(uniquePrefix())"
            let firstChecker = OrderChecker()
            let phase = Atomic<Int>(1)
            let handled = Recorder<String>()
            let (release, releaser) = AsyncStream.makeStream(of: Void.self)
            let handlers = MessageHandlers().handling(Counter.self) { message in
                let run = OrderChecker.Run(key: message.subject, value: message.data.value, attempt: message.attempt)
                let first = phase.load(ordering: .relaxed) == 1
                if first { firstChecker.started(run) }
                if message.data.value == 0 && message.subject == "orders.k0" && first {
                    handled.record("holding")
                    for await _ in release { break }
                }
                if first { firstChecker.finished(run, succeeded: true) }
                handled.record("\(message.subject) \(message.data.value)")
            }
            var configuration = Subscription.Configuration()
            configuration.ordering = .perSubject
            configuration.maxConcurrentHandlers = 2
            configuration.ackWait = .seconds(2)
            var messages: [OutgoingMessage] = []
            for value in 0..<10 {
                for key in 0..<5 { messages.append(OutgoingMessage(Counter(value: value), to: "orders.k\(key)")) }
            }
            _ = await store.publish(contentsOf: messages)
            let first = try store.subscription(
                to: "orders.>",
                consumer: consumer,
                handlers: handlers,
                configuration: configuration
            )
            let running = Task { try await first.run() }
            try await handled.wait(for: "the held message") { $0.contains("holding") }
            first.stop()
            releaser.yield()
            releaser.finish()
            try await running.value
            #expect(handled.events.contains("orders.k0 0"))
            #expect(firstChecker.violations.isEmpty, "\(firstChecker.violations.prefix(5))")
            phase.store(2, ordering: .relaxed)
            let second = try store.subscription(
                to: "orders.>",
                consumer: consumer,
                handlers: handlers,
                configuration: configuration
            )
            let expected = Set(messages.map { "\($0.subject) \(($0.payload as? Counter)?.value ?? -1)" })
            try await withRunning(second) {
                try await handled.wait(for: "all 50") { events in expected.isSubset(of: Set(events)) }
            }
        }
    }
}

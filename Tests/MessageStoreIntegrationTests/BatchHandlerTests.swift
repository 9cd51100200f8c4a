import Foundation
import MessageStoreTestSupport
import MessageStoreTesting
import Synchronization
import Testing

@testable import MessageStore

/// One call of a batch handler: its messages' values and attempts, in batch order.
struct BatchCall: Sendable {
    var values: [Int]
    var attempts: [Int]
    var subjects: [String]

    init(_ batch: MessageBatch<Counter>) {
        values = batch.map(\.data.value)
        attempts = batch.map(\.attempt)
        subjects = batch.map(\.subject)
    }
}

@Suite("Batch handlers", .serverRequired)
struct BatchHandlerTests {
    static func configuration(concurrency: Int) -> Subscription.Configuration {
        var configuration = Subscription.Configuration()
        configuration.maxConcurrentHandlers = concurrency
        configuration.retrySchedule = .fixed(.milliseconds(50))
        configuration.deadLetterSubject = "dlq"
        return configuration
    }

    static func publish(_ store: MessageStore, values: Range<Int>, subject: (Int) -> String) async throws {
        let messages = values.map { OutgoingMessage(Counter(value: $0), to: subject($0)) }
        for result in await store.publish(contentsOf: messages) { _ = try result.get() }
    }

    /// 500 messages, batches of at most 50: each message handled once, the batches full but for
    /// the tail of a fetch; with a time bound of a minute, every batch that could not fill
    /// (nothing else could join it) started at once.
    @Test func batchesFillUpToTheirCountAndStartWhenNothingElseCanJoin() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            let calls = Recorder<BatchCall>()
            let handled = Recorder<Int>()
            let handlers = MessageHandlers().handlingBatches(of: Counter.self, maxCount: 50, maxWait: .seconds(60)) {
                batch in
                calls.record(BatchCall(batch))
                for message in batch { handled.record(message.data.value) }
            }
            try await Self.publish(store, values: 0..<500) { "orders.\($0)" }
            let worker = try store.subscription(
                to: "orders.>",
                consumer: "bulk",
                handlers: handlers,
                configuration: Self.configuration(concurrency: 50)
            )
            try await withRunning(worker) {
                // Far less than the time bound: the tails started without waiting it out.
                try await handled.wait(forCount: 500, timeout: .seconds(20))
                try await waitUntil("everything acknowledged") {
                    try await store.consumerInfo("bulk", category: "orders").numAckPending == 0
                }
            }
            Self.checkFilled(calls.events, handled: handled.events, total: 500, maxCount: 50)
        }
    }

    static func checkFilled(_ calls: [BatchCall], handled: [Int], total: Int, maxCount: Int) {
        #expect(handled.sorted() == Array(0..<total), "each message once")
        #expect(calls.allSatisfy { $0.values.count <= maxCount })
        #expect(calls.allSatisfy { $0.attempts.allSatisfy { $0 == 1 } })
        // Batches fill: a handful of calls, most of them full.
        let full = calls.count { $0.values.count == maxCount }
        #expect(full >= total / maxCount / 2, "\(calls.map(\.values.count))")
        #expect(calls.count <= total / maxCount * 2, "\(calls.map(\.values.count))")
    }

    /// A worker whose OrderPlaced handler blocks until `release` ends and whose Counter
    /// messages go to batches of up to 10, with one OrderPlaced and three Counters stored.
    static func blockedAndBatching(
        _ store: MessageStore,
        consumer: String,
        maxWait: Duration,
        release: AsyncStream<Void>,
        slow: Recorder<String>,
        calls: Recorder<BatchCall>
    ) async throws -> Subscription {
        let handlers = MessageHandlers()
            .handling(OrderPlaced.self) { _ in
                slow.record("started")
                for await _ in release { break }
                slow.record("released")
            }
            .handlingBatches(of: Counter.self, maxCount: 10, maxWait: maxWait) { batch in
                calls.record(BatchCall(batch))
            }
        try await store.publish(OrderPlaced(orderId: "1", amount: 1), to: "orders.slow")
        try await Self.publish(store, values: 0..<3) { "orders.\($0)" }
        return try store.subscription(
            to: "orders.>",
            consumer: consumer,
            handlers: handlers,
            configuration: Self.configuration(concurrency: 10)
        )
    }

    /// A batch that cannot fill, while another handler of the worker runs on, starts at its time
    /// bound: the three messages are handled together while the other handler is still blocked.
    @Test func aBatchThatCannotFillStartsAtItsTimeBound() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            let (release, releaser) = AsyncStream.makeStream(of: Void.self)
            let calls = Recorder<BatchCall>()
            let slow = Recorder<String>()
            let worker = try await Self.blockedAndBatching(
                store,
                consumer: "bounded",
                maxWait: .milliseconds(300),
                release: release,
                slow: slow,
                calls: calls
            )
            try await withRunning(worker) {
                try await slow.wait(forCount: 1)
                let seen = try await calls.wait(for: "three messages in batches") {
                    $0.reduce(0) { $0 + $1.values.count } >= 3
                }
                #expect(slow.events == ["started"], "the batch ran only once the slow handler was released")
                #expect(seen.map { $0.values.sorted() } == [[0, 1, 2]])
                releaser.finish()
                try await slow.wait(forCount: 2)
            }
        }
    }

    /// A stop starts a batch being formed at once, rather than at its time bound (a minute):
    /// its messages have started, and nothing more will join them.
    @Test func aStopStartsTheBatchBeingFormed() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            let (release, releaser) = AsyncStream.makeStream(of: Void.self)
            let calls = Recorder<BatchCall>()
            let worker = try await Self.blockedAndBatching(
                store,
                consumer: "stopped",
                maxWait: .seconds(60),
                release: release,
                slow: Recorder<String>(),
                calls: calls
            )
            try await withRunning(worker) {
                try await waitUntil("the slow handler and the batch's three wait") {
                    worker.status.handlersInFlight == 4
                }
                #expect(calls.events.isEmpty)
                worker.stop()
                let seen = try await calls.wait(forCount: 1, timeout: .seconds(10))
                #expect(seen.map { $0.values.sorted() } == [[0, 1, 2]])
                releaser.finish()
            }
            let info = try await store.consumerInfo("stopped", category: "orders")
            #expect(info.numAckPending == 0 && info.numPending == 0)
        }
    }

    /// A batch handler that throws fails every message of the batch: each is retried (attempt 2)
    /// and then succeeds; nothing is dead-lettered.
    @Test func aThrowingBatchFailsItsMessagesTogether() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            let calls = Recorder<BatchCall>()
            let failedOnce = Mutex(false)
            let handlers = MessageHandlers().handlingBatches(of: Counter.self, maxCount: 20) { batch in
                calls.record(BatchCall(batch))
                let fail = failedOnce.withLock { failed in
                    defer { failed = true }
                    return !failed
                }
                if fail { throw HandlerFailure() }
            }
            try await Self.publish(store, values: 0..<20) { "orders.\($0)" }
            let worker = try store.subscription(
                to: "orders.>",
                consumer: "together",
                handlers: handlers,
                configuration: Self.configuration(concurrency: 20)
            )
            try await withRunning(worker) {
                try await calls.wait(for: "every message succeeded") { calls in
                    calls.dropFirst().reduce(0) { $0 + $1.values.count } >= 20
                }
                try await waitUntil("everything acknowledged") {
                    let info = try await store.consumerInfo("together", category: "orders")
                    return info.numAckPending == 0 && info.numPending == 0
                }
            }
            let all = calls.events
            Self.checkFailedTogether(all)
            #expect(try await store.deadLetters().isEmpty)
        }
    }

    static func checkFailedTogether(_ calls: [BatchCall]) {
        guard let first = calls.first else {
            Issue.record("no batch")
            return
        }
        let retried = calls.dropFirst().flatMap { zip($0.values, $0.attempts) }
        #expect(retried.map(\.0).sorted() == first.values.sorted(), "every failed message ran again")
        #expect(retried.allSatisfy { $0.1 == 2 }, "as its second attempt")
        #expect(Set(first.values + retried.map(\.0)) == Set(0..<20))
        #expect(first.values.count + retried.count == 20 + first.values.count)
    }

    /// One by one: a message the handler fails alone is retried alone and dead-lettered after its
    /// last attempt; one it asks to terminate is dead-lettered at once; the rest succeed once.
    @Test func messagesFailOrTerminateOneByOne() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            let calls = Recorder<BatchCall>()
            let handlers = MessageHandlers().handlingBatches(of: Counter.self, maxCount: 10) { batch in
                calls.record(BatchCall(batch))
                for message in batch {
                    if message.data.value == 7 { batch.fail(message, with: HandlerFailure()) }
                    if message.data.value == 3 { message.terminate(reason: "three is refused") }
                }
            }
            try await Self.publish(store, values: 0..<10) { "orders.\($0)" }
            let worker = try store.subscription(
                to: "orders.>",
                consumer: "alone",
                handlers: handlers,
                configuration: Self.configuration(concurrency: 10)
            )
            try await withRunning(worker) {
                try await waitUntil("two dead letters") { try await store.deadLetters().count == 2 }
                try await waitUntil("everything settled") {
                    let info = try await store.consumerInfo("alone", category: "orders")
                    return info.numAckPending == 0 && info.numPending == 0
                }
            }
            let runs = calls.events.flatMap { zip($0.values, $0.attempts) }
            #expect(runs.filter { $0.0 == 7 }.map(\.1) == [1, 2, 3], "7 ran on each of its three attempts")
            #expect(runs.filter { $0.0 != 7 }.map(\.0).sorted() == [0, 1, 2, 3, 4, 5, 6, 8, 9], "the others once")
            let letters = try await store.deadLetters()
            let reasons = Dictionary(
                uniqueKeysWithValues: letters.map {
                    ($0.headers[DeadLetterHeader.originalSubject] ?? "?", $0.headers[DeadLetterHeader.reason] ?? "?")
                }
            )
            #expect(reasons["orders.3"] == "three is refused")
            #expect(reasons["orders.7"] == "the handler failed on attempt 3 of 3: deliberate failure", "\(reasons)")
        }
    }

    /// With per-key ordering, a batch holds at most one message of a key, and each key's
    /// messages are handled in stream order.
    @Test func orderedBatchesHoldOneMessageOfAKey() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            let calls = Recorder<BatchCall>()
            let handled = Recorder<Int>()
            let handlers = MessageHandlers().handlingBatches(of: Counter.self, maxCount: 16) { batch in
                calls.record(BatchCall(batch))
                try? await Task.sleep(for: .milliseconds(Int.random(in: 0...3)))
                for message in batch { handled.record(message.data.value) }
            }
            // 20 keys × 15 values, interleaved: value v of key k is v * 20 + k.
            try await Self.publish(store, values: 0..<300) { "orders.k\($0 % 20)" }
            var configuration = Self.configuration(concurrency: 16)
            configuration.ordering = .perSubject
            let worker = try store.subscription(
                to: "orders.>",
                consumer: "ordered",
                handlers: handlers,
                configuration: configuration
            )
            try await withRunning(worker) {
                try await handled.wait(forCount: 300)
            }
            Self.checkOrdered(calls.events, handled: handled.events)
        }
    }

    static func checkOrdered(_ calls: [BatchCall], handled: [Int]) {
        #expect(handled.sorted() == Array(0..<300))
        #expect(calls.allSatisfy { Set($0.subjects).count == $0.subjects.count }, "a key twice in one batch")
        for key in 0..<20 {
            let values = calls.flatMap(\.values).filter { $0 % 20 == key }
            #expect(values == Array(stride(from: key, to: 300, by: 20)), "key \(key) out of order")
        }
        #expect(calls.contains { $0.values.count > 1 }, "no batch had more than one message")
    }

    /// Bounds that cannot work are refused when the subscription is made.
    @Test func impossibleBoundsAreRefused() async throws {
        try await withStore { store, _ in
            let handlers = MessageHandlers().handlingBatches(of: Counter.self, maxCount: 100) { _ in }
            let tooMany = #expect(throws: MessageStoreError.self) {
                try store.subscription(to: "orders.>", consumer: "bulk", handlers: handlers)
            }
            #expect(tooMany?.code == .invalidConfiguration)
            #expect(
                tooMany?.message
                    == "the batch handler of Counter: maxCount 100 is more than maxConcurrentHandlers (1): a batch's "
                    + "messages are handled at once; raise maxConcurrentHandlers to at least 100"
            )
            let empty = MessageHandlers().handlingBatches(of: Counter.self, maxCount: 0) { _ in }
            let zero = #expect(throws: MessageStoreError.self) {
                try store.subscription(to: "orders.>", consumer: "bulk", handlers: empty)
            }
            #expect(zero?.message.contains("maxCount must be at least 1") == true)
            let negative = MessageHandlers().handlingBatches(of: Counter.self, maxCount: 1, maxWait: .seconds(-1)) {
                _ in
            }
            #expect(throws: MessageStoreError.self) {
                try store.subscription(to: "orders.>", consumer: "bulk", handlers: negative)
            }
        }
    }
}

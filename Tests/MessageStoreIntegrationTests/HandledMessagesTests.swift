import MessageStoreTestSupport
import MessageStoreTesting
import Testing

@testable import MessageStore

/// De-duplication without a database: a record of handled messages in a key-value bucket.
@Suite("Handled messages", .serverRequired)
struct HandledMessagesTests {
    static func worker(
        _ store: MessageStore,
        consumer: String,
        handler: @escaping @Sendable (ReceivedMessage<Counter>) async throws -> Void
    ) throws -> Subscription {
        var configuration = Subscription.Configuration()
        configuration.retrySchedule = .fixed(.milliseconds(20))
        configuration.maxConcurrentHandlers = 8
        return try store.subscription(
            to: "orders.>",
            consumer: consumer,
            handlers: MessageHandlers().handling(Counter.self, handler),
            configuration: configuration
        )
    }

    static func drain(_ store: MessageStore, consumer: String, total: Int) async throws {
        try await waitUntil("\(consumer) acknowledged everything") {
            let info = try await store.consumerInfo(consumer, category: "orders")
            return info.numPending == 0 && info.numAckPending == 0 && info.ackFloor.streamSeq == UInt64(total)
        }
    }

    /// Two consumers of one stream share a record: the second acknowledges every message
    /// without running its handler, those with an id and those known by stream and sequence.
    @Test func workersSharingARecordHandleEachMessageOnce() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            let handled = try await store.handledMessages("shared")
            let effects = Recorder<Int>()
            let once = handled.once { (message: ReceivedMessage<Counter>) in effects.record(message.data.value) }
            // Even values with an id, odd ones without.
            let total = 200
            let messages = (0..<total).map { value in
                OutgoingMessage(
                    Counter(value: value),
                    to: "orders.\(value % 7)",
                    id: value.isMultiple(of: 2) ? "order-\(value)" : nil
                )
            }
            for result in await store.publish(contentsOf: messages) { _ = try result.get() }
            let first = try Self.worker(store, consumer: "first", handler: once)
            try await withRunning(first) {
                try await effects.wait(forCount: total)
                try await Self.drain(store, consumer: "first", total: total)
            }
            let second = try Self.worker(store, consumer: "second", handler: once)
            try await withRunning(second) {
                try await Self.drain(store, consumer: "second", total: total)
            }
            #expect(effects.events.sorted() == Array(0..<total), "each effect once")
            let skipped = try await store.consumerInfo("second", category: "orders")
            #expect(skipped.numAckPending == 0)
        }
    }

    /// A handler that fails is not recorded: its retry runs it again, and only its success counts.
    @Test func aFailedHandlerIsRunAgainAndRecordedOnlyWhenItSucceeds() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            let handled = try await store.handledMessages("retries")
            let attempts = Recorder<Int>()
            struct Flaky: Error {}
            let once = handled.once { (message: ReceivedMessage<Counter>) in
                attempts.record(message.attempt)
                if message.attempt < 3 { throw Flaky() }
            }
            try await store.publish(Counter(value: 1), to: "orders.1", id: "flaky-1")
            let worker = try Self.worker(store, consumer: "flaky", handler: once)
            try await withRunning(worker) {
                try await Self.drain(store, consumer: "flaky", total: 1)
            }
            #expect(attempts.events == [1, 2, 3])
            // Recorded now: another consumer does not run it.
            let again = Recorder<Int>()
            let other = try Self.worker(store, consumer: "other", handler: handled.once { again.record($0.data.value) })
            try await withRunning(other) {
                try await Self.drain(store, consumer: "other", total: 1)
            }
            #expect(again.events.isEmpty)
        }
    }

    /// Entries expire with the record's retention: after it, the message is no longer known.
    @Test func entriesExpireAfterTheRetention() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            let handled = try await store.handledMessages("short", retention: .seconds(1))
            let seen = Recorder<ReceivedMessage<Counter>>()
            try await store.publish(Counter(value: 1), to: "orders.1", id: "expiring")
            let worker = try Self.worker(store, consumer: "expiry", handler: handled.once { seen.record($0) })
            try await withRunning(worker) {
                try await Self.drain(store, consumer: "expiry", total: 1)
            }
            let message = try #require(seen.events.first)
            #expect(try await handled.contains(message))
            try await waitUntil("the entry expired", timeout: .seconds(10)) {
                try await !handled.contains(message)
            }
        }
    }

    /// Ids that are not valid key tokens are escaped (two ids never share a key); overlong ones
    /// fall back to stream and sequence.
    @Test func hostileIDsGetKeysOfTheirOwn() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            let handled = try await store.handledMessages("hostile ids: *>.")
            let effects = Recorder<Int>()
            let ids = ["a.b", "a=2eb", "*", ">", "a b", "ünï", String(repeating: "x", count: 2_000), "a..b", "."]
            let messages = ids.enumerated().map {
                OutgoingMessage(Counter(value: $0.offset), to: "orders.1", id: $0.element)
            }
            for result in await store.publish(contentsOf: messages) { _ = try result.get() }
            let worker = try Self.worker(
                store,
                consumer: "hostile",
                handler: handled.once { effects.record($0.data.value) }
            )
            try await withRunning(worker) {
                try await effects.wait(forCount: ids.count)
                try await Self.drain(store, consumer: "hostile", total: ids.count)
            }
            #expect(effects.events.sorted() == Array(0..<ids.count))
            let keys = Set(ids.map { HandledMessages.key(id: $0, stream: "s", sequence: 1) })
            #expect(keys.count == ids.count)
            #expect(HandledMessages.key(id: ids[6], stream: "s", sequence: 7) == "seq.s.7")
            #expect(HandledMessages.key(id: "", stream: "s", sequence: 7) == "seq.s.7")
        }
    }

    @Test func invalidRecordsAreRefused() async throws {
        try await withStore { store, _ in
            let invalid: [(String, Duration, Int)] = [
                ("", .seconds(60), 1), ("r", .milliseconds(500), 1), ("r", .seconds(60), 0),
            ]
            for (name, retention, replicas) in invalid {
                let error = await #expect(throws: MessageStoreError.self) {
                    _ = try await store.handledMessages(name, retention: retention, replicas: replicas)
                }
                #expect(error?.code == .invalidConfiguration)
            }
        }
    }
}

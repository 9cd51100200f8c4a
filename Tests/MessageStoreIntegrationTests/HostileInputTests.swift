import Foundation
import MessageStoreTestSupport
import MessageStoreTesting
import Testing

@testable import MessageStore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A careless caller: what the API is given is checked before anything is sent.
@Suite("Hostile input: the caller's side", .serverRequired)
struct CallerInputTests {
    // MARK: Headers and message ids

    @Test(arguments: [
        "X-Trace\r\nNats-Expected-Last-Sequence", "X-Trace\nInjected", "X\rY", "with:colon", "with space",
        "nul\u{0}name", "", "tab\tname", "caf\u{e9}",
    ])
    func headerNamesThatWouldBreakTheirLineAreRefused(name: String) async throws {
        try await withStore { store, _ in
            let stream = try await store.ensureStream("orders")
            let awaited = await #expect(throws: MessageStoreError.self) {
                try await store.publish(
                    Counter(value: 1),
                    to: "orders.1",
                    headers: MessageHeaders([.init(name: name, value: "v")])
                )
            }
            #expect(awaited?.code == .invalidHeader)
            #expect(awaited?.subject == "orders.1")
            let results = await store.publish(contentsOf: [
                OutgoingMessage(
                    Counter(value: 2),
                    to: "orders.2",
                    headers: MessageHeaders([.init(name: name, value: "v")])
                )
            ])
            #expect(throws: MessageStoreError.self) { try results[0].get() }
            if case .failure(let error) = results[0] { #expect(error.code == .invalidHeader) }
            #expect(try await store.streamDescription(named: stream.name).messages == 0)
        }
    }

    @Test(arguments: ["line\r\nNats-Expected-Stream: other", "cr\rhere", "lf\nhere", "nul\u{0}cut"])
    func headerValuesWithCRLFOrNULAreRefusedNotRewritten(value: String) async throws {
        try await withStore { store, _ in
            let stream = try await store.ensureStream("orders")
            let error = await #expect(throws: MessageStoreError.self) {
                try await store.publish(Counter(value: 1), to: "orders.1", headers: ["X-Note": value])
            }
            #expect(error?.code == .invalidHeader)
            #expect(try await store.streamDescription(named: stream.name).messages == 0)
        }
    }

    @Test func messageIDsWithCRLFOrNULAreRefusedNotTruncated() async throws {
        try await withStore { store, _ in
            let stream = try await store.ensureStream("orders")
            // Before: "a\0x" and "a\0y" reached the server as "a" and were de-duplicated into one.
            for id in ["a\u{0}x", "a\u{0}y", "line\nbreak", "cr\rhere", ""] {
                let error = await #expect(throws: MessageStoreError.self) {
                    try await store.publish(Counter(value: 1), to: "orders.1", id: id)
                }
                #expect(error?.code == .invalidMessageID, "id \(id.debugDescription)")
                let results = await store.publish(contentsOf: [
                    OutgoingMessage(Counter(value: 1), to: "orders.1", id: id)
                ])
                if case .failure(let error) = results[0] {
                    #expect(error.code == .invalidMessageID)
                } else {
                    Issue.record("pipelined id \(id.debugDescription) was sent")
                }
            }
            #expect(try await store.streamDescription(named: stream.name).messages == 0)
            // Ordinary ids and header values (spaces, tabs, UTF-8) still travel unchanged.
            try await store.publish(Counter(value: 1), to: "orders.1", id: "order 1 ü", headers: ["X-Note": "a\tb ü"])
            let stored = try #require(try await store.lastMessage(on: "orders.1"))
            #expect(stored.headers[MessageHeaderName.messageID] == "order 1 ü")
            #expect(stored.headers["X-Note"] == "a\tb ü")
        }
    }

    // MARK: Subject length

    @Test func aSubjectLongerThanTheControlLineIsRefusedAndTheConnectionGoesOn() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            let long = "orders." + String(repeating: "x", count: 5_000)
            let error = await #expect(throws: MessageStoreError.self) {
                try await store.publish(Counter(value: 1), to: long, timeout: .seconds(2))
            }
            #expect(error?.code == .invalidSubject)
            #expect(error?.message.contains("5") == true)
            #expect((error?.message.utf8.count ?? .max) < 400, "the error does not repeat 5 KB of subject")
            let results = await store.publish(contentsOf: [OutgoingMessage(Counter(value: 2), to: long)])
            if case .failure(let error) = results[0] {
                #expect(error.code == .invalidSubject)
            } else {
                Issue.record("the long subject was sent")
            }
            // The connection still works, for awaited and pipelined publishes alike.
            let ack = try await store.publish(Counter(value: 3), to: "orders.1", timeout: .seconds(2))
            #expect(ack.sequence == 1)
            let more = await store.publish(contentsOf: [OutgoingMessage(Counter(value: 4), to: "orders.2")])
            #expect(try more[0].get().sequence == 2)
            #expect(!store.connection.isClosed)
        }
    }

    // MARK: Configuration values

    @Test func publishRetryBackoffIsCheckedAtCreationAndSaturates() async throws {
        let infinite = MessageStore.Configuration.PublishRetryPolicy(
            maxAttempts: 3,
            schedule: .exponential(initial: .milliseconds(250), multiplier: .infinity, maximum: .seconds(1))
        )
        // Pauses saturate at the schedule's maximum (1 s by default), whatever the growth or the attempt.
        #expect(infinite.delay(afterAttempt: 2) == .seconds(1))
        #expect(MessageStore.Configuration.PublishRetryPolicy().delay(afterAttempt: 3) == .seconds(1))
        #expect(MessageStore.Configuration.PublishRetryPolicy().delay(afterAttempt: .max) == .seconds(1))
        let slow = MessageStore.Configuration.PublishRetryPolicy(
            maxAttempts: 3,
            schedule: .exponential(initial: .seconds(1), multiplier: 1, maximum: .seconds(2))
        )
        #expect(slow.delay(afterAttempt: .max) == .seconds(1))
        try await NATSTestServer.withServer { server in
            let connection = try await NATSConnection.connect(.init(url: server.url), logger: testLogger)
            for backoff in [
                infinite,
                .init(
                    maxAttempts: 3,
                    schedule: .exponential(initial: .milliseconds(250), multiplier: .nan, maximum: .seconds(1))
                ),
                .init(
                    maxAttempts: 3,
                    schedule: .exponential(initial: .seconds(-1), multiplier: 2, maximum: .seconds(1))
                ),
                .init(
                    maxAttempts: 0,
                    schedule: .exponential(initial: .seconds(1), multiplier: 2, maximum: .seconds(1))
                ),
                .init(
                    maxAttempts: 3,
                    schedule: .exponential(initial: .seconds(Int64.max), multiplier: 2, maximum: .seconds(1))
                ),
                .init(
                    maxAttempts: 3,
                    schedule: .exponential(initial: .zero, multiplier: 2, maximum: .seconds(Int64.max))
                ),
            ] {
                var configuration = MessageStore.Configuration(prefix: "p")
                configuration.publishRetry = backoff
                let error = #expect(throws: MessageStoreError.self) {
                    try MessageStore(connection: connection, configuration: configuration)
                }
                #expect(error?.code == .invalidConfiguration)
            }
            var configuration = MessageStore.Configuration(prefix: "p")
            configuration.publishTimeout = .seconds(-1)
            #expect(throws: MessageStoreError.self) {
                try MessageStore(connection: connection, configuration: configuration)
            }
            await connection.close()
        }
    }

    // MARK: Prefixes

    @Test func prefixWithADotNoLongerReusesAnotherTenantsStream() async throws {
        try await withStore { store, _ in
            // Tenant store.prefix owns category "x": its stream covers <prefix>.x.>.
            try await store.ensureStream("x")
            let error = #expect(throws: MessageStoreError.self) {
                try MessageStore(connection: store.connection, prefix: "\(store.prefix).x", createMissingStreams: true)
            }
            #expect(error?.code == .invalidConfiguration)
        }
    }
}

/// A careful wait: cancellation ends it at once.
@Suite("Hostile input: waits and cancellation", .serverRequired)
struct CancellationTests {
    @Test func waitForEndsPromptlyWhenItsTaskIsCancelled() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            let clock = ContinuousClock()
            let task = Task { () async throws -> StoredMessage in
                try await store.waitFor("orders.event.1", timeout: .seconds(3_600))
            }
            try await Task.sleep(for: .milliseconds(200))
            let start = clock.now
            task.cancel()
            let result = await task.result
            let took = clock.now - start
            #expect(took < .milliseconds(1_500), "waitFor took \(took) after cancellation")
            guard case .failure(let error) = result else {
                Issue.record("waitFor returned a message")
                return
            }
            #expect((error as? MessageStoreError)?.code == .cancelled, "\(error)")
            // Nothing is left behind on the server.
            try await waitUntil("the wait's consumer is deleted") {
                try await store.streamDescription(named: "\(store.prefix)-orders").consumerCount == 0
            }
        }
    }

    @Test func typedWaitForAndAnAlreadyCancelledTask() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            let task = Task { () async throws -> DecodedMessage<Counter> in
                withUnsafeCurrentTask { $0?.cancel() }
                return try await store.waitFor("orders.event.1", as: Counter.self, timeout: .seconds(3_600))
            }
            let took = await elapsed { _ = await task.result }
            #expect(took < .seconds(2))
            let result = await task.result
            let error = #expect(throws: MessageStoreError.self) { try result.get() }
            #expect(error?.code == .cancelled)
            // It asked the server for nothing: no consumer was made for it.
            #expect(try await store.streamDescription(named: "\(store.prefix)-orders").consumerCount == 0)
        }
    }

    @Test func aFollowingReadEndsWhenItsTaskIsCancelled() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            try await store.publish(Counter(value: 1), to: "orders.1")
            let task = Task { () async throws -> Int in
                var count = 0
                for try await _ in store.messages(on: "orders.>", follow: true) { count += 1 }
                return count
            }
            try await Task.sleep(for: .milliseconds(300))
            let took = await elapsed {
                task.cancel()
                _ = await task.result
            }
            #expect(took < .seconds(1))
            _ = await task.result
        }
    }
}

/// A hostile peer: what it stores is handled, not mistaken for the server's own messages.
@Suite("Hostile input: status-line look-alikes", .serverRequired)
struct StatusLookAlikeTests {
    /// A stored message with an empty body whose header block is `NATS/1.0 404 …`: cnats' fetch
    /// took it for the server's "no messages" status and ended the read there. (A worker's
    /// handling of every look-alike is in DeadLetterHardeningTests.)
    @Test func aStoredNoMessagesLookAlikeDoesNotEndAReadEarly() async throws {
        try await withStore { store, server in
            try await store.ensureStream("orders")
            try await store.publish(Counter(value: 1), to: "orders.1")
            try await RawNATSPeer.publish(
                port: server.port,
                subject: "\(store.prefix).orders.2",
                headerBlock: "NATS/1.0 404 No Messages\r\n\r\n",
                body: []
            )
            // The PONG says the server read the message; the stream stores it a moment later.
            try await waitUntil("the peer's message is stored") {
                try await store.streamDescription(named: "\(store.prefix)-orders").messages == 2
            }
            try await store.publish(Counter(value: 3), to: "orders.3")
            #expect(try await store.streamDescription(named: "\(store.prefix)-orders").messages == 3)
            var sequences: [UInt64] = []
            for try await message in store.rawMessages(on: "orders.>") { sequences.append(message.sequence) }
            #expect(sequences == [1, 2, 3])
        }
    }
}

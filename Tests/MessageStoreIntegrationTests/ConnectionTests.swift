import Foundation
import MessageStoreTestSupport
import MessageStoreTesting
import Testing

@testable import MessageStore

@Suite("Connection", .serverRequired)
struct ConnectionTests {
    @Test func userAndPasswordAuthentication() async throws {
        try await NATSTestServer.withServer(extraArguments: ["--user", "app", "--pass", "s3cret"]) { server in
            var configuration = NATSConnection.Configuration(url: server.url)
            configuration.authentication = .userPassword(user: "app", password: "wrong")
            let refused = await #expect(throws: MessageStoreError.self) {
                try await NATSConnection.connect(configuration, logger: testLogger)
            }
            #expect(refused?.code == .authenticationFailed)

            configuration.authentication = .userPassword(user: "app", password: "s3cret")
            let connection = try await NATSConnection.connect(configuration, logger: testLogger)
            let store = try MessageStore(connection: connection, prefix: uniquePrefix(), createMissingStreams: true)
            try await store.ensureStream("orders")
            #expect(try await store.publish(Counter(value: 1), to: "orders.1").sequence == 1)
            await connection.close()
        }
    }

    @Test func tokenAuthentication() async throws {
        try await NATSTestServer.withServer(extraArguments: ["--auth", "t0ken"]) { server in
            var configuration = NATSConnection.Configuration(url: server.url)
            let refused = await #expect(throws: MessageStoreError.self) {
                try await NATSConnection.connect(configuration, logger: testLogger)
            }
            #expect(refused?.code == .authenticationFailed)
            configuration.authentication = .token("t0ken")
            let connection = try await NATSConnection.connect(configuration, logger: testLogger)
            #expect(connection.connectedURL?.contains(String(server.port)) == true)
            await connection.close()
        }
    }

    @Test func operationsAfterCloseFailWithConnectionClosed() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            await store.connection.close()
            await store.connection.close()  // harmless to repeat
            #expect(store.connection.isClosed)
            let error = await #expect(throws: MessageStoreError.self) {
                try await store.publish(Counter(value: 1), to: "orders.1")
            }
            #expect(error?.code == .connectionClosed)
            #expect(error?.subject == "orders.1")
            #expect(error?.message.hasPrefix("publishing") == true)
            let pipelined = await store.publish(contentsOf: [OutgoingMessage(Counter(value: 1), to: "orders.1")])
            #expect(pipelined.first?.failure?.code == .connectionClosed)
            #expect(pipelined.first?.failure?.subject == "orders.1")
            #expect(pipelined.first?.failure?.message.hasPrefix("publishing") == true)
            let ensure = await #expect(throws: MessageStoreError.self) { try await store.ensureStream("orders") }
            #expect(ensure?.code == .connectionClosed)
        }
    }

    @Test func awaitedPublishesAndFetchesHaveAConnectionOfTheirOwn() async throws {
        try await withStore { store, _ in
            let prompt = try #require(store.connection.client.prompt)
            // A process that only consumes has no acknowledgement inbox (nor its threads).
            try await store.ensureStream("orders")
            #expect(prompt.inboxIfSubscribed == nil)
            try await store.publish(Counter(value: 1), to: "orders.1")
            #expect(prompt.inboxIfSubscribed != nil)
        }
    }

    @Test func messagesOfAwaitedPublishesAreDestroyedABatchAtATime() async throws {
        // cnats wakes its collector thread for every message destroyed while it sleeps, so the
        // messages of finished publishes are held and destroyed together: by count, by size,
        // and whatever is left when the connection closes. Sent messages and acknowledgements
        // are held apart, each batch by itself. A publish without headers is sent without a C
        // message of its own, so only its acknowledgement is held.
        try await withStore { store, _ in
            let prompt = try #require(store.connection.client.prompt)
            try await store.ensureStream("orders")
            let tagged: MessageHeaders = ["tag": "x"]
            let batch = MessageDisposal.defaultMaxCount
            for value in 1..<batch {
                try await store.publish(Counter(value: value), to: "orders.1", headers: tagged)
            }
            #expect(prompt.heldMessageCount == 2 * (batch - 1))
            try await store.publish(Counter(value: batch), to: "orders.1", headers: tagged)
            #expect(prompt.heldMessageCount == 0)

            try await store.publish(Counter(value: 1), to: "orders.1", headers: tagged)
            #expect(prompt.heldMessageCount == 2)
            // The large message fills its batch by size; its small acknowledgement does not.
            let large = String(repeating: "x", count: MessageDisposal.defaultMaxBytes)
            try await store.publish(Note(text: large), to: "orders.2", headers: tagged)
            #expect(prompt.heldMessageCount == 2)

            try await store.publish(Counter(value: 2), to: "orders.1")
            #expect(prompt.heldMessageCount == 3)
            await store.connection.client.close()
            #expect(prompt.heldMessageCount == 0)
        }
    }

    @Test func acknowledgementInboxesAreReleasedWhenTheConnectionCloses() async throws {
        // Each inbox is held by its subscription's completion callback and its timer thread;
        // closing the connection must end both, or every connection would leak its inbox.
        final class Weak: @unchecked Sendable {
            weak var inbox: AckInbox?
        }
        let pipelined = Weak()
        let awaited = Weak()
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            try await store.publish(Counter(value: 0), to: "orders.1")
            awaited.inbox = try #require(store.connection.client.prompt?.inboxIfSubscribed)
            pipelined.inbox = try store.connection.client.pipelineAcks()
            #expect(
                try await store.publish(contentsOf: [OutgoingMessage(Counter(value: 1), to: "orders.1")])[0].get()
                    .sequence == 2
            )
            #expect(pipelined.inbox != nil)
            #expect(awaited.inbox != nil)
            await store.connection.client.close()
            try await waitUntil("the pipelined inbox is released") { pipelined.inbox == nil }
            try await waitUntil("the awaited publishes' inbox is released") { awaited.inbox == nil }
        }
    }

    @Test func aServerThatAllowsOneConnectionStillServesEverything() async throws {
        // The second connection cannot open; awaited publishes and fetches then share the main one.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("one-connection-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let serverConfiguration = directory.appendingPathComponent("server.conf")
        try Data("max_connections: 1\n".utf8).write(to: serverConfiguration)
        try await NATSTestServer.withServer(extraArguments: ["-c", serverConfiguration.path]) { server in
            // The server may still count the test harness's readiness probe for a moment.
            let deadline = ContinuousClock.now + .seconds(5)
            var connection: NATSConnection?
            while connection == nil {
                do {
                    connection = try await NATSConnection.connect(.init(url: server.url), logger: testLogger)
                } catch  where ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
            let main = try #require(connection)
            let store = try MessageStore(
                connection: main,
                configuration: .init(prefix: uniquePrefix(), createMissingStreams: true),
                logger: testLogger
            )
            #expect(store.connection.client.prompt == nil)
            try await store.ensureStream("orders")
            let ack = try await store.publish(Counter(value: 1), to: "orders.1")
            #expect(ack.sequence == 1)
            let results = await store.publish(contentsOf: [OutgoingMessage(Counter(value: 2), to: "orders.1")])
            #expect(try results.first?.get().sequence == 2)
            let sum = try await store.fetch(
                "orders.1",
                projection: Projection(initial: 0).reducing(Counter.self) { total, event in total + event.data.value }
            )
            #expect(sum == 3)
            let handled = Recorder<Int>()
            let worker = try store.subscription(
                to: "orders.>",
                consumer: "one-connection",
                handlers: MessageHandlers().handling(Counter.self) { handled.record($0.data.value) }
            )
            try await withRunning(worker) {
                #expect(try await handled.wait(forCount: 2).sorted() == [1, 2])
                try await waitUntil("everything acknowledged") {
                    try await store.consumerInfo("one-connection", category: "orders").numAckPending == 0
                }
            }
            await main.close()
        }
    }

    @Test func serverGoingAwayTimesOutPublishesAndReconnectsWhenItReturns() async throws {
        try await withStore { store, server in
            try await store.ensureStream("orders")
            try await store.publish(Counter(value: 1), to: "orders.1")
            try await server.stop(keepingStore: true)

            let error = await #expect(throws: MessageStoreError.self) {
                try await store.publish(Counter(value: 2), to: "orders.1", timeout: .milliseconds(300))
            }
            #expect(error?.code == .publishTimedOut)
            #expect(error?.isRetriable == true)

            try await server.start()
            // The connection comes back on its own; the stream and its message survived.
            let deadline = ContinuousClock.now + .seconds(10)
            var ack: PublishAck?
            while ack == nil && ContinuousClock.now < deadline {
                ack = try? await store.publish(Counter(value: 3), to: "orders.1", timeout: .milliseconds(500))
            }
            let stored = try #require(ack)
            #expect(stored.stream == "\(store.prefix)-orders")
            #expect(stored.sequence >= 2)
            let last = try await store.lastMessage(on: "orders.1")
            #expect(try last?.decode(as: Counter.self) == Counter(value: 3))
        }
    }

    @Test func invalidPrefixIsRejected() async throws {
        try await withStore { store, _ in
            let error = #expect(throws: MessageStoreError.self) {
                try MessageStore(connection: store.connection, prefix: "has space")
            }
            #expect(error?.code == .invalidConfiguration)
        }
    }
}

private struct Note: MessagePayload {
    var text: String
}

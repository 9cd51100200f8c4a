import Foundation
import MessageStore
import MessageStoreTesting
import Testing

@Suite("Connection")
struct ConnectionTests {
    @Test func unreachableServerIsAConnectionError() async throws {
        let port = try NATSTestServer.freePort()
        var configuration = NATSConnection.Configuration(url: "nats://127.0.0.1:\(port)")
        configuration.connectTimeout = .milliseconds(500)
        var caught: MessageStoreError?
        let duration = await elapsed {
            do {
                _ = try await NATSConnection.connect(configuration, logger: testLogger)
            } catch {
                caught = error as? MessageStoreError
            }
        }
        let error = try #require(caught)
        #expect(error.code == .connectionFailed)
        #expect(error.message.contains("127.0.0.1:\(port)"))
        #expect(error.clientStatus != nil)
        #expect(duration < .seconds(5))
    }

    @Test func userAndPasswordAuthentication() async throws {
        try await NATSTestServer.withServer(extraArguments: ["--user", "app", "--pass", "s3cret"]) { server in
            var configuration = NATSConnection.Configuration(url: server.url)
            configuration.authentication = .userPassword(user: "app", password: "wrong")
            let refused = await #expect(throws: MessageStoreError.self) {
                try await NATSConnection.connect(configuration, logger: testLogger)
            }
            #expect(refused?.code == .connectionFailed)

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
            #expect(refused?.code == .connectionFailed)
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
            let pipelined = await store.publish(contentsOf: [OutgoingMessage(Counter(value: 1), to: "orders.1")])
            #expect(pipelined.first?.failure?.code == .connectionClosed)
            let ensure = await #expect(throws: MessageStoreError.self) { try await store.ensureStream("orders") }
            #expect(ensure?.code == .connectionClosed)
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

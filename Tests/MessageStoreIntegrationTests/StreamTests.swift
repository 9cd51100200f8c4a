import MessageStore
import MessageStoreTestSupport
import MessageStoreTesting
import Testing

@testable import MessageStore

@Suite("Streams", .serverRequired)
struct StreamTests {
    @Test func createsTheCategoryStreamWhenAllowed() async throws {
        try await withStore { store, _ in
            var options = StreamOptions()
            options.maxMessageSize = 2048
            options.storage = .memory
            options.duplicateWindow = .seconds(30)
            let stream = try await store.ensureStream("orders", options: options)
            #expect(stream.name == "\(store.prefix)-orders")
            #expect(stream.subjects == ["\(store.prefix).orders.>"])
            let config = try await store.jetStream.streamInfo(stream.name).config
            #expect(config.maxMsgSize == 2048)
            #expect(config.storage == "memory")
            #expect(config.duplicateWindow == 30_000_000_000)
            #expect(config.maxBytes == 1 << 30)
            #expect(config.numReplicas == 1)

            // A second call finds the same stream instead of creating another.
            let again = try await store.ensureStream("orders")
            #expect(again.name == stream.name)
            #expect(try await store.jetStream.streams(overlapping: nil).count == 1)
        }
    }

    @Test func reusesAnExistingStreamUnderAnotherName() async throws {
        try await withStore { store, _ in
            _ = try await store.jetStream.createStream(
                .init(name: "shared-by-someone-else", subjects: ["\(store.prefix).>"])
            )
            let stream = try await store.ensureStream("orders")
            #expect(stream.name == "shared-by-someone-else")
            let names = try await store.jetStream.streams(overlapping: nil).map(\.config.name)
            #expect(names == ["shared-by-someone-else"])
            let ack = try await store.publish(Counter(value: 1), to: "orders.1")
            #expect(ack.stream == "shared-by-someone-else")
        }
    }

    @Test func aStreamThatOnlyOverlapsDoesNotCount() async throws {
        try await withStore(createMissingStreams: false) { store, _ in
            _ = try await store.jetStream.createStream(
                .init(name: "special-orders", subjects: ["\(store.prefix).orders.special"])
            )
            let error = await #expect(throws: MessageStoreError.self) { try await store.ensureStream("orders") }
            #expect(error?.code == .streamNotFound)
        }
    }

    @Test func missingStreamWithoutPermissionNamesTheStreamToCreate() async throws {
        try await withStore(createMissingStreams: false) { store, _ in
            let error = await #expect(throws: MessageStoreError.self) { try await store.ensureStream("orders") }
            #expect(error?.code == .streamNotFound)
            #expect(error?.stream == "\(store.prefix)-orders")
            #expect(error?.message.contains("\(store.prefix)-orders") == true)
            #expect(error?.message.contains("\(store.prefix).orders.>") == true)
            let streams = try await store.jetStream.streams(overlapping: nil)
            #expect(streams.isEmpty)
        }
    }

    @Test func invalidCategoryIsRejectedBeforeAnythingIsSent() async throws {
        try await withStore { store, _ in
            let error = await #expect(throws: MessageStoreError.self) { try await store.ensureStream("orders.x") }
            #expect(error?.code == .invalidSubject)
            let streams = try await store.jetStream.streams(overlapping: nil)
            #expect(streams.isEmpty)
        }
    }

    @Test func replicasBeyondTheServerAreAServerError() async throws {
        try await withStore { store, _ in
            var options = StreamOptions()
            options.replicas = 3
            let error = await #expect(throws: MessageStoreError.self) {
                try await store.ensureStream("orders", options: options)
            }
            #expect(error?.code == .serverError)
            #expect(error?.jetStreamErrorCode != nil)
        }
    }

    @Test func emptyPrefixUsesBareNames() async throws {
        try await NATSTestServer.withServer { server in
            let connection = try await NATSConnection.connect(.init(url: server.url), logger: testLogger)
            let store = try MessageStore(
                connection: connection,
                prefix: "",
                createMissingStreams: true,
                logger: testLogger
            )
            let stream = try await store.ensureStream("orders")
            #expect(stream.name == "orders")
            #expect(stream.subjects == ["orders.>"])
            await connection.close()
        }
    }
}

import Foundation
import MessageStore
import MessageStoreTestSupport
import MessageStoreTesting
import Testing

@testable import MessageStore

/// A store configured with `BodyCoding.foundation` works as the default one does: what one
/// writes the other reads, workers dispatch, folds fold, and duplicate keys are still refused.
@Suite("Body coding", .serverRequired)
struct BodyCodingTests {
    @Test func foundationCodingPublishesReadsAndDispatchesLikeTheFastCoders() async throws {
        try await withStore(configure: { $0.bodyCoding = .foundation }) { foundationStore, server in
            #expect(foundationStore.configuration.bodyCoding == .foundation)
            try await foundationStore.ensureStream("orders")
            var metadata = MessageMetadata(originSubject: "orders.command.1")
            metadata.traceId = "trace-1"
            metadata.additionalFields["tenant"] = .string("acme")
            try await foundationStore.publish(
                OrderPlaced(orderId: "1", amount: 10),
                to: "orders.event.1",
                metadata: metadata
            )

            // The default store, on the same stream, reads what the Foundation one wrote, and the
            // bodies are the same bytes but for the order of the metadata's members.
            let fastConnection = try await NATSConnection.connect(
                NATSConnection.Configuration(url: server.url),
                logger: testLogger
            )
            let fastStore = try MessageStore(
                connection: fastConnection,
                configuration: MessageStore.Configuration(prefix: foundationStore.prefix),
                logger: testLogger
            )
            #expect(fastStore.configuration.bodyCoding == .fast)
            try await fastStore.publish(OrderPlaced(orderId: "2", amount: 20), to: "orders.event.2", metadata: metadata)
            for store in [foundationStore, fastStore] {
                let first = try #require(try await store.lastMessage(on: "orders.event.1"))
                let second = try #require(try await store.lastMessage(on: "orders.event.2"))
                #expect(first.bodyCoding == store.configuration.bodyCoding)
                #expect(try first.decode(as: OrderPlaced.self) == OrderPlaced(orderId: "1", amount: 10))
                #expect(try second.decode(as: OrderPlaced.self) == OrderPlaced(orderId: "2", amount: 20))
                #expect(first.metadata == metadata)
                #expect(second.metadata == metadata)
                #expect(try first.data == .object(["orderId": .string("1"), "amount": .int(10)]))
            }
            await fastConnection.close()

            // A fold and a worker of the Foundation store.
            let total = Projection(initial: 0).reducing(OrderPlaced.self) { sum, event in sum + event.data.amount }
            #expect(try await foundationStore.fetch("orders.event.*", projection: total) == 30)
            let deliveries = Recorder<Delivery>()
            let handlers = MessageHandlers().handling(OrderPlaced.self) { deliveries.record(Delivery($0)) }
            let worker = try foundationStore.subscription(to: "orders.>", consumer: "foundation", handlers: handlers)
            try await withRunning(worker) {
                let events = try await deliveries.wait(forCount: 2)
                #expect(events.map(\.subject).sorted() == ["orders.event.1", "orders.event.2"])
            }
        }
    }

    @Test func foundationCodingStillRefusesDuplicateKeys() async throws {
        try await withStore(configure: { $0.bodyCoding = .foundation }) { store, _ in
            try await store.ensureStream("orders")
            _ = try await store.publishRaw(
                #"{"type":"OrderPlaced","type":"Other","data":{"orderId":"1","amount":1}}"#,
                to: "orders.event.1"
            )
            let error = await #expect(throws: MessageStoreError.self) {
                _ = try await store.lastMessage(on: "orders.event.1")
            }
            #expect(error?.code == .decodingFailed)
            #expect(error?.message.contains("appears twice") == true)
        }
    }
}

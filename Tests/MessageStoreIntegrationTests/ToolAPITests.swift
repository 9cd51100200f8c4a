import Foundation
import MessageStore
import MessageStoreTestSupport
import Testing

@testable import MessageStore

@Suite("APIs for tools", .serverRequired)
struct ToolAPITests {
    @Test func streamsAndConsumersUnderThePrefix() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            try await store.ensureStream("payments")
            _ = try await store.jetStream.createStream(.init(name: "elsewhere", subjects: ["other.>"]))
            try await store.publish(Counter(value: 1), to: "orders.1")
            let streams = try await store.streams()
            #expect(Set(streams.map(\.name)) == ["\(store.prefix)-orders", "\(store.prefix)-payments"])
            #expect(streams.first { $0.name == "\(store.prefix)-orders" }?.messages == 1)

            let worker = try store.subscription(to: "orders.>", consumer: "w", handlers: MessageHandlers())
            try await withRunning(worker) {}
            let consumers = try await store.consumers(of: "orders")
            #expect(consumers.map(\.name) == ["w"])
            #expect(consumers.first?.stream == "\(store.prefix)-orders")
            #expect(consumers.first?.filter == "\(store.prefix).orders.>")
            #expect(consumers.first?.maxDeliver == 3 + 20)
            await #expect(throws: MessageStoreError.self) { try await store.consumers(of: "nothing") }
        }
    }

    @Test func untypedAndRawPublishing() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            let ack = try await store.publish(
                type: "OrderPlaced",
                data: ["orderId": "9", "amount": 2],
                to: "orders.9",
                id: "x"
            )
            let stored = try #require(try await store.lastMessage(on: "orders.9"))
            #expect(stored.sequence == ack.sequence)
            #expect(try stored.decode(as: OrderPlaced.self) == OrderPlaced(orderId: "9", amount: 2))
            let notObject = await #expect(throws: MessageStoreError.self) {
                try await store.publish(type: "X", data: [1, 2], to: "orders.9")
            }
            #expect(notObject?.code == .encodingFailed)

            try await store.publish(rawBody: stored.body, to: "orders.10", headers: ["A": "b"])
            let copy = try #require(try await store.lastMessage(on: "orders.10"))
            #expect(copy.body == stored.body)
            #expect(copy.headers["A"] == "b")
        }
    }

    @Test func followingReadSeesNewMessagesUntilCancelled() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("log")
            try await store.publish(Counter(value: 1), to: "log.a")
            let seen = Recorder<Int>()
            let tail = Task {
                for try await message in store.messages(on: "log.>", follow: true) {
                    seen.record(try message.decode(as: Counter.self).value)
                }
            }
            try await seen.wait(forCount: 1)
            try await store.publish(Counter(value: 2), to: "log.a")
            try await store.publish(Counter(value: 3), to: "log.b")
            try await seen.wait(forCount: 3)
            let stopping = try await elapsed {
                tail.cancel()
                try await tail.value
            }
            #expect(stopping < .seconds(2), "cancelling a following read took \(stopping)")
            #expect(try await store.streamDescription(named: "\(store.prefix)-log").consumerCount == 0)
            #expect(seen.events == [1, 2, 3])
        }
    }
}

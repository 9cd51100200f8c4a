import MessageStoreTestSupport
import MessageStoreTesting
import Testing

@testable import MessageStore

@Suite("Progress reports", .serverRequired)
struct ProgressThreadTests {
    @Test func subscriptionsOfAConnectionShareOneProgressThread() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            let progress = store.jetStream.progressThread
            var fast = Subscription.Configuration()
            fast.ackWait = .seconds(2)
            let slow = Subscription.Configuration()
            let handled = Recorder<Counter>()
            let first = try store.subscription(
                to: "orders.a.>",
                consumer: "first",
                handlers: MessageHandlers().handling(Counter.self) { handled.record($0.data) },
                configuration: fast
            )
            let second = try store.subscription(
                to: "orders.b.>",
                consumer: "second",
                handlers: MessageHandlers().handling(Counter.self) { handled.record($0.data) },
                configuration: slow
            )
            try await withRunning(first, second) {
                // Both running subscriptions are served by the connection's one progress thread.
                #expect(progress.reporterCount == 2)
                try await store.publish(Counter(value: 1), to: "orders.a.1")
                try await store.publish(Counter(value: 2), to: "orders.b.1")
                try await handled.wait(forCount: 2)
            }
            try await waitUntil("both reporters stopped") { progress.reporterCount == 0 }
        }
    }
}

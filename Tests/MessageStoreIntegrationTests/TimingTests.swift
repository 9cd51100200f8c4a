import Foundation
import MessageStore
import MessageStoreTestSupport
import MessageStoreTesting
import Testing

@testable import MessageStore

/// Tests that measure latency on the cooperative thread pool. They only mean something when
/// nothing else runs, so scripts/test.sh runs them alone after the parallel suite
/// (`MESSAGE_STORE_TIMING_TESTS=1 swift test --filter TimingTests`).
@Suite(
    "Timing (run alone)",
    .serverRequired,
    .serialized,
    .enabled(if: ProcessInfo.processInfo.environment["MESSAGE_STORE_TIMING_TESTS"] == "1")
)
struct TimingTests {
    @Test func idleSubscriptionsDoNotBlockTheCooperativePool() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("idle")
            var configuration = Subscription.Configuration()
            configuration.idlePollInterval = .seconds(5)
            let workers = try (1...10).map { index in
                try store.subscription(
                    to: "idle.>",
                    consumer: "idle-\(index)",
                    handlers: MessageHandlers().handling(Counter.self) { _ in },
                    configuration: configuration
                )
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in workers {
                    group.addTask { try await worker.run() }
                }
                try await waitUntil("ten consumers") {
                    try await store.streamDescription(named: "\(store.prefix)-idle").consumerCount == 10
                }
                for _ in 1...5 {
                    let slept = await elapsed { try? await Task.sleep(for: .milliseconds(50)) }
                    #expect(slept < .milliseconds(150), "a 50 ms sleep took \(slept)")
                }
                for worker in workers { worker.stop() }
                try await group.waitForAll()
            }
        }
    }

    @Test func progressIsReportedWhileHandlersKeepEveryPoolThreadBusy() async throws {
        // Handlers doing synchronous work (here: blocking their thread) longer than ackWait, as
        // many at once as the cooperative pool has threads. Nothing else can run on the pool
        // meanwhile, and the server must still hear that the messages are being worked on.
        let width = ProcessInfo.processInfo.activeProcessorCount
        try await withStore { store, _ in
            try await store.ensureStream("busy")
            let deliveries = Recorder<Delivery>()
            let handlers = MessageHandlers().handling(Counter.self) { message in
                deliveries.record(Delivery(message))
                usleep(2_500_000)
            }
            var configuration = Subscription.Configuration()
            configuration.ackWait = .seconds(1)
            configuration.maxConcurrentHandlers = width
            let worker = try store.subscription(
                to: "busy.>",
                consumer: "busy",
                handlers: handlers,
                configuration: configuration
            )
            for value in 1...width {
                try await store.publish(Counter(value: value), to: "busy.\(value)")
            }
            try await withRunning(worker) {
                try await waitUntil("all acknowledged", timeout: .seconds(15)) {
                    let info = try await store.consumerInfo("busy", category: "busy")
                    return info.numAckPending == 0 && info.ackFloor.streamSeq == UInt64(width)
                }
            }
            #expect(
                deliveries.events.count == width,
                "redelivered while the handlers ran: \(deliveries.events.map(\.attempt))"
            )
        }
    }
}

import Foundation
import MessageStoreTestSupport
import MessageStoreTesting
import ServiceLifecycle
import Testing

@testable import MessageStore

@Suite("Connection as a service", .serverRequired)
struct ConnectionServiceTests {
    /// Listed before the worker in a ServiceGroup, the connection closes only after the worker
    /// finished the message in hand, so its handler can still publish and its ack still goes out.
    @Test func closesAfterTheSubscriptionsOfItsGroupStopped() async throws {
        try await NATSTestServer.withServer { server in
            let connection = try await NATSConnection.connect(.init(url: server.url), logger: testLogger)
            let store = try MessageStore(connection: connection, prefix: uniquePrefix(), createMissingStreams: true)
            try await store.ensureStream("jobs")
            try await store.ensureStream("results")
            let started = Recorder<UInt64>()
            let release = Recorder<Int>()
            let outcomes = Recorder<String>()
            let worker = try store.subscription(
                to: "jobs.>",
                consumer: "service",
                handlers: MessageHandlers().handling(Counter.self) { message in
                    started.record(message.sequence)
                    try await release.wait(forCount: 1)
                    do {
                        try await store.publish(Counter(value: message.data.value), to: "results.1")
                        outcomes.record("published")
                    } catch {
                        outcomes.record("\(error)")
                    }
                }
            )
            try await store.publish(Counter(value: 7), to: "jobs.1")
            let group = ServiceGroup(
                configuration: .init(
                    services: [.init(service: connection), .init(service: worker)],
                    logger: testLogger
                )
            )
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                try await started.wait(forCount: 1)
                await group.triggerGracefulShutdown()
                #expect(!connection.isClosed)
                release.record(1)
                try await tasks.waitForAll()
            }
            #expect(outcomes.events == ["published"])
            #expect(connection.isClosed)

            let reader = try await NATSConnection.connect(.init(url: server.url), logger: testLogger)
            let check = try MessageStore(connection: reader, prefix: store.naming.prefix)
            #expect(try await check.lastMessage(on: "results.1")?.decode(as: Counter.self).value == 7)
            try await waitUntil("the job acknowledged", timeout: .seconds(5)) {
                try await check.consumerInfo("service", category: "jobs").ackFloor.streamSeq >= 1
            }
            await reader.close()
        }
    }
}

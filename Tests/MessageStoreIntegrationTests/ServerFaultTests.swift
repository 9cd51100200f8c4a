import Foundation
import MessageStoreTestSupport
import MessageStoreTesting
import Testing

@testable import MessageStore

/// The server killed (SIGKILL) or frozen (SIGSTOP) under load: what was reported stored is stored,
/// workers resume by themselves, nothing is lost. Counted by reading the stream back.
@Suite("Server crashes and freezes", .serverRequired)
struct ServerFaultTests {
    /// Every message on `subject`, read back by an ordered consumer: sequence → value.
    func storedValues(_ store: MessageStore, on subject: String) async throws -> [UInt64: Int] {
        var values: [UInt64: Int] = [:]
        for try await message in store.messages(on: subject) {
            values[message.sequence] = try message.decode(as: Counter.self).value
        }
        return values
    }

    @Test func aServerKilledDuringAPipelinedBatchKeepsEveryMessageItAcknowledged() async throws {
        try await withStore { store, server in
            try await store.ensureStream("bulk")
            let total = 50_000
            let batch = (1...total).map { OutgoingMessage(Counter(value: $0), to: "bulk.items") }
            let publishing = Task { await store.publish(contentsOf: batch) }
            try await waitUntil("a fifth of the batch stored", timeout: .seconds(60)) {
                try await store.jetStream.streamInfo("\(store.prefix)-bulk").state.messages >= UInt64(total / 5)
            }
            await server.crash()
            try await server.start()
            let results = await publishing.value

            var acknowledged: [UInt64: Int] = [:]
            var failures = 0
            for (index, result) in results.enumerated() {
                switch result {
                case .success(let ack): acknowledged[ack.sequence] = index + 1
                case .failure: failures += 1
                }
            }
            // The connection comes back by itself and takes publishes again.
            var after: PublishAck?
            try await waitUntil("a publish after the restart", timeout: .seconds(30)) {
                after = try? await store.publish(Counter(value: -1), to: "bulk.items")
                return after != nil
            }
            let stored = try await storedValues(store, on: "bulk.items")
            let missing = acknowledged.filter { stored[$0.key] != $0.value }
            print(
                "server killed during a pipelined batch: \(acknowledged.count) acknowledged, \(failures) failed, \(stored.count - 1) stored"
            )
            #expect(results.count == total)
            #expect(missing.isEmpty, "acknowledged but not stored as acknowledged: \(missing.count)")
            #expect(acknowledged.count >= total / 5)
            #expect(stored[after?.sequence ?? 0] == -1)
        }
    }

    @Test func aServerKilledDuringConsumptionLosesNothingAndTheWorkerResumes() async throws {
        try await withStore { store, server in
            try await store.ensureStream("bulk")
            let total = 20_000
            for result in await store.publish(
                contentsOf: (1...total).map { OutgoingMessage(Counter(value: $0), to: "bulk.\($0)") }
            ) {
                _ = try result.get()
            }
            let handled = Recorder<UInt64>()
            var configuration = Subscription.Configuration()
            configuration.ackWait = .seconds(2)
            let worker = try store.subscription(
                to: "bulk.>",
                consumer: "resilient",
                handlers: MessageHandlers().handling(Counter.self) { handled.record($0.sequence) },
                configuration: configuration
            )
            try await withRunning(worker) {
                try await handled.wait(forCount: total / 4, timeout: .seconds(60))
                await server.crash()
                try await server.start()
                try await handled.wait(forDistinct: total, "every message", timeout: .seconds(90))
                try await waitUntil("everything acknowledged", timeout: .seconds(30)) {
                    let info = try await store.consumerInfo("resilient", category: "bulk")
                    return info.numAckPending == 0 && info.numPending == 0
                }
            }
            let all = handled.events
            print("server killed during consumption: \(total) handled, \(all.count - Set(all).count) twice")
            #expect(Set(all) == Set(1...UInt64(total)))
        }
    }

    @Test func aServerFrozenBeyondTheAckWaitLosesNothingAndTheWorkerGoesOn() async throws {
        try await withStore { store, server in
            try await store.ensureStream("bulk")
            let total = 2_000
            for result in await store.publish(
                contentsOf: (1...total).map { OutgoingMessage(Counter(value: $0), to: "bulk.\($0)") }
            ) {
                _ = try result.get()
            }
            let handled = Recorder<UInt64>()
            var configuration = Subscription.Configuration()
            configuration.ackWait = .seconds(1)
            configuration.deadLetterSubject = "dlq"
            let worker = try store.subscription(
                to: "bulk.>",
                consumer: "patient",
                handlers: MessageHandlers().handling(Counter.self) { message in
                    handled.record(message.sequence)
                    try await Task.sleep(for: .milliseconds(1))
                },
                configuration: configuration
            )
            try await withRunning(worker) {
                try await handled.wait(forCount: 300, timeout: .seconds(30))
                server.freeze()
                // Three ack waits with the server answering nothing.
                try await Task.sleep(for: .seconds(3))
                server.thaw()
                try await handled.wait(forDistinct: total, "every message", timeout: .seconds(60))
                try await waitUntil("everything acknowledged", timeout: .seconds(30)) {
                    let info = try await store.consumerInfo("patient", category: "bulk")
                    return info.numAckPending == 0 && info.numPending == 0
                }
            }
            let all = handled.events
            let twice = all.count - Set(all).count
            print("server frozen 3 s: \(total) handled, \(twice) twice")
            #expect(Set(all) == Set(1...UInt64(total)))
            var letters = 0
            for try await _ in store.rawMessages(on: "dlq.>") { letters += 1 }
            #expect(letters == 0, "healthy messages dead-lettered: \(letters)")
        }
    }
}

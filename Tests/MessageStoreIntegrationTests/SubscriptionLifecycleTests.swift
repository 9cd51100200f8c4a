import Foundation
import Logging
import MessageStore
import MessageStoreTestSupport
import MessageStoreTesting
import ServiceLifecycle
import Synchronization
import Testing

@testable import MessageStore

@Suite("Subscription lifecycle and resilience", .serverRequired)
struct SubscriptionLifecycleTests {
    @Test func slowHandlerIsNotRedeliveredWhileItRuns() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("jobs")
            let deliveries = Recorder<Delivery>()
            let handlers = MessageHandlers().handling(Counter.self) { message in
                deliveries.record(Delivery(message))
                try await Task.sleep(for: .milliseconds(3_000))
            }
            var configuration = Subscription.Configuration()
            configuration.ackWait = .seconds(1)
            // Two workers, so a redelivery would have somewhere to go.
            let first = try store.subscription(
                to: "jobs.>",
                consumer: "slow",
                handlers: handlers,
                configuration: configuration
            )
            let second = try store.subscription(
                to: "jobs.>",
                consumer: "slow",
                handlers: handlers,
                configuration: configuration
            )
            try await store.publish(Counter(value: 1), to: "jobs.1")
            try await withRunning(first, second) {
                try await deliveries.wait(forCount: 1)
                try await waitUntil("acknowledged", timeout: .seconds(10)) {
                    let info = try await store.consumerInfo("slow", category: "jobs")
                    return info.numAckPending == 0 && info.ackFloor.streamSeq == 1
                }
            }
            #expect(
                deliveries.events.count == 1,
                "redelivered while the handler ran: \(deliveries.events.map(\.attempt))"
            )
            let info = try await store.consumerInfo("slow", category: "jobs")
            // num_redelivered only counts messages still pending; a delivery counted twice shows here.
            #expect(info.delivered.consumerSeq == info.delivered.streamSeq, "a message was delivered more than once")
        }
    }

    @Test func workersOfOneConsumerShareMessagesAndConsumersEachSeeAll() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("work")
            let shared = Recorder<UInt64>()
            let separate = Recorder<UInt64>()
            func worker(_ consumer: String, _ recorder: Recorder<UInt64>) throws -> Subscription {
                var configuration = Subscription.Configuration()
                configuration.batchSize = 50
                return try store.subscription(
                    to: "work.>",
                    consumer: consumer,
                    handlers: MessageHandlers().handling(Counter.self) { message in
                        recorder.record(message.sequence)
                        await Task.yield()
                    },
                    configuration: configuration
                )
            }
            let results = await store.publish(
                contentsOf: (1...1_000).map { OutgoingMessage(Counter(value: $0), to: "work.item.\($0)") }
            )
            #expect(results.allSatisfy { (try? $0.get()) != nil })
            try await withRunning(
                try worker("shared", shared),
                try worker("shared", shared),
                try worker("audit", separate)
            ) {
                try await shared.wait(forCount: 1_000)
                try await separate.wait(forCount: 1_000)
                try await waitUntil("shared consumer acknowledged everything") {
                    try await store.consumerInfo("shared", category: "work").numAckPending == 0
                }
            }
            #expect(shared.events.count == 1_000, "handled \(shared.events.count) times")
            #expect(Set(shared.events) == Set(1...1_000))
            #expect(separate.events == Array(1...1_000))
        }
    }

    @Test func gracefulShutdownFinishesTheHandlerInHandAndAcknowledgesIt() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("jobs")
            let started = Recorder<UInt64>()
            let finished = Recorder<UInt64>()
            // The handler in hand goes on only once the worker is stopping, however long the
            // shutdown takes to reach it (no sleep standing in for that).
            let (release, releaser) = AsyncStream.makeStream(of: Void.self)
            let handlers = MessageHandlers().handling(Counter.self) { message in
                started.record(message.sequence)
                for await _ in release { break }
                finished.record(message.sequence)
            }
            var configuration = Subscription.Configuration()
            configuration.ackWait = .seconds(2)
            let worker = try store.subscription(
                to: "jobs.>",
                consumer: "graceful",
                handlers: handlers,
                configuration: configuration
            )
            try await store.publish(Counter(value: 1), to: "jobs.1")
            try await store.publish(Counter(value: 2), to: "jobs.2")

            let group = ServiceGroup(
                configuration: .init(services: [.init(service: worker)], logger: testLogger)
            )
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                try await started.wait(forCount: 1)
                await group.triggerGracefulShutdown()
                try await waitUntil("the worker stopping") { worker.status.state == .stopping }
                releaser.yield()
                releaser.finish()
                try await tasks.waitForAll()
            }
            // The handler in hand finished; the second message was never started.
            #expect(finished.events == [1])
            #expect(started.events == [1])
            // run() flushed the ack before returning; the server applies it on its own queue.
            try await waitUntil("message 1 acknowledged", timeout: .seconds(5)) {
                try await store.consumerInfo("graceful", category: "jobs").ackFloor.streamSeq >= 1
            }

            // A new worker gets the second message, not the first again.
            let next = Recorder<UInt64>()
            let replacement = try store.subscription(
                to: "jobs.>",
                consumer: "graceful",
                handlers: MessageHandlers().handling(Counter.self) { next.record($0.sequence) },
                configuration: configuration
            )
            try await store.publish(Counter(value: 3), to: "jobs.3")
            try await withRunning(replacement) {
                try await next.wait(for: "messages 2 and 3") { Set($0).isSuperset(of: [2, 3]) }
            }
            #expect(!next.events.contains(1))
        }
    }

    @Test func stopBeforeRunAndRunTwiceAreHarmless() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("jobs")
            let seen = Recorder<UInt64>()
            let worker = try store.subscription(
                to: "jobs.>",
                consumer: "twice",
                handlers: MessageHandlers().handling(Counter.self) { seen.record($0.sequence) }
            )
            worker.stop()
            worker.stop()
            try await store.publish(Counter(value: 1), to: "jobs.1")
            try await withRunning(worker) {
                try await seen.wait(forCount: 1)
                // A second run while running returns at once and changes nothing.
                let duration = try await elapsed { try await worker.run() }
                #expect(duration < .seconds(1))
            }
            worker.stop()
            // It can run again after it stopped.
            try await store.publish(Counter(value: 2), to: "jobs.2")
            try await withRunning(worker) {
                try await seen.wait(forCount: 2)
            }
            #expect(seen.events == [1, 2])
        }
    }

    @Test func runReturnsPromptlyWhenStoppedWhileIdle() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("jobs")
            var configuration = Subscription.Configuration()
            configuration.idlePollInterval = .seconds(30)
            let worker = try store.subscription(
                to: "jobs.>",
                consumer: "idle",
                handlers: MessageHandlers().handling(Counter.self) { _ in },
                configuration: configuration
            )
            let ready = Recorder<Int>()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await worker.run() }
                // Once the consumer exists the worker is polling.
                try await waitUntil("consumer created") {
                    try await store.jetStream.consumerInfo(stream: "\(store.prefix)-jobs", name: "idle") != nil
                }
                ready.record(1)
                let duration = try await elapsed {
                    worker.stop()
                    try await group.waitForAll()
                }
                #expect(duration < .seconds(2), "stopping took \(duration)")
            }
        }
    }

    @Test func cancellationStopsTheSubscription() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("jobs")
            let worker = try store.subscription(
                to: "jobs.>",
                consumer: "cancelled",
                handlers: MessageHandlers().handling(Counter.self) { _ in }
            )
            let task = Task { try await worker.run() }
            try await waitUntil("consumer created") {
                try await store.jetStream.consumerInfo(stream: "\(store.prefix)-jobs", name: "cancelled") != nil
            }
            task.cancel()
            let duration = try await elapsed { _ = try await task.value }
            #expect(duration < .seconds(2))
        }
    }

    /// Delivers the message on `jobs.1` `count` times to a consumer `name` without ever handling or
    /// acknowledging it, as workers that crashed (or stopped) with it would.
    private func deliverWithoutAnswering(_ count: Int, consumer name: String, store: MessageStore) async throws {
        var crashed = JetStream.ConsumerConfig(durableName: name)
        crashed.filterSubject = "\(store.prefix).jobs.>"
        crashed.ackWait = Duration.milliseconds(300).nanoseconds
        crashed.maxDeliver = 10
        _ = try await store.jetStream.createOrUpdateDurableConsumer(stream: "\(store.prefix)-jobs", config: crashed)
        let pull = try await PullSubscription.bind(
            client: store.connection.client,
            stream: "\(store.prefix)-jobs",
            consumer: name,
            acknowledges: true
        )
        var deliveries = 0
        let deadline = ContinuousClock.now + .seconds(15)
        while deliveries < count && ContinuousClock.now < deadline {
            // A blocking fetch, so on a library thread rather than the cooperative pool.
            let outcome = try await store.connection.client.pool.run { pull.fetch(batch: 1, longPoll: .seconds(1)) }
            if case .messages(let messages) = outcome {
                deliveries += messages.count
            }
        }
        #expect(deliveries == count)
        pull.unsubscribe()
    }

    @Test func messageWhoseHandlerRanEveryAttemptIsTerminatedWithoutRunningTheHandler() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("jobs")
            try await store.publish(Counter(value: 1), to: "jobs.1")
            // Workers that died during each of the three attempts: three deliveries, and the
            // three runs recorded before the handler started, as a worker records them.
            try await deliverWithoutAnswering(3, consumer: "crashy", store: store)
            let consumer = try #require(
                try await store.jetStream.consumerInfo(stream: "\(store.prefix)-jobs", name: "crashy")
            )
            let ledger = try await AttemptLedger.prepare(
                store: store,
                stream: "\(store.prefix)-jobs",
                consumer: "crashy",
                consumerCreated: consumer.created,
                replicas: 1
            )
            try await ledger.record(runs: 3, sequence: 1, deliveryCount: 3)

            let ran = Recorder<Int>()
            var configuration = Subscription.Configuration()
            configuration.deadLetterSubject = "dlq"
            // Same ack wait as the crashed worker's: changing it would reschedule the redelivery.
            configuration.ackWait = .milliseconds(300)
            let worker = try store.subscription(
                to: "jobs.>",
                consumer: "crashy",
                handlers: MessageHandlers().handling(Counter.self) { ran.record($0.attempt) },
                configuration: configuration
            )
            try await withRunning(worker) {
                try await waitUntil("dead letter") {
                    try await store.lastMessageRaw(on: "dlq.jobs.1") != nil
                }
            }
            #expect(ran.events.isEmpty)
            let letter = try #require(try await store.lastMessageRaw(on: "dlq.jobs.1"))
            #expect(letter.headers[DeadLetterHeader.cause] == "too-many-deliveries")
            #expect(letter.headers[DeadLetterHeader.attempts] == "4")
        }
    }

    @Test func deliveriesThatNeverReachedAHandlerUseUpNoAttempt() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("jobs")
            try await store.publish(Counter(value: 1), to: "jobs.1")
            // Delivered three times (as many as the attempts), never handled: prefetched by
            // workers that stopped or crashed before its turn.
            try await deliverWithoutAnswering(3, consumer: "unstarted", store: store)

            let ran = Recorder<(attempt: Int, last: Bool)>()
            var configuration = Subscription.Configuration()
            configuration.deadLetterSubject = "dlq"
            configuration.ackWait = .milliseconds(300)
            configuration.retrySchedule = .fixed(.milliseconds(50))
            let worker = try store.subscription(
                to: "jobs.>",
                consumer: "unstarted",
                handlers: MessageHandlers().handling(Counter.self) { message in
                    ran.record((message.attempt, message.isLastAttempt))
                    if !message.isLastAttempt { throw HandlerFailure() }
                },
                configuration: configuration
            )
            try await withRunning(worker) {
                try await ran.wait(forCount: 3)
                try await waitUntil("acknowledged") {
                    try await store.consumerInfo("unstarted", category: "jobs").numAckPending == 0
                }
            }
            #expect(ran.events.map(\.attempt) == [1, 2, 3])
            #expect(ran.events.map(\.last) == [false, false, true])
            #expect(try await store.lastMessageRaw(on: "dlq.jobs.1") == nil, "a healthy message was dead-lettered")
            let info = try await store.consumerInfo("unstarted", category: "jobs")
            #expect(info.delivered.streamSeq == 1)
            #expect(info.numPending == 0)
        }
    }

    @Test func survivesAServerRestartWithoutLosingMessages() async throws {
        try await withStore { store, server in
            try await store.ensureStream("bulk")
            let handled = Recorder<UInt64>()
            var configuration = Subscription.Configuration()
            configuration.batchSize = 50
            configuration.ackWait = .seconds(2)
            let worker = try store.subscription(
                to: "bulk.>",
                consumer: "survivor",
                handlers: MessageHandlers().handling(Counter.self) { message in
                    handled.record(message.sequence)
                    try await Task.sleep(for: .microseconds(200))
                },
                configuration: configuration
            )
            let results = await store.publish(
                contentsOf: (1...2_000).map { OutgoingMessage(Counter(value: $0), to: "bulk.\($0)") }
            )
            #expect(results.allSatisfy { (try? $0.get()) != nil })
            try await withRunning(worker) {
                try await handled.wait(forCount: 500)
                try await server.stop(keepingStore: true)
                try await server.start()
                try await handled.wait(forDistinct: 2_000, "all 2,000 messages", timeout: .seconds(60))
                try await waitUntil("everything acknowledged", timeout: .seconds(30)) {
                    let info = try await store.consumerInfo("survivor", category: "bulk")
                    return info.numAckPending == 0 && info.numPending == 0
                }
            }
            let all = handled.events
            let duplicates = all.count - Set(all).count
            #expect(Set(all) == Set(1...2_000))
            // At-least-once: a restart may redeliver what was handled but not yet acknowledged.
            print("server restart: 2000 messages handled, \(duplicates) handled twice")
            #expect(duplicates < 500)
        }
    }

    @Test func missingDeadLetterStreamFailsAtStartWhenStreamsMayNotBeCreated() async throws {
        try await withStore(createMissingStreams: false) { store, _ in
            _ = try await store.jetStream.createStream(
                .init(name: "\(store.prefix)-orders", subjects: ["\(store.prefix).orders.>"])
            )
            var configuration = Subscription.Configuration()
            configuration.deadLetterSubject = "dlq"
            let worker = try store.subscription(
                to: "orders.>",
                consumer: "worker",
                handlers: MessageHandlers(),
                configuration: configuration
            )
            let error = await #expect(throws: MessageStoreError.self) { try await worker.run() }
            #expect(error?.code == .streamNotFound)
            #expect(error?.message.contains("dead-letter") == true)
            #expect(error?.message.contains("\(store.prefix)-dlq") == true)

            let noStream = try store.subscription(to: "payments.>", consumer: "worker", handlers: MessageHandlers())
            let missing = await #expect(throws: MessageStoreError.self) { try await noStream.run() }
            #expect(missing?.code == .streamNotFound)
        }
    }

    @Test func invalidOptionsAreRejectedAtCreation() async throws {
        try await withStore { store, _ in
            let handlers = MessageHandlers()
            #expect(throws: MessageStoreError.self) {
                try store.subscription(to: "orders.>.x", consumer: "c", handlers: handlers)
            }
            #expect(throws: MessageStoreError.self) {
                try store.subscription(to: "orders.>", consumer: "bad name", handlers: handlers)
            }
            var configuration = Subscription.Configuration()
            configuration.maxAttempts = 0
            #expect(throws: MessageStoreError.self) {
                try store.subscription(to: "orders.>", consumer: "c", handlers: handlers, configuration: configuration)
            }
            configuration = .init()
            configuration.deadLetterSubject = "dlq.*"
            #expect(throws: MessageStoreError.self) {
                try store.subscription(to: "orders.>", consumer: "c", handlers: handlers, configuration: configuration)
            }
        }
    }

    @Test func consumerWithAnotherFilterIsAClearError() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            let first = try store.subscription(to: "orders.event.>", consumer: "c", handlers: MessageHandlers())
            try await withRunning(first) {}
            let second = try store.subscription(to: "orders.command.>", consumer: "c", handlers: MessageHandlers())
            let error = await #expect(throws: MessageStoreError.self) { try await second.run() }
            #expect(error?.code == .invalidConfiguration)
            #expect(error?.message.contains("orders.event.>") == true)
        }
    }
}

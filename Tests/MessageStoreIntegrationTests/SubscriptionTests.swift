import Foundation
import MessageStore
import MessageStoreTestSupport
import MessageStoreTesting
import Synchronization
import Testing

@testable import MessageStore

/// What a handler saw, for assertions.
struct Delivery: Sendable {
    var type: String
    var subject: String
    var sequence: UInt64
    var attempt: Int
    var isLastAttempt: Bool
    var at: ContinuousClock.Instant
    var headers: MessageHeaders

    init<P>(_ message: ReceivedMessage<P>) {
        type = message.type
        subject = message.subject
        sequence = message.sequence
        attempt = message.attempt
        isLastAttempt = message.isLastAttempt
        at = .now
        headers = message.headers
    }
}

struct HandlerFailure: Error, CustomStringConvertible {
    var description: String { "deliberate failure" }
}

extension MessageStore {
    /// Publishes a raw body, as a misbehaving peer could.
    func publishRaw(_ body: String, to subject: String) async throws -> PublishAck {
        try await publisher.publish(
            Publication(
                subject: subject,
                natsSubject: try naming.publishSubject(subject),
                body: Array(body.utf8),
                headers: [:]
            ),
            timeout: .seconds(5)
        )
    }

    /// The dead letters stored under `dlq.>`, read by an ordered consumer of their own.
    func deadLetters() async throws -> [StoredMessage] {
        guard try await stream(for: "dlq.>") != nil else { return [] }
        var letters: [StoredMessage] = []
        for try await letter in messages(on: "dlq.>") { letters.append(letter) }
        return letters
    }

    func consumerInfo(_ consumer: String, category: String) async throws -> JetStream.ConsumerInfo {
        try #require(try await jetStream.consumerInfo(stream: naming.streamName(category: category), name: consumer))
    }
}

/// Records the dead letters that arrive under `subject`.
func deadLetterReader(
    _ store: MessageStore,
    subject: String,
    recorder: Recorder<Delivery>
) throws -> Subscription {
    var handlers = MessageHandlers()
    handlers.on(Counter.self) { recorder.record(Delivery($0)) }
    handlers.on(OrderPlaced.self) { recorder.record(Delivery($0)) }
    var configuration = Subscription.Configuration()
    configuration.unknownTypes = .acknowledge
    return try store.subscription(to: subject, consumer: "dlq-reader", handlers: handlers, configuration: configuration)
}

@Suite("Durable subscriptions", .serverRequired)
struct SubscriptionTests {
    @Test func dispatchesByTypeAndSkipsUnknownTypes() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            let placed = Recorder<OrderPlaced>()
            let cancelled = Recorder<OrderCancelled>()
            let handlers = MessageHandlers()
                .handling(OrderPlaced.self) { placed.record($0.data) }
                .handling(OrderCancelled.self) { message in
                    await Task.yield()
                    cancelled.record(message.data)
                }
            let worker = try store.subscription(to: "orders.>", consumer: "worker", handlers: handlers)
            for index in 1...6 {
                try await store.publish(OrderPlaced(orderId: "\(index)", amount: index), to: "orders.event.\(index)")
                try await store.publish(Counter(value: index), to: "orders.unrelated.\(index)")
            }
            for index in 1...4 {
                try await store.publish(OrderCancelled(orderId: "\(index)"), to: "orders.event.\(index)")
            }
            try await withRunning(worker) {
                try await placed.wait(forCount: 6)
                try await cancelled.wait(forCount: 4)
                // Every message, the six of an unknown type too, is acknowledged.
                let info = try await store.consumerInfo("worker", category: "orders")
                #expect(info.delivered.streamSeq == 16)
                try await waitUntil("everything acknowledged") {
                    try await store.consumerInfo("worker", category: "orders").numAckPending == 0
                }
            }
            #expect(placed.events.map(\.orderId) == (1...6).map(String.init))
            #expect(cancelled.events.map(\.orderId) == (1...4).map(String.init))
            let info = try await store.consumerInfo("worker", category: "orders")
            #expect(info.numPending == 0)
            // num_redelivered only counts messages still pending; a delivery counted twice shows here.
            #expect(info.delivered.consumerSeq == info.delivered.streamSeq, "a message was delivered more than once")
        }
    }

    @Test func failingTwiceThenSucceedingRetriesWithTheScheduledDelay() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            let deliveries = Recorder<Delivery>()
            let handlers = MessageHandlers().handling(OrderPlaced.self) { message in
                deliveries.record(Delivery(message))
                if message.attempt < 3 { throw HandlerFailure() }
            }
            var configuration = Subscription.Configuration()
            configuration.retrySchedule = .fixed(.milliseconds(400))
            let worker = try store.subscription(
                to: "orders.>",
                consumer: "retrier",
                handlers: handlers,
                configuration: configuration
            )
            try await store.publish(OrderPlaced(orderId: "1", amount: 1), to: "orders.event.1")
            try await withRunning(worker) {
                try await deliveries.wait(forCount: 3)
                try await waitUntil("acknowledged") {
                    try await store.consumerInfo("retrier", category: "orders").numAckPending == 0
                }
            }
            let seen = deliveries.events
            #expect(seen.map(\.attempt) == [1, 2, 3])
            #expect(seen.map(\.isLastAttempt) == [false, false, true])
            for (earlier, later) in zip(seen, seen.dropFirst()) {
                let gap = later.at - earlier.at
                #expect(gap >= .milliseconds(400), "retried after \(gap), before the scheduled delay")
                #expect(gap < .seconds(10), "retried after \(gap): that is the ack wait, not the delay")
            }
            let info = try await store.consumerInfo("retrier", category: "orders")
            #expect(info.numPending == 0)
            // The server's bound: the attempts and room for deliveries that never reach a handler.
            #expect(info.config.maxDeliver == 3 + 20)
        }
    }

    @Test func alwaysFailingHandlerRunsThreeTimesThenIsDeadLettered() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            let deliveries = Recorder<Delivery>()
            let handlers = MessageHandlers().handling(OrderPlaced.self) { message in
                deliveries.record(Delivery(message))
                throw HandlerFailure()
            }
            var configuration = Subscription.Configuration()
            configuration.retrySchedule = .fixed(.milliseconds(50))
            configuration.deadLetterSubject = "dlq"
            let worker = try store.subscription(
                to: "orders.>",
                consumer: "failer",
                handlers: handlers,
                configuration: configuration
            )
            let letters = Recorder<Delivery>()
            let reader = try deadLetterReader(store, subject: "dlq.>", recorder: letters)
            let published = try await store.publish(
                OrderPlaced(orderId: "7", amount: 7),
                to: "orders.command.7",
                headers: ["X-Trace": "abc"]
            )
            try await withRunning(worker, reader) {
                try await letters.wait(forCount: 1)
                try await waitUntil("terminated") {
                    try await store.consumerInfo("failer", category: "orders").numAckPending == 0
                }
            }
            #expect(deliveries.events.map(\.attempt) == [1, 2, 3])
            let letter = try #require(letters.events.first)
            #expect(letter.subject == "dlq.orders.command.7")
            #expect(letter.type == "OrderPlaced")
            #expect(letter.headers[DeadLetterHeader.cause] == "handler-failed")
            #expect(letter.headers[DeadLetterHeader.reason]?.contains("deliberate failure") == true)
            #expect(letter.headers[DeadLetterHeader.attempts] == "3")
            #expect(letter.headers[DeadLetterHeader.originalSubject] == "orders.command.7")
            #expect(letter.headers[DeadLetterHeader.originalStream] == "\(store.prefix)-orders")
            #expect(letter.headers[DeadLetterHeader.originalSequence] == "\(published.sequence)")
            #expect(letter.headers[DeadLetterHeader.consumer] == "failer")
            #expect(letter.headers["X-Trace"] == "abc")
            let info = try await store.consumerInfo("failer", category: "orders")
            #expect(info.numPending == 0)
            #expect(info.numAckPending == 0)
            // The original stays in its stream: terminating never deletes.
            let original = try await store.lastMessage(on: "orders.command.7")
            #expect(original?.sequence == published.sequence)
        }
    }

    /// A worker sends the count of a run without waiting for it (ahead of the negative
    /// acknowledgement, or of the handler): each worker here is a new one, that knows only what
    /// reached the bucket, and each sees the next attempt.
    @Test func everyRunIsRecordedForTheNextWorker() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            var configuration = Subscription.Configuration()
            configuration.retrySchedule = .fixed(.milliseconds(300))
            try await store.publish(OrderPlaced(orderId: "1", amount: 1), to: "orders.event.1")
            var seen: [[Delivery]] = []
            for worker in 1...3 {
                let deliveries = Recorder<Delivery>()
                let subscription = try store.subscription(
                    to: "orders.>",
                    consumer: "relay",
                    handlers: MessageHandlers().handling(OrderPlaced.self) { message in
                        deliveries.record(Delivery(message))
                        if !message.isLastAttempt { throw HandlerFailure() }
                    },
                    configuration: configuration
                )
                try await withRunning(subscription) {
                    try await deliveries.wait(forCount: 1)
                    if worker == 3 {
                        try await waitUntil("acknowledged") {
                            try await store.consumerInfo("relay", category: "orders").numAckPending == 0
                        }
                    }
                }
                seen.append(deliveries.events)
            }
            #expect(seen.map { $0.map(\.attempt) } == [[1], [2], [3]])
            #expect(seen.last?.first?.isLastAttempt == true)
            let info = try await store.consumerInfo("relay", category: "orders")
            #expect(info.numPending == 0)
        }
    }

    /// Two workers of one consumer in one process, each remembering the counts it wrote: a
    /// message that comes back to a worker after the other ran it in between must be read from
    /// the bucket, not from that memory, so every run's attempt is the number of runs so far.
    @Test func workersSharingAConsumerCountEveryRunWhicheverRanTheLastOne() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            let total = 200
            let runs = Recorder<(worker: Int, sequence: UInt64, attempt: Int)>()
            let order = Mutex<[UInt64: Int]>([:])
            var configuration = Subscription.Configuration()
            // Long enough for a count sent ahead of the NAK to be stored before the other worker
            // can read it.
            configuration.retrySchedule = .fixed(.milliseconds(200))
            let workers = try (1...2).map { worker in
                try store.subscription(
                    to: "orders.>",
                    consumer: "pair",
                    handlers: MessageHandlers().handling(OrderPlaced.self) { message in
                        // Fails its first two runs, by its own count: a wrong attempt number cannot
                        // change what happens, only what is recorded here.
                        let run = order.withLock { runs in
                            runs[message.sequence, default: 0] += 1
                            return runs[message.sequence]!
                        }
                        runs.record((worker, message.sequence, message.attempt))
                        if run < 3 { throw HandlerFailure() }
                    },
                    configuration: configuration
                )
            }
            for index in 1...total {
                try await store.publish(OrderPlaced(orderId: "\(index)", amount: index), to: "orders.event.\(index)")
            }
            try await withRunning(workers[0], workers[1]) {
                try await runs.wait(forCount: 3 * total, timeout: .seconds(60))
                try await waitUntil("acknowledged") {
                    try await store.consumerInfo("pair", category: "orders").numAckPending == 0
                }
            }
            var bySequence: [UInt64: [(worker: Int, attempt: Int)]] = [:]
            for run in runs.events {
                bySequence[run.sequence, default: []].append((run.worker, run.attempt))
            }
            #expect(bySequence.count == total)
            for (sequence, seen) in bySequence {
                #expect(seen.map(\.attempt) == [1, 2, 3], "#\(sequence): \(seen)")
            }
            // How often a message came back to a worker after the other one ran it: the case above.
            let returned = bySequence.values.filter { seen in
                seen.count == 3 && seen[0].worker == seen[2].worker && seen[1].worker != seen[0].worker
            }
            print("workers sharing a consumer: \(returned.count) of \(total) messages went A, B, A")
            let info = try await store.consumerInfo("pair", category: "orders")
            #expect(info.numPending == 0)
        }
    }

    @Test func handlerCanAskForTermination() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            let deliveries = Recorder<Delivery>()
            let handlers = MessageHandlers()
                .handling(OrderPlaced.self) { message in
                    deliveries.record(Delivery(message))
                    message.terminate(reason: "order \(message.data.orderId) is unknown")
                }
                .handling(OrderCancelled.self) { message in
                    deliveries.record(Delivery(message))
                    throw MessageTermination(reason: "cannot cancel \(message.data.orderId)")
                }
            var configuration = Subscription.Configuration()
            configuration.deadLetterSubject = "dlq"
            let worker = try store.subscription(
                to: "orders.>",
                consumer: "terminator",
                handlers: handlers,
                configuration: configuration
            )
            let letters = Recorder<Delivery>()
            var readerHandlers = MessageHandlers()
            readerHandlers.on(OrderPlaced.self) { letters.record(Delivery($0)) }
            readerHandlers.on(OrderCancelled.self) { letters.record(Delivery($0)) }
            let reader = try store.subscription(to: "dlq.>", consumer: "reader", handlers: readerHandlers)
            try await store.publish(OrderPlaced(orderId: "1", amount: 1), to: "orders.event.1")
            try await store.publish(OrderCancelled(orderId: "2"), to: "orders.event.2")
            try await withRunning(worker, reader) {
                try await letters.wait(forCount: 2)
            }
            #expect(deliveries.events.map(\.attempt) == [1, 1])
            let reasons = letters.events.map { $0.headers[DeadLetterHeader.reason] ?? "" }
            #expect(reasons.contains("order 1 is unknown"))
            #expect(reasons.contains("cannot cancel 2"))
            #expect(letters.events.allSatisfy { $0.headers[DeadLetterHeader.cause] == "terminated-by-handler" })
        }
    }

    @Test func poisonMessagesAreDeadLetteredWithoutRunningAHandlerAndTheStreamKeepsFlowing() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            let handled = Recorder<Delivery>()
            let handlers = MessageHandlers().handling(OrderPlaced.self) { handled.record(Delivery($0)) }
            var configuration = Subscription.Configuration()
            configuration.deadLetterSubject = "dlq"
            let worker = try store.subscription(
                to: "orders.>",
                consumer: "worker",
                handlers: handlers,
                configuration: configuration
            )
            let poison = [
                ("orders.bad.json", "{not json"),
                ("orders.bad.notype", #"{"data":{"orderId":"1","amount":1}}"#),
                ("orders.bad.numbertype", #"{"type":5,"data":{}}"#),
                ("orders.bad.arraydata", #"{"type":"OrderPlaced","data":[1,2]}"#),
                ("orders.bad.payload", #"{"type":"OrderPlaced","data":{"orderId":42}}"#),
                ("orders.bad.empty", ""),
            ]
            for (subject, body) in poison {
                _ = try await store.publishRaw(body, to: subject)
            }
            try await store.publish(OrderPlaced(orderId: "ok", amount: 1), to: "orders.good.1")

            try await withRunning(worker) {
                try await handled.wait(forCount: 1)
                try await waitUntil("six dead letters") {
                    try await store.streamDescription(named: "\(store.prefix)-dlq").messages == 6
                }
            }
            #expect(handled.events.map(\.subject) == ["orders.good.1"])
            for (subject, body) in poison {
                let letter = try #require(try? await store.lastMessageRaw(on: "dlq." + subject))
                #expect(String(decoding: letter.body, as: UTF8.self) == body)
                let cause = letter.headers[DeadLetterHeader.cause]
                #expect(
                    cause == (subject == "orders.bad.payload" ? "undecodable-data" : "malformed-envelope"),
                    "\(subject): \(cause ?? "no cause")"
                )
                #expect(letter.headers[DeadLetterHeader.attempts] == "1")
            }
            let info = try await store.consumerInfo("worker", category: "orders")
            #expect(info.numAckPending == 0)
            // num_redelivered only counts messages still pending; a delivery counted twice shows here.
            #expect(info.delivered.consumerSeq == info.delivered.streamSeq, "a message was delivered more than once")
        }
    }

    @Test func unknownTypesCanBeDeadLettered() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            var configuration = Subscription.Configuration()
            configuration.deadLetterSubject = "dlq"
            configuration.unknownTypes = .deadLetter
            let worker = try store.subscription(
                to: "orders.>",
                consumer: "strict",
                handlers: MessageHandlers().handling(OrderPlaced.self) { _ in },
                configuration: configuration
            )
            try await store.publish(Counter(value: 1), to: "orders.misc.1")
            try await withRunning(worker) {
                try await waitUntil("dead letter") {
                    try await store.lastMessageRaw(on: "dlq.orders.misc.1") != nil
                }
            }
            let letter = try #require(try await store.lastMessageRaw(on: "dlq.orders.misc.1"))
            #expect(letter.headers[DeadLetterHeader.cause] == "unknown-type")
        }
    }
}

extension MessageStore {
    /// The last message on a subject without decoding its envelope (poison stays readable).
    func lastMessageRaw(on subject: String) async throws -> RawStoredMessage? {
        let natsSubject = try naming.publishSubject(subject)
        guard let stream = try await jetStream.streams(overlapping: natsSubject).first else { return nil }
        return try await jetStream.lastMessage(stream: stream.config.name, natsSubject: natsSubject, subject: subject)
    }
}

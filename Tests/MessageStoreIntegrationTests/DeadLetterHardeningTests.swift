import Foundation
import MessageStoreTestSupport
import MessageStoreTesting
import Testing

@testable import MessageStore

/// What a hostile peer stores cannot stop a worker, suppress a dead letter or forge its headers.
@Suite("Dead letters under hostile input", .serverRequired)
struct DeadLetterHardeningTests {
    func deadLetteringWorker(_ store: MessageStore, consumer: String = "hardened") throws -> Subscription {
        var configuration = Subscription.Configuration()
        configuration.deadLetterSubject = "dlq"
        return try store.subscription(
            to: "jobs.>",
            consumer: consumer,
            handlers: MessageHandlers().handling(Counter.self) { _ in },
            configuration: configuration
        )
    }

    func letters(on subject: String, _ store: MessageStore) async throws -> [RawMessage] {
        var letters: [RawMessage] = []
        for try await letter in store.rawMessages(on: subject) { letters.append(letter) }
        return letters
    }

    @Test func peerHeadersCannotBeSmuggledIntoOrAheadOfTheLibrarysOwn() async throws {
        try await withStore { store, server in
            try await store.ensureStream("jobs")
            try await store.ensureStream("dlq")
            // A colon-less line that would carry a server header along, and the library's own
            // header names in other letter cases.
            let block =
                "NATS/1.0\r\nZZ\r\nNats-Smuggled: yes\r\nMESSAGESTORE-DEAD-LETTER-CAUSE: forged\r\n"
                + "messagestore-original-sequence: 999\r\nnats-msg-id: chosen\r\nX-Trace: kept\r\n\r\n"
            try await RawNATSPeer.publish(
                port: server.port,
                subject: "\(store.prefix).jobs.1",
                headerBlock: block,
                body: Array("not json".utf8)
            )
            // The PONG says the server read the message; the stream stores it a moment later.
            try await waitUntil("the peer's message is stored") {
                try await store.jetStream.streamInfo("\(store.prefix)-jobs").state.messages == 1
            }
            try await withRunning(try deadLetteringWorker(store)) {
                try await waitUntil("the dead letter") { try await store.lastMessageRaw(on: "dlq.jobs.1") != nil }
            }
            let letter = try #require(try await store.lastMessageRaw(on: "dlq.jobs.1"))
            let names = letter.headers.map { $0.name.lowercased() }
            #expect(letter.headers["X-Trace"] == "kept")
            #expect(!names.contains { $0.contains("nats-smuggled") }, "smuggled: \(letter.headers.map(\.name))")
            #expect(names.filter { $0 == DeadLetterHeader.cause.lowercased() }.count == 1)
            #expect(letter.headers[DeadLetterHeader.cause] == "malformed-envelope")
            #expect(names.filter { $0 == DeadLetterHeader.originalSequence.lowercased() }.count == 1)
            #expect(letter.headers[DeadLetterHeader.originalSequence] == "1")
            #expect(letter.headers[MessageHeaderName.messageID] == "dead-letter:\(store.prefix)-jobs:1")
            #expect(letter.body == Array("not json".utf8))
        }
    }

    @Test func aForgedDeadLetterDoesNotSuppressTheRealOne() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("jobs")
            try await store.ensureStream("dlq")
            // A peer guesses the dead letter's id and stores something under it first.
            var forged = MessageHeaders()
            forged[MessageHeaderName.messageID] = "dead-letter:\(store.prefix)-jobs:1"
            let forgery = try await store.publish(Counter(value: 0), to: "dlq.jobs.1", headers: forged)
            _ = try await store.publishRaw("{\"broken", to: "jobs.1")
            try await withRunning(try deadLetteringWorker(store)) {
                try await waitUntil("the real dead letter") { try await letters(on: "dlq.jobs.1", store).count == 2 }
            }
            let stored = try await letters(on: "dlq.jobs.1", store)
            #expect(stored.count == 2)
            let real = try #require(stored.last)
            #expect(real.headers[DeadLetterHeader.cause] == "malformed-envelope")
            #expect(real.headers[DeadLetterHeader.duplicateOf] == String(forgery.sequence))
            #expect(real.body == Array("{\"broken".utf8))
        }
    }

    @Test func aRedeliveredDeadLetterOfOursIsStoredOnce() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("jobs")
            try await store.ensureStream("dlq")
            _ = try await store.publishRaw("{\"broken", to: "jobs.1")
            // A worker that crashed after copying but before terminating: the copy is there.
            let consumer = "twice"
            try await withRunning(try deadLetteringWorker(store, consumer: consumer)) {
                try await waitUntil("the dead letter") { try await letters(on: "dlq.jobs.1", store).count == 1 }
            }
            let first = try #require(try await letters(on: "dlq.jobs.1", store).first)
            try await store.jetStream.deleteConsumer(stream: "\(store.prefix)-jobs", name: consumer)
            try await withRunning(try deadLetteringWorker(store, consumer: consumer)) {
                try await waitUntil("terminated again") {
                    try await store.consumerInfo(consumer, category: "jobs").ackFloor.streamSeq == 1
                }
            }
            let stored = try await letters(on: "dlq.jobs.1", store)
            #expect(stored.count == 1, "a copy of our own dead letter was taken for a forgery")
            #expect(stored.first?.sequence == first.sequence)
        }
    }

    @Test func aPoisonMessageTooLargeToCopyIsDeadLetteredReduced() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("jobs")
            try await store.ensureStream("dlq")
            // A body just under the server's largest message: with the dead letter's headers it is over.
            let size = store.connection.client.maxPayload - 300
            _ = try await store.publishRaw(String(repeating: "x", count: size), to: "jobs.big")
            try await withRunning(try deadLetteringWorker(store)) {
                try await waitUntil("the reduced dead letter") {
                    try await store.lastMessageRaw(on: "dlq.jobs.big") != nil
                }
            }
            let letter = try #require(try await store.lastMessageRaw(on: "dlq.jobs.big"))
            #expect(letter.body.isEmpty)
            let reduced = try #require(letter.headers[DeadLetterHeader.reduced])
            #expect(reduced.contains("\(size) bytes"))
            #expect(letter.headers[DeadLetterHeader.cause] == "malformed-envelope")
            #expect(letter.headers[DeadLetterHeader.originalSequence] == "1")
            // The original is terminated, not left to come back.
            let info = try await store.consumerInfo("hardened", category: "jobs")
            #expect(info.numAckPending == 0 && info.numPending == 0)
        }
    }

    @Test func aPoisonMessageOnASubjectAtTheServersLimitIsDeadLetteredAndTheWorkerGoesOn() async throws {
        try await withStore { store, server in
            try await store.ensureStream("jobs")
            try await store.ensureStream("dlq")
            let natsSubject =
                "\(store.prefix).jobs." + String(repeating: "k", count: 4_060 - store.prefix.utf8.count - 6)
            try await RawNATSPeer.publish(
                port: server.port,
                subject: natsSubject,
                headerBlock: "NATS/1.0\r\n\r\n",
                body: Array("x".utf8)
            )
            // The PONG says the server read the message; the stream stores it a moment later.
            try await waitUntil("the peer's message is stored") {
                try await store.jetStream.streamInfo("\(store.prefix)-jobs").state.messages == 1
            }
            try await store.publish(Counter(value: 2), to: "jobs.after")
            let handled = Recorder<Int>()
            var configuration = Subscription.Configuration()
            configuration.deadLetterSubject = "dlq"
            let worker = try store.subscription(
                to: "jobs.>",
                consumer: "long",
                handlers: MessageHandlers().handling(Counter.self) { handled.record($0.data.value) },
                configuration: configuration
            )
            try await withRunning(worker) {
                try await handled.wait(forCount: 1)
                try await waitUntil("the dead letter") {
                    try await store.lastMessageRaw(on: "dlq.jobs.subject-too-long.1") != nil
                }
            }
            let letter = try #require(try await store.lastMessageRaw(on: "dlq.jobs.subject-too-long.1"))
            #expect(letter.headers[DeadLetterHeader.originalSequence] == "1")
            #expect(handled.events == [2])
            // The connection survived: publishing still works.
            _ = try await store.publish(Counter(value: 3), to: "jobs.still")
        }
    }

    @Test(arguments: ["409 Consumer Deleted", "404 No Messages", "408 Request Timeout", "100 Idle Heartbeat"])
    func storedMessagesThatLookLikeServerStatusesAreDeadLetteredAndStallNothing(_ status: String) async throws {
        try await withStore { store, server in
            try await store.ensureStream("jobs")
            try await store.ensureStream("dlq")
            // An empty body and a status line for a header block: what the server's own status
            // messages look like, but stored in the stream.
            try await RawNATSPeer.publish(
                port: server.port,
                subject: "\(store.prefix).jobs.1",
                headerBlock: "NATS/1.0 \(status)\r\n\r\n",
                body: []
            )
            // The PONG says the server read the message; the stream stores it a moment later.
            try await waitUntil("the peer's message is stored") {
                try await store.jetStream.streamInfo("\(store.prefix)-jobs").state.messages == 1
            }
            try await store.publish(Counter(value: 2), to: "jobs.2")
            let handled = Recorder<Int>()
            var configuration = Subscription.Configuration()
            configuration.deadLetterSubject = "dlq"
            let worker = try store.subscription(
                to: "jobs.>",
                consumer: "statuses",
                handlers: MessageHandlers().handling(Counter.self) { handled.record($0.data.value) },
                configuration: configuration
            )
            // Timed from the worker's start (its streams, consumer and ledger set up) to the dead
            // letter: what a stalled fetch would stretch (a long poll, an ack wait), and not the
            // set-up, which a loaded machine slows evenly.
            let took = try await withRunning(worker) {
                try await elapsed {
                    try await handled.wait(forCount: 1, timeout: .seconds(10))
                    try await waitUntil("the dead letter", timeout: .seconds(10)) {
                        try await store.lastMessageRaw(on: "dlq.jobs.1") != nil
                    }
                }
            }
            #expect(handled.events == [2])
            let letter = try #require(try await store.lastMessageRaw(on: "dlq.jobs.1"))
            #expect(letter.headers[DeadLetterHeader.cause] == "malformed-envelope")
            #expect(took < .seconds(3), "fetching stalled: \(took)")
        }
    }

    @Test func aDeadLetterSubjectInsideTheFilterIsRefused() async throws {
        try await withStore { store, _ in
            for (filter, deadLetter, refused) in [
                ("orders.>", "orders.dlq", true), ("orders.*.*.*", "orders.dlq", true), (">", "dlq", true),
                ("orders.*", "orders.dlq", false), ("orders.>", "dlq", false),
                ("orders.command.*", "orders.dlq", false),
            ] {
                var configuration = Subscription.Configuration()
                configuration.deadLetterSubject = deadLetter
                do {
                    _ = try store.subscription(
                        to: filter,
                        consumer: "c",
                        handlers: MessageHandlers(),
                        configuration: configuration
                    )
                    #expect(!refused, "\(deadLetter) inside \(filter) was accepted")
                } catch {
                    #expect(refused, "\(deadLetter) outside \(filter) was refused: \(error)")
                    #expect((error as? MessageStoreError)?.code == .invalidConfiguration)
                }
            }
        }
    }

    @Test func aWorkerWhoseConnectionClosesThrowsInsteadOfReturning() async throws {
        try await NATSTestServer.withServer { server in
            let connection = try await NATSConnection.connect(.init(url: server.url), logger: testLogger)
            let store = try MessageStore(
                connection: connection,
                prefix: uniquePrefix(),
                createMissingStreams: true,
                logger: testLogger
            )
            try await store.ensureStream("jobs")
            let worker = try store.subscription(to: "jobs.>", consumer: "closing", handlers: MessageHandlers())
            let task = Task { try await worker.run() }
            await worker.untilStarted()
            await connection.close()
            let result = await Task { () -> MessageStoreError? in
                do {
                    try await task.value
                    return nil
                } catch let error as MessageStoreError {
                    return error
                } catch {
                    return nil
                }
            }.value
            #expect(result?.code == .connectionClosed, "run() ended with \(String(describing: result))")
        }
    }
}

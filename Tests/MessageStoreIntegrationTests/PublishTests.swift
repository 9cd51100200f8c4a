import Foundation
import MessageStore
import MessageStoreTestSupport
import MessageStoreTesting
import Testing

@testable import MessageStore

struct Blob: MessagePayload {
    var text: String
}

@Suite("Publishing", .serverRequired)
struct PublishTests {
    @Test func sequencesIncreaseAndTheAckNamesTheStream() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            var sequences: [UInt64] = []
            for value in 1...5 {
                let ack = try await store.publish(Counter(value: value), to: "orders.command.\(value)")
                #expect(ack.stream == "\(store.prefix)-orders")
                #expect(!ack.isDuplicate)
                sequences.append(ack.sequence)
            }
            #expect(sequences == [1, 2, 3, 4, 5])
        }
    }

    @Test func sameMessageIDIsStoredOnce() async throws {
        try await withStore { store, _ in
            let stream = try await store.ensureStream("orders")
            let first = try await store.publish(Counter(value: 1), to: "orders.1", id: "order-1")
            let second = try await store.publish(Counter(value: 2), to: "orders.1", id: "order-1")
            #expect(!first.isDuplicate)
            #expect(second.isDuplicate)
            #expect(second.sequence == first.sequence)
            let description = try await store.streamDescription(named: stream.name)
            #expect(description.messages == 1)
            let stored = try #require(try await store.lastMessage(on: "orders.1"))
            #expect(try stored.decode(as: Counter.self) == Counter(value: 1))
            #expect(stored.headers[MessageHeaderName.messageID] == "order-1")
        }
    }

    @Test func expectedLastSubjectSequenceIsOptimisticConcurrency() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("account")
            // 0 means "no message on this subject yet".
            let first = try await store.publish(Counter(value: 1), to: "account.42", expectedLastSubjectSequence: 0)
            // Another subject in the same stream does not move account.42's version.
            try await store.publish(Counter(value: 99), to: "account.7")
            let second = try await store.publish(
                Counter(value: 2),
                to: "account.42",
                expectedLastSubjectSequence: first.sequence
            )
            #expect(second.sequence == 3)

            let stale = await #expect(throws: MessageStoreError.self) {
                try await store.publish(
                    Counter(value: 3),
                    to: "account.42",
                    expectedLastSubjectSequence: first.sequence
                )
            }
            #expect(stale?.code == .wrongExpectedSequence)
            #expect(stale?.jetStreamErrorCode == 10071)
            #expect(stale?.subject == "account.42")
            #expect(stale?.isRetriable == false)

            let fresh = await #expect(throws: MessageStoreError.self) {
                try await store.publish(Counter(value: 3), to: "account.42", expectedLastSubjectSequence: 0)
            }
            #expect(fresh?.code == .wrongExpectedSequence)
            let last = try await store.lastMessage(on: "account.42")
            #expect(try last?.decode(as: Counter.self) == Counter(value: 2))
        }
    }

    @Test func messageOverTheStreamsMaxSizeIsATypedError() async throws {
        try await withStore { store, _ in
            var options = StreamOptions()
            options.maxMessageSize = 1024
            try await store.ensureStream("files", options: options)
            let error = await #expect(throws: MessageStoreError.self) {
                try await store.publish(Blob(text: String(repeating: "x", count: 2000)), to: "files.1")
            }
            #expect(error?.code == .messageTooLarge)
            #expect(error?.subject == "files.1")
            let ack = try await store.publish(Blob(text: "small"), to: "files.1")
            #expect(ack.sequence == 1)
        }
    }

    @Test func messageOverTheServersMaxPayloadIsATypedError() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("files")
            let maxPayload = store.connection.client.maxPayload
            let error = await #expect(throws: MessageStoreError.self) {
                try await store.publish(Blob(text: String(repeating: "x", count: maxPayload + 1)), to: "files.1")
            }
            #expect(error?.code == .messageTooLarge)
        }
    }

    @Test func noStreamRetriesWithBackoffThenFailsWithinABoundedTime() async throws {
        try await withStore(configure: {
            $0.publishRetry = .init(
                maxAttempts: 3,
                schedule: .exponential(initial: .milliseconds(100), multiplier: 2, maximum: .seconds(1))
            )
            // Far beyond the retries' pauses, so that waiting for it shows plainly.
            $0.publishTimeout = .seconds(30)
        }) { store, _ in
            var caught: MessageStoreError?
            let duration = await elapsed {
                do {
                    try await store.publish(Counter(value: 1), to: "nowhere.1")
                } catch {
                    caught = error as? MessageStoreError
                }
            }
            let error = try #require(caught)
            #expect(error.code == .noResponders)
            #expect(error.isRetriable)
            #expect(error.message.contains("3 attempt"))
            #expect(error.message.contains("ensureStream(\"nowhere\")"))
            // Two pauses (100 ms, then 200 ms) happened, and nothing waited for a timeout (30 s):
            // the pauses and three round trips take well under a second, even on a loaded machine.
            #expect(duration >= .milliseconds(300))
            #expect(duration < .seconds(15))
        }
    }

    @Test func noStreamFailsWithNoStreamWordingWithinAShortDeadline() async throws {
        // The deadline, not maxAttempts, ends the retries here; the stream lookup then words it.
        try await withStore(configure: {
            $0.publishRetry = .init(
                maxAttempts: 100,
                schedule: .exponential(initial: .milliseconds(50), multiplier: 2, maximum: .seconds(1)),
                deadline: .milliseconds(300)
            )
        }) { store, _ in
            var caught: MessageStoreError?
            let duration = await elapsed {
                do {
                    try await store.publish(Counter(value: 1), to: "nowhere.1", id: "n-1")
                } catch {
                    caught = error as? MessageStoreError
                }
            }
            let error = try #require(caught)
            #expect(error.code == .noResponders)
            #expect(error.subject == "nowhere.1")
            #expect(error.message.hasPrefix("no stream covers \(store.prefix).nowhere.1"))
            #expect(duration >= .milliseconds(300))
            #expect(duration < .seconds(3))
        }
    }

    @Test func cancellingAPublishEndsItsRetriesPromptly() async throws {
        try await withStore(configure: {
            $0.publishRetry = .init(
                maxAttempts: 1_000,
                schedule: .exponential(initial: .milliseconds(100), multiplier: 2, maximum: .seconds(1)),
                deadline: .seconds(60)
            )
        }) { store, _ in
            let clock = ContinuousClock()
            let started = clock.now
            let task = Task { () -> MessageStoreError? in
                do {
                    try await store.publish(Counter(value: 1), to: "nowhere.1")
                    return nil
                } catch {
                    return error as? MessageStoreError
                }
            }
            try await Task.sleep(for: .milliseconds(300))
            task.cancel()
            let error = try #require(await task.value)
            #expect(error.code == .cancelled)
            #expect(error.subject == "nowhere.1")
            #expect(clock.now - started < .seconds(3))
        }
    }

    @Test func unusableRetryConfigurationIsRejected() async throws {
        try await NATSTestServer.withServer { server in
            let connection = try await NATSConnection.connect(.init(url: server.url), logger: testLogger)
            var configuration = MessageStore.Configuration(prefix: uniquePrefix())
            configuration.publishRetry.schedule = .exponential(initial: .milliseconds(250), multiplier: .nan)
            #expect(throws: MessageStoreError.self) {
                try MessageStore(connection: connection, configuration: configuration)
            }
            configuration.publishRetry = .init(
                maxAttempts: 3,
                schedule: .exponential(initial: .zero, multiplier: 2, maximum: .seconds(1)),
                deadline: .seconds(-1)
            )
            let error = #expect(throws: MessageStoreError.self) {
                try MessageStore(connection: connection, configuration: configuration)
            }
            #expect(error?.code == .invalidConfiguration)
            await connection.close()
        }
    }

    @Test func invalidSubjectsAreRejectedBeforeSending() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            for subject in ["orders.*", "orders..1", "orders 1", ""] {
                let error = await #expect(throws: MessageStoreError.self) {
                    try await store.publish(Counter(value: 1), to: subject)
                }
                #expect(error?.code == .invalidSubject)
                #expect(error?.subject == subject)
            }
            let description = try await store.streamDescription(named: "\(store.prefix)-orders")
            #expect(description.messages == 0)
        }
    }

    @Test func headersAndMetadataArriveAsSent() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            var headers: MessageHeaders = ["traceparent": "00-abc-def-01"]
            headers.add("two", for: "Multi")
            headers.add("values", for: "Multi")
            let metadata = MessageMetadata(
                originSubject: "orders.command.1",
                traceId: "t-1",
                additionalFields: ["n": 3]
            )
            try await store.publish(
                OrderPlaced(orderId: "1", amount: 5),
                to: "orders.event.1",
                metadata: metadata,
                headers: headers
            )
            let stored = try #require(try await store.lastMessage(on: "orders.event.1"))
            #expect(stored.type == "OrderPlaced")
            #expect(stored.subject == "orders.event.1")
            #expect(stored.sequence == 1)
            #expect(stored.metadata == metadata)
            #expect(stored.headers["traceparent"] == "00-abc-def-01")
            #expect(stored.headers.values(for: "Multi") == ["two", "values"])
            #expect(abs(stored.timestamp.timeIntervalSinceNow) < 60)
            #expect(try stored.decode(as: OrderPlaced.self) == OrderPlaced(orderId: "1", amount: 5))
            #expect(try stored.data == ["orderId": "1", "amount": 5])
        }
    }

    @Test func lastMessageOfAnEmptySubjectIsNil() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            try await store.publish(Counter(value: 1), to: "orders.1")
            let none = try await store.lastMessage(on: "orders.2")
            #expect(none == nil)
            let error = await #expect(throws: MessageStoreError.self) { try await store.lastMessage(on: "nostream.1") }
            #expect(error?.code == .streamNotFound)
        }
    }

    @Test func pipelinedPublishOf10000ReturnsEveryAckInOrder() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("bulk")
            let messages = (1...10_000).map { OutgoingMessage(Counter(value: $0), to: "bulk.item.\($0 % 10)") }
            let results = await store.publish(contentsOf: messages)
            #expect(results.count == 10_000)
            let sequences = results.compactMap { try? $0.get().sequence }
            #expect(sequences == Array(1...10_000))
            let description = try await store.streamDescription(named: "\(store.prefix)-bulk")
            #expect(description.messages == 10_000)
            let last = try await store.lastMessage(on: "bulk.item.0")
            #expect(try last?.decode(as: Counter.self) == Counter(value: 10_000))
        }
    }

    @Test func pipelinedPublishReportsFailuresPerMessage() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("bulk")
            let messages = [
                OutgoingMessage(Counter(value: 1), to: "bulk.1", id: "a"),
                OutgoingMessage(Counter(value: 2), to: "bulk.*"),
                OutgoingMessage(Counter(value: 3), to: "nowhere.1"),
                OutgoingMessage(Counter(value: 4), to: "bulk.1", id: "a"),
                OutgoingMessage(Counter(value: 5), to: "bulk.2", expectedLastSubjectSequence: 7),
                OutgoingMessage(Counter(value: 6), to: "bulk.3"),
            ]
            let results = await store.publish(contentsOf: messages)
            #expect(results.count == 6)
            #expect(try results[0].get().sequence == 1)
            #expect(throws: MessageStoreError.self) { try results[1].get() }
            #expect(results[1].failure?.code == .invalidSubject)
            #expect(results[2].failure?.code == .noResponders)
            #expect(results[2].failure?.subject == "nowhere.1")
            #expect(try results[3].get().isDuplicate)
            #expect(results[4].failure?.code == .wrongExpectedSequence)
            #expect(try results[5].get().sequence == 2)
        }
    }

    @Test func pipelinedPublishTellsApartSubjectsThatAreEqualAsStrings() async throws {
        // Swift's String equality is canonical equivalence; NATS compares bytes. A batch reuses
        // the previous message's checked subject only when the bytes are the same.
        try await withStore { store, _ in
            try await store.ensureStream("names")
            let composed = "names.caf\u{E9}"
            let decomposed = "names.cafe\u{301}"
            #expect(composed == decomposed)
            let results = await store.publish(contentsOf: [
                OutgoingMessage(Counter(value: 1), to: composed),
                OutgoingMessage(Counter(value: 2), to: decomposed),
            ])
            #expect(try results[0].get().sequence == 1)
            #expect(try results[1].get().sequence == 2)
            let first = try #require(try await store.lastMessage(on: composed))
            let second = try #require(try await store.lastMessage(on: decomposed))
            #expect(first.sequence == 1)
            #expect(second.sequence == 2)
            #expect(Array(second.subject.utf8) == Array(decomposed.utf8))
        }
    }

    @Test(arguments: [1, 7])
    func pipelinedPublishNeverHasMoreInFlightThanItsWindow(maxInFlight: Int) async throws {
        // The sender blocks while the window is full and is woken as acknowledgements drain it.
        try await withStore { store, _ in
            try await store.ensureStream("bulk")
            let count = 500
            let publisher = store.jetStream.startPipelined(
                count: count,
                timeout: .seconds(10),
                maxInFlight: maxInFlight
            )
            var previous: Publication?
            for start in stride(from: 0, to: count, by: 50) {
                var chunk: [(Int, Publication)] = []
                for index in start..<(start + 50) {
                    let publication = try store.publisher.makePublication(
                        OutgoingMessage(Counter(value: index), to: "bulk.item"),
                        after: previous
                    )
                    chunk.append((index, publication))
                    previous = publication
                }
                publisher.send(chunk)
            }
            publisher.finish()
            let results = await publisher.results()
            #expect(results.compactMap { try? $0.get().sequence } == Array(1...UInt64(count)))
            let usage = publisher.batch.window.usage
            #expect(usage.now == 0)
            #expect(usage.most == maxInFlight)
            #expect(try store.connection.client.pipelineAcks().waitingCount == 0)
        }
    }

    @Test func pipelinedPublishesTimeOutWhenTheServerGoesAway() async throws {
        // Each message times out by itself, after the batch's timeout; the window drains.
        try await withStore { store, server in
            try await store.ensureStream("bulk")
            let first = await store.publish(contentsOf: [OutgoingMessage(Counter(value: 1), to: "bulk.1")])
            #expect(try first[0].get().sequence == 1)
            try await server.stop(keepingStore: true)
            let started = ContinuousClock.now
            let publisher = store.jetStream.startPipelined(count: 3, timeout: .milliseconds(300), maxInFlight: 2)
            publisher.send(
                try (0..<3).map { index in
                    (
                        index,
                        try store.publisher.makePublication(
                            OutgoingMessage(Counter(value: index), to: "bulk.1"),
                            after: nil
                        )
                    )
                }
            )
            publisher.finish()
            let results = await publisher.results()
            let elapsed = ContinuousClock.now - started
            #expect(results.map { $0.failure?.code } == Array(repeating: .publishTimedOut, count: 3))
            // Two in the window, the third sent when they timed out: it waited its own 300 ms.
            #expect(elapsed >= .milliseconds(600))
            #expect(elapsed < .seconds(5))
            #expect(publisher.batch.window.usage.now == 0)
            #expect(publisher.batch.window.usage.most == 2)
            #expect(try store.connection.client.pipelineAcks().waitingCount == 0)
            // Through the public call, failures carry the message's own subject.
            let viaStore = await store.publish(
                contentsOf: [OutgoingMessage(Counter(value: 9), to: "bulk.9")],
                timeout: .milliseconds(100)
            )
            #expect(viaStore[0].failure?.code == .publishTimedOut)
            #expect(viaStore[0].failure?.subject == "bulk.9")
        }
    }

    @Test func aReplyThatIsNotAnAcknowledgementIsATypedError() async throws {
        // Whatever answers on a publish's reply subject, the publish gets an error it can read,
        // and nothing crashes. Here the JetStream API answers with account information.
        try await withStore { store, _ in
            let acks = try store.connection.client.pipelineAcks()
            let notAStream = Publication(subject: "api", natsSubject: "$JS.API.INFO", body: [], headers: [:])
            let error = await #expect(throws: MessageStoreError.self) {
                try await acks.publish(notAStream, timeout: .seconds(5))
            }
            #expect(error?.code == .clientError)
            #expect(error?.subject == "api")
            #expect(error?.message.contains("acknowledgement could not be read") == true)
            #expect(error?.message.contains("account_info_response") == true)
            #expect(acks.waitingCount == 0)
        }
    }

    @Test func pipelinedPublishOfNothingReturnsNothing() async throws {
        try await withStore { store, _ in
            let results = await store.publish(contentsOf: [OutgoingMessage]())
            #expect(results.isEmpty)
        }
    }
}

extension Result {
    var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}

import Foundation
import MessageStore
import MessageStoreTestSupport
import MessageStoreTesting
import Testing

@testable import MessageStore

struct Deposited: MessagePayload, Equatable {
    var amount: Int
}

struct Withdrawn: MessagePayload, Equatable {
    var amount: Int
}

struct Account: Codable, Sendable, Equatable {
    var balance = 0
    var operations = 0
}

let accountProjection = Projection(initial: Account())
    .reducing(Deposited.self) { account, event in
        Account(balance: account.balance + event.data.amount, operations: account.operations + 1)
    }
    .reducing(Withdrawn.self) { account, event in
        Account(balance: account.balance - event.data.amount, operations: account.operations + 1)
    }

struct ReducerFailure: Error {}

@Suite("Reading", .serverRequired)
struct ReadTests {
    func consumerCount(_ store: MessageStore, _ category: String) async throws -> Int {
        try await store.streamDescription(named: "\(store.prefix)-\(category)").consumerCount
    }

    @Test func projectionOver10000MessagesEqualsTheFold() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("account")
            var expected = Account()
            var outgoing: [OutgoingMessage] = []
            for index in 1...10_000 {
                let amount = index % 97
                if index % 3 == 0 {
                    outgoing.append(OutgoingMessage(Withdrawn(amount: amount), to: "account.42"))
                    expected.balance -= amount
                } else {
                    outgoing.append(OutgoingMessage(Deposited(amount: amount), to: "account.42"))
                    expected.balance += amount
                }
                expected.operations += 1
                if index % 1000 == 0 {
                    // Other subjects and other types in between are not part of the projection.
                    outgoing.append(OutgoingMessage(Deposited(amount: 1_000_000), to: "account.7"))
                    outgoing.append(OutgoingMessage(Counter(value: index), to: "account.42"))
                }
            }
            let results = await store.publish(contentsOf: outgoing)
            #expect(results.allSatisfy { (try? $0.get()) != nil })

            let account = try await store.fetch("account.42", projection: accountProjection)
            #expect(account == expected)
            #expect(try await consumerCount(store, "account") == 0)
        }
    }

    @Test func upToStopsAtTheGivenSequence() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("account")
            for amount in 1...10 {
                try await store.publish(Deposited(amount: amount), to: "account.1")
            }
            let firstFour = try await store.fetch("account.1", projection: accountProjection, upTo: 4)
            #expect(firstFour == Account(balance: 10, operations: 4))
            let all = try await store.fetch("account.1", projection: accountProjection, upTo: 1_000)
            #expect(all == Account(balance: 55, operations: 10))
            #expect(try await consumerCount(store, "account") == 0)
        }
    }

    @Test func emptySubjectReturnsTheInitialValueAtOnce() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("account")
            try await store.publish(Deposited(amount: 5), to: "account.other")
            var result: Account?
            let duration = try await elapsed {
                result = try await store.fetch("account.none", projection: accountProjection)
            }
            #expect(result == Account())
            // A replay never long-polls: with nothing pending it returns after a few round trips,
            // far from the 5 s an idle poll would take even on a loaded machine.
            #expect(duration < .milliseconds(2_500))
            #expect(try await consumerCount(store, "account") == 0)
        }
    }

    @Test func throwingReducerLeavesNoConsumerBehind() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("account")
            for amount in 1...5 {
                try await store.publish(Deposited(amount: amount), to: "account.1")
            }
            let failing = Projection(initial: 0).reducing(Deposited.self) { total, event in
                if event.data.amount == 3 { throw ReducerFailure() }
                return total + event.data.amount
            }
            await #expect(throws: ReducerFailure.self) { try await store.fetch("account.1", projection: failing) }
            #expect(try await consumerCount(store, "account") == 0)
        }
    }

    @Test func malformedMessageInAProjectionIsADecodingErrorNamingItsSequence() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("account")
            try await store.publish(Deposited(amount: 1), to: "account.1")
            _ = try await store.publishRaw("{broken", to: "account.1")
            let error = await #expect(throws: MessageStoreError.self) {
                try await store.fetch("account.1", projection: accountProjection)
            }
            #expect(error?.code == .decodingFailed)
            #expect(error?.message.contains("sequence 2") == true)
            #expect(try await consumerCount(store, "account") == 0)
        }
    }

    @Test func readsFromASequenceAFromATimeAndWithALimit() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("log")
            for value in 1...5 {
                try await store.publish(Counter(value: value), to: "log.a")
            }
            // The stored timestamps come from the server's clock; take the boundary from them.
            let boundary = try #require(try await store.lastMessage(on: "log.a")).timestamp
            try await Task.sleep(for: .milliseconds(20))
            for value in 6...10 {
                try await store.publish(Counter(value: value), to: value % 2 == 0 ? "log.a" : "log.b")
            }

            var all: [Int] = []
            for try await message in store.messages(on: "log.>") {
                all.append(try message.decode(as: Counter.self).value)
            }
            #expect(all == Array(1...10))

            var fromSeven: [UInt64] = []
            for try await message in store.messages(on: "log.>", from: .sequence(7), limit: 2) {
                fromSeven.append(message.sequence)
            }
            #expect(fromSeven == [7, 8])

            var onlyA: [Int] = []
            for try await message in store.messages(on: "log.a", from: .sequence(3)) {
                onlyA.append(try message.decode(as: Counter.self).value)
            }
            #expect(onlyA == [3, 4, 5, 6, 8, 10])

            var afterBoundary: [Int] = []
            for try await message in store.messages(on: "log.>", from: .time(boundary.addingTimeInterval(0.001))) {
                afterBoundary.append(try message.decode(as: Counter.self).value)
                #expect(message.timestamp > boundary)
            }
            #expect(afterBoundary == Array(6...10))

            var none = 0
            for try await _ in store.messages(on: "log.c") { none += 1 }
            #expect(none == 0)
            #expect(try await consumerCount(store, "log") == 0)
        }
    }

    @Test func lastMessageOfASubject() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("log")
            try await store.publish(Counter(value: 1), to: "log.a")
            try await store.publish(Counter(value: 2), to: "log.a")
            try await store.publish(Counter(value: 3), to: "log.b")
            let last = try await store.lastMessage(on: "log.a")
            #expect(try last?.decode(as: Counter.self) == Counter(value: 2))
            #expect(last?.sequence == 2)
            let none = try await store.lastMessage(on: "log.c")
            #expect(none == nil)
        }
    }

    @Test func waitForFindsTheMatchingLiveMessageAndIgnoresOthers() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("events")
            let before = try await store.publish(Counter(value: 3), to: "events.x")  // matches, but is not live
            async let found = store.waitFor("events.>", as: Counter.self, after: before.sequence, timeout: .seconds(10))
            {
                $0.data.value == 3
            }
            for value in 1...5 {
                try await store.publish(Counter(value: value), to: "events.x")
            }
            let message = try await found
            #expect(message.data.value == 3)
            #expect(message.subject == "events.x")
            #expect(message.sequence == 4)
            #expect(try await consumerCount(store, "events") == 0)

            // Without `after`, the wait starts at the stream's end when it is set up.
            let waiter = Task {
                try await store.waitFor("events.>", timeout: .seconds(10)) { message in
                    (try? message.decode(as: Counter.self).value) == 42
                }
            }
            try await waitUntil("waiter subscribed") { try await consumerCount(store, "events") == 1 }
            try await store.publish(Counter(value: 42), to: "events.y")
            #expect(try await waiter.value.subject == "events.y")
        }
    }

    @Test func waitForTimesOutWithItsOwnError() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("events")
            try await store.publish(Counter(value: 1), to: "events.x")
            var caught: MessageStoreError?
            let duration = await elapsed {
                do {
                    _ = try await store.waitFor("events.>", timeout: .milliseconds(300))
                } catch {
                    caught = error as? MessageStoreError
                }
            }
            #expect(caught?.code == .waitTimedOut)
            #expect(duration >= .milliseconds(300))
            #expect(duration < .seconds(3))
            #expect(try await consumerCount(store, "events") == 0)
        }
    }

    @Test func snapshotsGiveTheSameStateAndFollowTheirFrequency() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("account")
            let policy = SnapshotPolicy(name: "balance", version: 1, frequency: 10)
            for amount in 1...5 {
                try await store.publish(Deposited(amount: amount), to: "account.9")
            }
            var entity = try await store.loadEntity("account.9", projection: accountProjection, snapshots: policy)
            #expect(entity.state == Account(balance: 15, operations: 5))
            #expect(entity.version == 5)
            #expect(!entity.usedSnapshot)
            let snapshots = SnapshotStore(store: store)
            // Five messages replayed: fewer than ten, so no snapshot yet.
            #expect(try await snapshots.read(Account.self, entity: "account.9", policy: policy) == nil)

            for amount in 6...11 {
                try await store.publish(Deposited(amount: amount), to: "account.9")
            }
            entity = try await store.loadEntity("account.9", projection: accountProjection, snapshots: policy)
            #expect(entity.version == 11)
            let written = try #require(try await snapshots.read(Account.self, entity: "account.9", policy: policy))
            #expect(written.sequence == 11)
            #expect(written.state == Account(balance: 66, operations: 11))

            try await store.publish(Withdrawn(amount: 6), to: "account.9")
            let fromSnapshot = try await store.loadEntity("account.9", projection: accountProjection, snapshots: policy)
            let fromScratch = try await store.loadEntity("account.9", projection: accountProjection)
            #expect(fromSnapshot.usedSnapshot)
            #expect(!fromScratch.usedSnapshot)
            #expect(fromSnapshot.state == fromScratch.state)
            #expect(fromSnapshot.version == fromScratch.version)
            #expect(fromSnapshot.state == Account(balance: 60, operations: 12))
            // One message since the snapshot: the snapshot stays at 11.
            #expect(try await snapshots.read(Account.self, entity: "account.9", policy: policy)?.sequence == 11)
        }
    }

    @Test func snapshotOfAnotherVersionIsIgnored() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("account")
            for amount in 1...3 {
                try await store.publish(Deposited(amount: amount), to: "account.5")
            }
            let old = SnapshotPolicy(name: "balance", version: 1, frequency: 1)
            _ = try await store.loadEntity("account.5", projection: accountProjection, snapshots: old)
            // A snapshot whose numbers a newer projection would not produce: version 2 must ignore it.
            try await SnapshotStore(store: store)
                .write(Account(balance: -1, operations: -1), sequence: 3, entity: "account.5", policy: old)
            let newer = SnapshotPolicy(name: "balance", version: 2, frequency: 1_000)
            let entity = try await store.loadEntity("account.5", projection: accountProjection, snapshots: newer)
            #expect(!entity.usedSnapshot)
            #expect(entity.state == Account(balance: 6, operations: 3))
            let stale = try await store.loadEntity("account.5", projection: accountProjection, snapshots: old)
            #expect(stale.usedSnapshot)
            #expect(stale.state == Account(balance: -1, operations: -1))
        }
    }

    @Test func twoWritersOfOneEntityExactlyOneSucceeds() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("account")
            try await store.publish(Deposited(amount: 100), to: "account.1")
            let first = try await store.loadEntity("account.1", projection: accountProjection)
            let second = try await store.loadEntity("account.1", projection: accountProjection)
            #expect(first.version == second.version)

            async let one = Result { try await store.append(Withdrawn(amount: 80), to: first) }
            async let two = Result { try await store.append(Withdrawn(amount: 70), to: second) }
            let outcomes = await [one, two]
            let successes = outcomes.filter { (try? $0.get()) != nil }
            let conflicts = outcomes.compactMap { $0.failure as? MessageStoreError }.filter {
                $0.code == .wrongExpectedSequence
            }
            #expect(successes.count == 1)
            #expect(conflicts.count == 1)
            let account = try await store.loadEntity("account.1", projection: accountProjection)
            #expect(account.state.operations == 2)
            #expect(account.state.balance == 20 || account.state.balance == 30)

            // A new entity has version 0: appending expects no message yet.
            let fresh = try await store.loadEntity("account.2", projection: accountProjection)
            #expect(fresh.version == 0)
            try await store.append(Deposited(amount: 1), to: fresh)
            await #expect(throws: MessageStoreError.self) { try await store.append(Deposited(amount: 1), to: fresh) }
        }
    }

    @Test func followingCopiesCorrelationAndTheCorrelatedReadFindsTheChain() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            var start = MessageMetadata(traceId: "trace-1")
            start.correlationId = "checkout-7"
            try await store.publish(OrderPlaced(orderId: "7", amount: 1), to: "orders.command.7", metadata: start)
            try await store.publish(OrderPlaced(orderId: "8", amount: 1), to: "orders.command.8")
            let cause = try #require(try await store.lastMessage(on: "orders.command.7"))

            let next = MessageMetadata.following(cause)
            #expect(next.correlationId == "checkout-7")
            #expect(next.traceId == "trace-1")
            #expect(next.originSubject == "orders.command.7")
            #expect(next.causation?.subject == "orders.command.7")
            #expect(next.causation?.sequence == cause.sequence)
            try await store.publish(OrderCancelled(orderId: "7"), to: "orders.event.7", metadata: next)

            let chain = try await store.messages(correlatedWith: "checkout-7", in: "orders")
            #expect(chain.map(\.subject) == ["orders.command.7", "orders.event.7"])

            // Without a correlation id, the cause's own subject and sequence start one.
            let other = try #require(try await store.lastMessage(on: "orders.command.8"))
            #expect(MessageMetadata.following(other).correlationId == "orders.command.8#\(other.sequence)")
            #expect(try await store.streamDescription(named: "\(store.prefix)-orders").consumerCount == 0)
        }
    }
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do {
            self = .success(try await body())
        } catch {
            self = .failure(error)
        }
    }
}

import Foundation
import MessageStore
import MessageStoreTestSupport
import MessageStoreTesting
import Testing

/// Runs a worker of `consumer` on `orders.>` until it has handled `count` messages, then stops
/// it: afterwards the durable consumer exists with those acknowledged.
private func handle(_ count: Int, in store: MessageStore, consumer: String) async throws {
    let (handled, record) = AsyncStream.makeStream(of: Void.self)
    let worker = try store.subscription(
        to: "orders.>",
        consumer: consumer,
        handlers: MessageHandlers().handling(OrderPlaced.self) { _ in record.yield() }
    )
    let running = Task { try await worker.run() }
    var seen = 0
    for await _ in handled {
        seen += 1
        if seen == count { break }
    }
    worker.stop()
    try await running.value
}

@Suite("message-store CLI: stats, trace, health, progress", .serverRequired)
struct CLIObservabilityTests {
    @Test func statsShowMessagesTimesSubjectsAndConsumerLag() async throws {
        try await withCLIStore { store, global in
            try await store.ensureStream("orders")
            try await store.ensureStream("payments")
            let before = Date()
            for id in 1...2 {
                try await store.publish(OrderPlaced(orderId: "\(id)", amount: id), to: "orders.event.\(id)")
            }
            try await handle(2, in: store, consumer: "stats-worker")
            for id in 3...5 {
                try await store.publish(OrderPlaced(orderId: "\(id)", amount: id), to: "orders.event.\(id)")
            }

            let output = try await CLI.run(["stats", "orders", "--json"] + global)
            #expect(output.status == 0, "\(output.stderr)")
            #expect(output.lines.count == 1)
            let stats = try json(output.lines[0])
            #expect(stats["name"] == .string("\(store.prefix)-orders"))
            #expect(stats["messages"] == 5)
            #expect(stats["subjectCount"] == 5)
            #expect(stats["firstSeq"] == 1)
            #expect(stats["lastSeq"] == 5)
            guard case .string(let first) = stats["firstTime"], case .string(let last) = stats["lastTime"] else {
                Issue.record("no times in \(stats)")
                return
            }
            let firstTime = try Date(first, strategy: .iso8601)
            let lastTime = try Date(last, strategy: .iso8601)
            #expect(firstTime >= before.addingTimeInterval(-1) && firstTime <= lastTime && lastTime <= Date())
            #expect(
                stats["consumers"] == [
                    [
                        "name": "stats-worker", "filter": .string("\(store.prefix).orders.>"), "pending": 3,
                        "ackPending": 0, "redelivered": 0, "lag": 3,
                    ]
                ]
            )

            // Every stream under the prefix, in name order; an empty one has no times.
            let all = try await CLI.run(["stats", "--json"] + global)
            #expect(all.status == 0, "\(all.stderr)")
            let names = try all.lines.map { try json($0)["name"] }
            #expect(names == [.string("\(store.prefix)-orders"), .string("\(store.prefix)-payments")])
            let payments = try json(all.lines[1])
            #expect(payments["messages"] == 0)
            #expect(payments["firstTime"] == .null)
            #expect(payments["consumers"] == [])

            let text = try await CLI.run(["stats"] + global)
            #expect(text.status == 0, "\(text.stderr)")
            #expect(text.stdout.contains("messages  5 ("))
            #expect(text.stdout.contains("on 5 subject(s)"))
            let row = try #require(
                text.lines.first { $0.trimmingCharacters(in: .whitespaces).hasPrefix("stats-worker") }
            )
            #expect(row.split(separator: " ").map(String.init) == ["stats-worker", "3", "0", "0", "3"])
            #expect(text.stdout.contains("no consumers"))

            let missing = try await CLI.run(["stats", "nothing"] + global)
            #expect(missing.status == 1)
            #expect(missing.stderr.hasPrefix("error: no stream stores nothing.>"))
        }
    }

    @Test func traceShowsTheCausalChainInOrder() async throws {
        try await withCLIStore { store, global in
            try await store.ensureStream("orders")
            try await store.ensureStream("payments")
            // orders.command.1 (no correlation id: the others derive theirs from it)
            //   orders.event.1
            //     payments.command.1
            //   orders.event.2
            // and, in the same conversation, one whose cause is elsewhere; one of another.
            try await store.publish(OrderPlaced(orderId: "1", amount: 1), to: "orders.command.1")
            let command = try #require(try await store.lastMessage(on: "orders.command.1"))
            try await store.publish(
                OrderPlaced(orderId: "1", amount: 1),
                to: "orders.event.1",
                metadata: .following(command)
            )
            let event = try #require(try await store.lastMessage(on: "orders.event.1"))
            try await store.publish(
                OrderPlaced(orderId: "1", amount: 1),
                to: "payments.command.1",
                metadata: .following(event)
            )
            try await store.publish(
                OrderPlaced(orderId: "1", amount: 2),
                to: "orders.event.2",
                metadata: .following(command)
            )
            var elsewhere = MessageMetadata.following(event)
            elsewhere.additionalFields[MessageMetadata.Key.causationSubject] = "audit.log.1"
            try await store.publish(OrderPlaced(orderId: "1", amount: 3), to: "orders.event.3", metadata: elsewhere)
            var other = MessageMetadata(originSubject: nil)
            other.correlationId = "another"
            try await store.publish(OrderPlaced(orderId: "9", amount: 9), to: "orders.event.9", metadata: other)

            let id = "orders.command.1#\(command.sequence)"
            #expect(event.metadata?.correlationId == id)
            let output = try await CLI.run(["trace", "--correlation-id", id, "orders", "payments", "--json"] + global)
            #expect(output.status == 0, "\(output.stderr)")
            let chain = try output.lines.map { line -> (JSONValue?, JSONValue?, JSONValue?) in
                let object = try json(line)
                return (object["subject"], object["depth"], object["causedBy"])
            }
            let expected: [(JSONValue?, JSONValue?, JSONValue?)] = [
                ("orders.command.1", 0, nil),
                ("orders.event.1", 1, .string(id)),
                ("payments.command.1", 2, .string("orders.event.1#\(event.sequence)")),
                ("orders.event.2", 1, .string(id)),
                ("orders.event.3", 0, .string("audit.log.1#\(event.sequence)")),
            ]
            #expect(chain.count == expected.count, "\(output.stdout)")
            for (got, want) in zip(chain, expected) {
                #expect(got.0 == want.0 && got.1 == want.1 && got.2 == want.2, "\(got) != \(want)")
            }

            let text = try await CLI.run(["trace", "--correlation-id", id, "orders", "payments"] + global)
            #expect(text.status == 0, "\(text.stderr)")
            #expect(text.lines.count == 5)
            #expect(text.lines[2].hasPrefix("    └ "))
            #expect(text.lines[2].contains("payments.command.1"))
            #expect(text.lines[4].hasSuffix("(caused by audit.log.1#\(event.sequence))"))

            let none = try await CLI.run(["trace", "--correlation-id", "nobody", "orders"] + global)
            #expect(none.status == 1)
            #expect(none.stderr.hasPrefix("error: no message in orders has correlation id nobody"))
        }
    }

    @Test func healthExitsZeroWhenHealthyAndOneWithTheReasonWhenNot() async throws {
        try await NATSTestServer.withServer { server in
            let connection = try await NATSConnection.connect(.init(url: server.url))
            let prefix = "clihealth"
            let store = try MessageStore(connection: connection, prefix: prefix, createMissingStreams: true)
            let global = ["--server", server.url, "--prefix", prefix]
            try await store.ensureStream("orders")
            try await store.publish(OrderPlaced(orderId: "1", amount: 1), to: "orders.event.1")
            try await handle(1, in: store, consumer: "billing")
            for id in 2...4 {
                try await store.publish(OrderPlaced(orderId: "\(id)", amount: id), to: "orders.event.\(id)")
            }

            let healthy = try await CLI.run(["health", "orders", "--consumer", "orders:billing", "--json"] + global)
            #expect(healthy.status == 0, "\(healthy.stdout) \(healthy.stderr)")
            let report = try json(healthy.stdout.trimmingCharacters(in: .newlines))
            #expect(report["level"] == "healthy")
            #expect(report["reasons"] == [])
            #expect(report["server"] == .string(server.url))
            if case .double(let milliseconds) = report["roundTripMs"] {
                #expect(milliseconds > 0 && milliseconds < 1_000)
            } else {
                Issue.record("no round trip in \(report)")
            }
            #expect(report["streams"] == [["category": "orders", "stream": "clihealth-orders", "messages": 4]])
            #expect(
                report["consumers"] == [
                    [
                        "category": "orders", "name": "billing", "pending": 3, "ackPending": 0, "redelivered": 0,
                        "lag": 3,
                    ]
                ]
            )

            let text = try await CLI.run(["health"] + global)
            #expect(text.status == 0)
            #expect(text.lines.first?.hasPrefix("healthy: connected to \(server.url), round trip ") == true)

            let cases: [([String], String)] = [
                (["--consumer", "orders:shipping"], "clihealth-orders has no consumer shipping"),
                (
                    ["--consumer", "orders:billing", "--max-lag", "2"],
                    "consumer billing has 3 unacknowledged message(s), more than 2"
                ),
                (["payments"], "no stream stores payments.> under prefix \"clihealth\""),
            ]
            for (arguments, reason) in cases {
                let output = try await CLI.run(["health"] + arguments + global)
                #expect(output.status == 1, "\(arguments): \(output.stdout)")
                #expect(
                    output.lines.first?.hasPrefix("unhealthy: connected to \(server.url), round trip ") == true
                )
                #expect(output.lines.dropFirst().map { $0.trimmingCharacters(in: .whitespaces) } == [reason])
            }
            let withinLag = try await CLI.run(["health", "--consumer", "orders:billing", "--max-lag", "3"] + global)
            #expect(withinLag.status == 0, "\(withinLag.stdout)")

            let invalid = try await CLI.run(["health", "--consumer", "billing"] + global)
            #expect(invalid.status != 0 && invalid.status != 1)
            #expect(invalid.stderr.contains("--consumer billing is not CATEGORY:NAME"))
            await connection.close()

            try await server.stop()
            let started = ContinuousClock.now
            let down = try await CLI.run(["health", "--json", "--timeout", "1s"] + global)
            #expect(ContinuousClock.now - started < .seconds(10))
            #expect(down.status == 1)
            let downReport = try json(down.stdout.trimmingCharacters(in: .newlines))
            #expect(downReport["level"] == "unhealthy")
            guard case .array(let reasons) = downReport["reasons"], case .string(let reason) = reasons.first else {
                Issue.record("no reason in \(downReport)")
                return
            }
            #expect(reason.hasPrefix("cannot reach a NATS server"))
        }
    }

    @Test func readAndReplayShowTheirProgressOnStderr() async throws {
        try await withCLIStore { store, global in
            try await store.ensureStream("orders")
            for id in 1...5 {
                try await store.publish(OrderPlaced(orderId: "\(id)", amount: id), to: "orders.event.\(id)")
            }
            let read = try await CLI.run(["read", "orders.>", "--progress"] + global)
            #expect(read.status == 0, "\(read.stderr)")
            #expect(read.lines.count == 5)
            let last = try #require(read.stderr.split(separator: "\r").last)
            #expect(last.hasPrefix("read 5 message(s), "))
            #expect(last.hasSuffix("/s\n"))

            // Not a terminal and not asked for: stderr stays empty.
            let quiet = try await CLI.run(["read", "orders.>"] + global)
            #expect(quiet.stderr.isEmpty)

            try await store.ensureStream("dlq")
            var headers = MessageHeaders()
            headers.add("orders.event.1", for: DeadLetterHeader.originalSubject)
            try await store.publish(
                rawBody: Array(#"{"type":"OrderPlaced","data":{"orderId":"1","amount":1}}"#.utf8),
                to: "dlq.orders.event.1",
                headers: headers
            )
            let replayed = try await CLI.run(["replay", "dlq", "--progress"] + global)
            #expect(replayed.status == 0, "\(replayed.stderr)")
            #expect(replayed.stderr.split(separator: "\r").last?.hasPrefix("replayed 1 message(s), ") == true)
            #expect(replayed.lines.last == "1 message(s) replayed")
        }
    }
}

import Foundation
import MessageStore
import MessageStoreTestSupport
import MessageStoreTesting
import Testing

/// Runs the built `message-store` binary, which sits next to the test executable.
enum CLI {
    static let binary = ChildProcess.builtExecutable(named: "message-store")

    /// Runs the binary to its end; the waiting happens off the cooperative pool.
    static func run(_ arguments: [String], timeout: Duration = .seconds(30)) async throws -> ChildProcess.Output {
        try await ChildProcess.run(binary, arguments, timeout: timeout)
    }
}

struct OrderPlaced: MessagePayload, Equatable {
    var orderId: String
    var amount: Int
}

func withCLIStore(_ body: (MessageStore, [String]) async throws -> Void) async throws {
    try await NATSTestServer.withServer { server in
        let connection = try await NATSConnection.connect(.init(url: server.url))
        let prefix = "cli" + String(UUID().uuidString.prefix(6)).lowercased()
        let store = try MessageStore(connection: connection, prefix: prefix, createMissingStreams: true)
        try await body(store, ["--server", server.url, "--prefix", prefix])
        await connection.close()
    }
}

func json(_ line: String) throws -> [String: JSONValue] {
    guard case .object(let object) = try JSONDecoder().decode(JSONValue.self, from: Data(line.utf8)) else {
        throw CocoaError(.coderInvalidValue)
    }
    return object
}

@Suite("message-store CLI", .serverRequired)
struct CLITests {
    @Test func publishReadLastAndStreams() async throws {
        try await withCLIStore { store, global in
            try await store.ensureStream("orders")
            var metadata = MessageMetadata(originSubject: "orders.command.1")
            metadata["tenant"] = "acme"
            try await store.publish(OrderPlaced(orderId: "1", amount: 5), to: "orders.event.1", metadata: metadata)

            let published = try await CLI.run(
                ["publish", "orders.event.2", "OrderPlaced", #"{"orderId":"2","amount":7}"#, "--id", "o2"] + global
            )
            #expect(published.status == 0, "\(published.stderr)")
            #expect(published.stdout.contains("stored in \(store.prefix)-orders at sequence 2"))
            let again = try await CLI.run(
                ["publish", "orders.event.2", "OrderPlaced", #"{"orderId":"2","amount":7}"#, "--id", "o2"] + global
            )
            #expect(again.stdout.contains("duplicate"))

            let read = try await CLI.run(["read", "orders.>", "--json"] + global)
            #expect(read.status == 0, "\(read.stderr)")
            #expect(read.lines.count == 2)
            let first = try json(read.lines[0])
            #expect(Set(first.keys) == ["seq", "subject", "type", "data", "metadata", "timestamp"])
            #expect(first["seq"] == 1)
            #expect(first["subject"] == "orders.event.1")
            #expect(first["type"] == "OrderPlaced")
            #expect(first["data"] == ["orderId": "1", "amount": 5])
            #expect(first["metadata"] == ["originSubject": "orders.command.1", "tenant": "acme"])
            guard case .string(let timestamp) = first["timestamp"] else { throw CocoaError(.coderInvalidValue) }
            #expect(try Date(timestamp, strategy: .iso8601) <= Date())
            let second = try json(read.lines[1])
            #expect(Set(second.keys) == ["seq", "subject", "type", "data", "timestamp"])
            #expect(second["data"] == ["orderId": "2", "amount": 7])

            let limited = try await CLI.run(["read", "orders.>", "--from", "2", "--limit", "1"] + global)
            #expect(limited.lines.count == 1)
            #expect(limited.stdout.contains("orders.event.2"))

            let last = try await CLI.run(["last", "orders.event.1", "--json"] + global)
            #expect(try json(last.stdout.trimmingCharacters(in: .newlines))["seq"] == 1)

            let streams = try await CLI.run(["streams"] + global)
            #expect(streams.status == 0)
            #expect(streams.lines.first?.hasPrefix("STREAM") == true)
            #expect(streams.stdout.contains("\(store.prefix)-orders"))
            #expect(streams.stdout.contains("\(store.prefix).orders.>"))
        }
    }

    @Test func consumersShowPendingAckPendingAndRedelivered() async throws {
        try await withCLIStore { store, global in
            try await store.ensureStream("orders")
            let worker = try store.subscription(to: "orders.>", consumer: "order-worker", handlers: MessageHandlers())
            let task = Task { try await worker.run() }
            await Task.yield()
            // The consumer exists once the worker has started; publishing after that leaves it work.
            for _ in 0..<500 {
                if (try? await store.consumers(of: "orders").isEmpty) == false { break }
                try await Task.sleep(for: .milliseconds(10))
            }
            worker.stop()
            try await task.value
            try await store.publish(OrderPlaced(orderId: "1", amount: 1), to: "orders.event.1")
            let output = try await CLI.run(["consumers", "orders"] + global)
            #expect(output.status == 0, "\(output.stderr)")
            #expect(output.lines.first?.contains("ACK PENDING") == true)
            let row = try #require(output.lines.first { $0.hasPrefix("order-worker") })
            #expect(
                row.split(separator: " ", omittingEmptySubsequences: true).map(String.init) == [
                    "order-worker", "1", "0", "0",
                ]
            )
        }
    }

    @Test func deadLettersAreListedWithTheirReasonAndReplayed() async throws {
        try await withCLIStore { store, global in
            try await store.ensureStream("orders")
            try await store.ensureStream("dlq")
            var configuration = Subscription.Configuration()
            configuration.deadLetterSubject = "dlq"
            let worker = try store.subscription(
                to: "orders.>",
                consumer: "strict",
                handlers: MessageHandlers().handling(OrderPlaced.self) { message in
                    if message.headers["Replayed"] == nil {
                        throw MessageTermination(reason: "order \(message.data.orderId) is unknown")
                    }
                },
                configuration: configuration
            )
            try await store.publish(
                OrderPlaced(orderId: "9", amount: 1),
                to: "orders.command.9",
                headers: ["Keep": "me"]
            )
            let task = Task { try await worker.run() }
            let letter = try await store.waitFor("dlq.>", after: 0, timeout: .seconds(20))
            worker.stop()
            try await task.value

            let listed = try await CLI.run(["dead-letters", "dlq", "--json"] + global)
            #expect(listed.status == 0, "\(listed.stderr)")
            let entry = try json(try #require(listed.lines.first))
            #expect(entry["reason"] == "order 9 is unknown")
            #expect(entry["cause"] == "terminated-by-handler")
            #expect(entry["originalSubject"] == "orders.command.9")
            #expect(entry["subject"] == "dlq.orders.command.9")
            #expect(entry["type"] == "OrderPlaced")
            let human = try await CLI.run(["dead-letters", "dlq"] + global)
            #expect(human.stdout.contains("order 9 is unknown"))

            let before = try #require(try await store.lastMessage(on: "orders.command.9")).sequence
            let replayed = try await CLI.run(["replay", "dlq"] + global)
            #expect(replayed.status == 0, "\(replayed.stderr)")
            #expect(replayed.stdout.contains("1 message(s) replayed"))
            let copy = try #require(try await store.lastMessage(on: "orders.command.9"))
            #expect(copy.sequence > before)
            #expect(copy.body == letter.body)
            #expect(copy.headers["Keep"] == "me")
            #expect(copy.headers[DeadLetterHeader.reason] == nil)
        }
    }

    @Test func tailPrintsNewMessagesUntilInterrupted() async throws {
        try await withCLIStore { store, global in
            try await store.ensureStream("orders")
            try await store.publish(OrderPlaced(orderId: "old", amount: 1), to: "orders.event.old")
            let process = Process()
            process.executableURL = CLI.binary
            process.arguments = ["tail", "orders.>", "--json"] + global
            let out = Pipe()
            process.standardOutput = out
            process.standardError = FileHandle.nullDevice
            try process.run()
            defer { if process.isRunning { process.terminate() } }

            // The tail subscribes before it prints anything: publish until a line comes out.
            let reader = Task { () -> String? in
                await ChildProcess.blocking {
                    var buffer = Data()
                    while true {
                        let chunk = out.fileHandleForReading.availableData
                        if chunk.isEmpty { return nil }
                        buffer.append(chunk)
                        if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                            return String(decoding: buffer[..<newline], as: UTF8.self)
                        }
                    }
                }
            }
            // Publish until the tail prints (it only shows messages stored after it started);
            // the process is terminated after 20 s at the latest, which ends the reader.
            let publisher = Task {
                var count = 0
                while !Task.isCancelled {
                    count += 1
                    try await store.publish(OrderPlaced(orderId: "new\(count)", amount: count), to: "orders.event.new")
                    try await Task.sleep(for: .milliseconds(200))
                }
            }
            let timeout = Task.detached {
                try await Task.sleep(for: .seconds(20))
                process.terminate()
            }
            let line = try #require(await reader.value)
            publisher.cancel()
            timeout.cancel()
            let object = try json(line)
            #expect(object["subject"] == "orders.event.new")
            #expect(object["type"] == "OrderPlaced")
            process.terminate()
            await ChildProcess.blocking { process.waitUntilExit() }
        }
    }

    @Test func errorsAreOneLineOnStderrAndAFailingStatus() async throws {
        try await withCLIStore { store, global in
            try await store.ensureStream("orders")
            let cases: [([String], String)] = [
                (["read", "payments.>"], "no stream stores payments.>"),
                (["publish", "orders 1", "T", "{}"], "invalid subject"),
                (["publish", "orders.1", "T", "{not json"], "invalid JSON"),
                (["publish", "orders.1", "T", "[1]"], "must be a JSON object"),
                (["last", "orders.none"], "has no messages"),
            ]
            for (arguments, expected) in cases {
                let output = try await CLI.run(arguments + global)
                #expect(output.status != 0, "\(arguments) succeeded")
                #expect(output.stderr.hasPrefix("error: "), "\(arguments): \(output.stderr)")
                #expect(output.stderr.contains(expected), "\(arguments): \(output.stderr)")
                #expect(output.stderr.split(separator: "\n").count == 1)
            }
        }
        let port = try NATSTestServer.freePort()
        let unreachable = try await CLI.run(["streams", "--server", "nats://127.0.0.1:\(port)"])
        #expect(unreachable.status != 0)
        #expect(unreachable.stderr.hasPrefix("error: cannot reach a NATS server"))
        #expect(unreachable.stderr.split(separator: "\n").count == 1)
    }
}

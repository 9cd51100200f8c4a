import Foundation
import MessageStoreTestSupport
import MessageStoreTesting
import Testing

@testable import MessageStore

/// Runs the Python `message-store` 0.4.0 package against the same server.
///
/// Enabled when the interpreter (`MESSAGE_STORE_PYTHON`, default `python3`) can import
/// `message_store`; `MESSAGE_STORE_REQUIRE_INTEROP=1` (set by scripts/test.sh) turns a missing
/// package into a failure instead of a skip.
enum Python {
    static let interpreter = ProcessInfo.processInfo.environment["MESSAGE_STORE_PYTHON"] ?? "python3"
    static let required = ProcessInfo.processInfo.environment["MESSAGE_STORE_REQUIRE_INTEROP"] == "1"
    static let scripts = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Interop")

    /// Whether the interpreter can import the packages; checked once per test process.
    private static let availability = Task { (try? await run(["-c", "import message_store, nats"]))?.status == 0 }

    static func isAvailable() async -> Bool { await availability.value }

    static func enabled() async -> Bool {
        if required { return true }
        return await isAvailable()
    }

    /// Runs the interpreter with `arguments`, stopping it after `timeout`.
    static func run(_ arguments: [String], timeout: Duration = .seconds(30)) async throws -> ChildProcess.Output {
        try await ChildProcess.run(URL(fileURLWithPath: "/usr/bin/env"), [interpreter] + arguments, timeout: timeout)
    }

    static func script(_ name: String, _ arguments: [String]) async throws -> ChildProcess.Output {
        try await run([scripts.appendingPathComponent(name).path] + arguments)
    }
}

@Suite("Interop with the Python message-store package", .serverRequired, .enabled { await Python.enabled() })
struct InteropTests {
    @Test func pythonReadsWhatSwiftPublished() async throws {
        try #require(
            await Python.isAvailable(),
            "\(Python.interpreter) cannot import message_store and nats; run scripts/setup.sh"
        )
        try await withStore { store, server in
            try await store.ensureStream("orders")
            let metadata = MessageMetadata(
                originSubject: "orders.command.42",
                traceId: "trace-swift",
                additionalFields: ["tenant": "acme", "weights": [1, 2.5]]
            )
            try await store.publish(OrderPlaced(orderId: "42", amount: 5), to: "orders.event.42", metadata: metadata)
            try await store.publish(RenamedEvent(value: 0.5), to: "orders.event.42")

            let output = try await Python.script("python_reads.py", [server.url, store.prefix, "orders.event.42"])
            #expect(output.status == 0, "python failed: \(output.stderr)")
            let read = try JSONDecoder().decode([JSONValue].self, from: Data(output.stdout.utf8))
            #expect(read.count == 2)
            #expect(
                read.first
                    == [
                        "type": "OrderPlaced",
                        "data": ["orderId": "42", "amount": 5],
                        "subject": "orders.event.42",
                        "seq": 1,
                        "metadata": [
                            "originSubject": "orders.command.42", "traceId": "trace-swift", "tenant": "acme",
                            "weights": [1, 2.5],
                        ],
                    ]
            )
            #expect(
                read.last
                    == ["type": "legacy.renamed.v1", "data": ["value": 0.5], "subject": "orders.event.42", "seq": 2]
            )
        }
    }

    @Test func swiftReadsWhatPythonPublished() async throws {
        try #require(
            await Python.isAvailable(),
            "\(Python.interpreter) cannot import message_store and nats; run scripts/setup.sh"
        )
        try await withStore { store, server in
            try await store.ensureStream("orders")
            let output = try await Python.script(
                "python_publishes.py",
                [server.url, store.prefix, "orders.event.py-42", "py-1"]
            )
            #expect(output.status == 0, "python failed: \(output.stderr)")
            let ack = try JSONDecoder().decode(JSONValue.self, from: Data(output.stdout.utf8))
            #expect(ack == ["stream": .string("\(store.prefix)-orders"), "seq": 1, "duplicate": false])

            let stored = try #require(try await store.lastMessage(on: "orders.event.py-42"))
            #expect(stored.type == OrderPlaced.messageType)
            #expect(stored.subject == "orders.event.py-42")
            #expect(try stored.decode(as: OrderPlaced.self) == OrderPlaced(orderId: "py-42", amount: 17))
            #expect(
                stored.metadata
                    == MessageMetadata(
                        originSubject: "orders.command.py-42",
                        traceId: "trace-py",
                        additionalFields: ["tenant": "acme", "attempt": 2]
                    )
            )
            #expect(stored.headers[MessageHeaderName.messageID] == "py-1")
            #expect(stored.headers["X-Origin"] == "python")

            // The Python package's message id de-duplicates against this library's publishes too.
            let duplicate = try await store.publish(
                OrderPlaced(orderId: "other", amount: 0),
                to: "orders.event.py-42",
                id: "py-1"
            )
            #expect(duplicate.isDuplicate)
        }
    }

    /// A peer's body with `type` twice: Python's `json` keeps the last value, `JSONDecoder` the
    /// first, so a Python and a Swift worker on one stream would handle it as two different types.
    /// The store refuses such bodies instead (poison for a worker, `decodingFailed` for a read):
    /// no Swift reader ever takes it for the first type.
    @Test func aBodyWithADuplicateTypeIsNeverReadAsTheFirstType() async throws {
        try #require(
            await Python.isAvailable(),
            "\(Python.interpreter) cannot import message_store and nats; run scripts/setup.sh"
        )
        try await withStore { store, server in
            try await store.ensureStream("orders")
            let body = #"{"type":"OrderPlaced","data":{"orderId":"1","amount":1},"type":"legacy.renamed.v1"}"#
            try await RawNATSPeer.publish(
                port: server.port,
                subject: "\(store.prefix).orders.event.dup",
                headerBlock: "NATS/1.0\r\n\r\n",
                body: Array(body.utf8)
            )

            let output = try await Python.script("python_reads.py", [server.url, store.prefix, "orders.event.dup"])
            #expect(output.status == 0, "python failed: \(output.stderr)")
            let read = try JSONDecoder().decode([JSONValue].self, from: Data(output.stdout.utf8))
            guard case .object(let first)? = read.first else {
                Issue.record("Python read nothing: \(output.stdout)")
                return
            }
            #expect(first["type"] == "legacy.renamed.v1", "Python keeps the last key: \(first)")
            // What Foundation's decoder alone would have said.
            struct TypeOnly: Decodable { var type: String }
            #expect(try JSONDecoder().decode(TypeOnly.self, from: Data(body.utf8)).type == "OrderPlaced")

            let error = await #expect(throws: MessageStoreError.self) {
                try await store.lastMessage(on: "orders.event.dup")
            }
            #expect(error?.code == .decodingFailed)
            #expect(error?.message.contains("appears twice") == true, "\(String(describing: error))")

            // A worker dead-letters it at once (malformed, not retried), unhandled.
            try await store.ensureStream("dlq")
            let handled = Recorder<OrderPlaced>()
            var configuration = Subscription.Configuration()
            configuration.deadLetterSubject = "dlq"
            let worker = try store.subscription(
                to: "orders.event.>",
                consumer: "dup-worker",
                handlers: MessageHandlers().handling(OrderPlaced.self) { handled.record($0.data) },
                configuration: configuration
            )
            try await withRunning(worker) {
                try await waitUntil("dead letter of the duplicate-key body") {
                    try await store.lastMessageRaw(on: "dlq.orders.event.dup") != nil
                }
            }
            let letter = try #require(try await store.lastMessageRaw(on: "dlq.orders.event.dup"))
            #expect(letter.body == Array(body.utf8))
            #expect(handled.events.isEmpty)
        }
    }

    @Test func deadLettersUseThePythonPackagesLayout() async throws {
        try #require(
            await Python.isAvailable(),
            "\(Python.interpreter) cannot import message_store and nats; run scripts/setup.sh"
        )
        try await withStore { store, server in
            try await store.ensureStream("orders")
            try await store.ensureStream("dlq")
            let swiftPoison = try await store.publish(OrderPlaced(orderId: "s", amount: 1), to: "orders.command.swift")
            let pythonPoison = try await store.publish(OrderPlaced(orderId: "p", amount: 2), to: "orders.pycommand.p")

            // Python's worker gives up on its message: four deliveries, then TERM and a copy.
            let output = try await Python.script(
                "python_dead_letters.py",
                [server.url, store.prefix, "orders.pycommand.>", "python-worker", "dlq", "dlq.orders.pycommand.p"]
            )
            #expect(output.status == 0, "python failed: \(output.stderr)")

            // This library's worker gives up on its own.
            var configuration = Subscription.Configuration()
            configuration.deadLetterSubject = "dlq"
            configuration.retrySchedule = .immediate
            let worker = try store.subscription(
                to: "orders.command.>",
                consumer: "swift-worker",
                handlers: MessageHandlers().handling(OrderPlaced.self) { _ in throw HandlerFailure() },
                configuration: configuration
            )
            try await withRunning(worker) {
                try await waitUntil("swift dead letter") {
                    try await store.lastMessageRaw(on: "dlq.orders.command.swift") != nil
                }
            }

            let fromPython = try #require(try await store.lastMessageRaw(on: "dlq.orders.pycommand.p"))
            let fromSwift = try #require(try await store.lastMessageRaw(on: "dlq.orders.command.swift"))
            // Same layout: <prefix>.<dead-letter subject>.<original application subject>, same
            // stream, the original body byte for byte.
            #expect(fromPython.natsSubject == "\(store.prefix).dlq.orders.pycommand.p")
            #expect(fromSwift.natsSubject == "\(store.prefix).dlq.orders.command.swift")
            let originalPython = try #require(try await store.lastMessageRaw(on: "orders.pycommand.p"))
            let originalSwift = try #require(try await store.lastMessageRaw(on: "orders.command.swift"))
            #expect(fromPython.body == originalPython.body)
            #expect(fromSwift.body == originalSwift.body)
            #expect(originalPython.sequence == pythonPoison.sequence)
            #expect(originalSwift.sequence == swiftPoison.sequence)
            // Both are readable as ordinary messages of the dead-letter stream.
            let letter = try #require(try await store.lastMessage(on: "dlq.orders.pycommand.p"))
            #expect(try letter.decode(as: OrderPlaced.self) == OrderPlaced(orderId: "p", amount: 2))
        }
    }
}

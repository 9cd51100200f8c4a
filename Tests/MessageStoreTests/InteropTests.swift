import Foundation
import MessageStore
import MessageStoreTesting
import Testing

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

    static let isAvailable: Bool = (try? run(["-c", "import message_store, nats"]))?.status == 0

    static var enabled: Bool { required || isAvailable }

    struct Output {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs the interpreter with `arguments`, killing it after `timeout`.
    static func run(_ arguments: [String], timeout: Duration = .seconds(30)) throws -> Output {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [interpreter] + arguments
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        let timer = DispatchSource.makeTimerSource()
        timer.schedule(deadline: .now() + .milliseconds(Int(timeout.components.seconds * 1000)))
        timer.setEventHandler { if process.isRunning { process.terminate() } }
        timer.resume()
        let out = stdout.fileHandleForReading.readDataToEndOfFile()
        let err = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        timer.cancel()
        return Output(
            status: process.terminationStatus,
            stdout: String(decoding: out, as: UTF8.self),
            stderr: String(decoding: err, as: UTF8.self)
        )
    }

    static func script(_ name: String, _ arguments: [String]) throws -> Output {
        try run([scripts.appendingPathComponent(name).path] + arguments)
    }
}

@Suite("Interop with the Python message-store package", .enabled(if: Python.enabled))
struct InteropTests {
    @Test func pythonReadsWhatSwiftPublished() async throws {
        try #require(
            Python.isAvailable,
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

            let output = try Python.script("python_reads.py", [server.url, store.prefix, "orders.event.42"])
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
            Python.isAvailable,
            "\(Python.interpreter) cannot import message_store and nats; run scripts/setup.sh"
        )
        try await withStore { store, server in
            try await store.ensureStream("orders")
            let output = try Python.script(
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
}

import Foundation
import InMemoryTracing
import MessageStoreTestSupport
import MessageStoreTesting
import Testing
import Tracing

@testable import MessageStore

/// Traces that cross languages, with the Python package's OpenTelemetry extension
/// (`message-store-open-telemetry` 0.2.0 and `opentelemetry-sdk` in the interop environment).
@Suite("Traces across Swift and Python", .serverRequired, .enabled { await Python.enabled() })
struct TracingInteropTests {
    /// A span as the Python scripts print it.
    struct PythonSpan: Decodable {
        var name: String
        var kind: String
        var trace_id: String
        var span_id: String
        var parent_span_id: String?
        var links: [String]
        var attributes: [String: JSONValue]
    }

    struct PythonSpans: Decodable {
        var spans: [PythonSpan]
    }

    static func requireTracingPackages() async throws {
        let check = try await Python.run(["-c", "import message_store_open_telemetry, opentelemetry.sdk"])
        try #require(
            check.status == 0,
            "\(Python.interpreter) cannot import message_store_open_telemetry and opentelemetry.sdk; run scripts/setup.sh --interop"
        )
    }

    @Test func aSwiftWorkerContinuesAPythonPublishersTrace() async throws {
        try await Self.requireTracingPackages()
        let tracer = W3CTestTracer()
        try await withStore { store, server in
            try await store.ensureStream("orders")
            let output = try await Python.script(
                "python_traced_publish.py",
                [server.url, store.prefix, "orders.command.7"]
            )
            #expect(output.status == 0, "python failed: \(output.stderr)")
            let python = try JSONDecoder().decode(PythonSpans.self, from: Data(output.stdout.utf8))
            let producer = try #require(python.spans.first { $0.kind == "PRODUCER" })
            #expect(producer.name == "nats publish orders.command.7")

            let handled = Recorder<String>()
            let worker = try store.subscription(
                to: "orders.command.>",
                consumer: "swift-traced",
                handlers: MessageHandlers().handling(OrderPlaced.self) { handled.record($0.data.orderId) }
            )
            try await withTracer(tracer) {
                try await withRunning(worker) {
                    try await handled.wait(forCount: 1)
                    try await waitUntil("the consumer span ends") {
                        tracer.finishedSpans.contains { $0.kind == .consumer }
                    }
                }
            }
            let process = try #require(tracer.finishedSpans.first { $0.kind == .consumer })
            #expect(process.operationName == "nats process orders.command.> (swift-traced)")
            #expect(process.traceID == producer.trace_id)
            #expect(process.parentSpanID == producer.span_id)
            #expect(process.links.map { $0.context.inMemorySpanContext?.spanID } == [producer.span_id])
            #expect(handled.events == ["py-7"])
        }
    }

    @Test func aPythonWorkerContinuesASwiftPublishersTrace() async throws {
        try await Self.requireTracingPackages()
        let tracer = W3CTestTracer()
        try await withStore { store, server in
            try await store.ensureStream("orders")
            _ = try await withTracer(tracer) {
                try await store.publish(OrderPlaced(orderId: "s-7", amount: 3), to: "orders.command.7")
            }
            let producer = try #require(tracer.finishedSpans.first { $0.kind == .producer })

            let output = try await Python.script(
                "python_traced_worker.py",
                [server.url, store.prefix, "orders.command.>", "python-traced"]
            )
            #expect(output.status == 0, "python failed: \(output.stderr)")
            let python = try JSONDecoder().decode(PythonSpans.self, from: Data(output.stdout.utf8))
            let process = try #require(python.spans.first { $0.kind == "CONSUMER" })
            #expect(process.name == "nats process orders.command.> (python-traced)")
            #expect(process.trace_id == producer.traceID)
            #expect(process.parent_span_id == producer.spanID)
            #expect(process.links == [producer.spanID])
            #expect(process.attributes["messaging.message.body.type"] == "OrderPlaced")
        }
    }
}

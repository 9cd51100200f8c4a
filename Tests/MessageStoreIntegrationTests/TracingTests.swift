import InMemoryTracing
import Logging
import MessageStoreTestSupport
import Testing
import Tracing

@testable import MessageStore

/// Spans of publishes and handled messages, with a W3C-propagating in-memory tracer bound to
/// each test's task (`withTracer`), so tests running in parallel see only their own spans.
@Suite("Tracing", .serverRequired)
struct TracingTests {
    @Test func aPublishRunsInAProducerSpanWhoseContextTravelsInTheHeaders() async throws {
        let tracer = W3CTestTracer()
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            let subject = "orders.command.61dc61d8a5073a4d0b036cc5"
            let ack = try await withTracer(tracer) {
                try await store.publish(
                    OrderPlaced(orderId: "1", amount: 2),
                    to: subject,
                    headers: ["X-Caller": "kept"]
                )
            }
            let span = try #require(tracer.finishedSpans.only)
            #expect(span.operationName == "nats publish orders.command.{id}")
            #expect(span.kind == .producer)
            #expect(span.parentSpanID == nil)
            #expect(span.attribute("messaging.system") == "nats")
            #expect(span.attribute("messaging.operation") == "publish")
            #expect(span.attribute("messaging.destination.name") == .string(subject))
            #expect(span.attribute("messaging.message.body.type") == "OrderPlaced")
            #expect(span.attribute("messaging.nats.stream") == .string(ack.stream))
            #expect(span.attribute("messaging.message.seq") == .int64(Int64(ack.sequence)))
            #expect(span.errors.isEmpty)

            let stored = try #require(try await store.lastMessage(on: subject))
            #expect(stored.headers["traceparent"] == "00-\(span.traceID)-\(span.spanID)-01")
            #expect(stored.headers["X-Caller"] == "kept")
        }
    }

    @Test func withoutATracerNothingIsAddedToTheHeaders() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            try await store.publish(OrderPlaced(orderId: "1", amount: 2), to: "orders.1", headers: ["A": "b"])
            let stored = try #require(try await store.lastMessage(on: "orders.1"))
            #expect(Array(stored.headers) == [MessageHeaders.Field(name: "A", value: "b")])
        }
    }

    @Test func eachPipelinedMessageHasAProducerSpanOfItsOwn() async throws {
        let tracer = W3CTestTracer()
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            let results = await withTracer(tracer) {
                await withSpan("request") { _ in
                    await store.publish(
                        contentsOf: (1...3).map { OutgoingMessage(Counter(value: $0), to: "orders.\($0)") }
                    )
                }
            }
            let acks = try results.map { try $0.get() }
            let request = try #require(tracer.finishedSpans.first { $0.operationName == "request" })
            let spans = tracer.finishedSpans.filter { $0.kind == .producer }
            #expect(
                spans.map(\.operationName) == [
                    "nats publish orders.1", "nats publish orders.2", "nats publish orders.3",
                ]
            )
            #expect(spans.allSatisfy { $0.parentSpanID == request.spanID && $0.traceID == request.traceID })
            #expect(
                spans.map { $0.attribute("messaging.message.seq") }
                    == acks.map { .int64(Int64($0.sequence)) }
            )
            for (index, span) in spans.enumerated() {
                let stored = try #require(try await store.lastMessage(on: "orders.\(index + 1)"))
                #expect(stored.headers["traceparent"] == "00-\(span.traceID)-\(span.spanID)-01")
            }
        }
    }

    @Test func aHandlerRunsInAConsumerSpanThatContinuesTheProducersTrace() async throws {
        let tracer = W3CTestTracer()
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            let consumer = "traced"
            struct Seen: Sendable {
                var logMetadata: Logger.Metadata
                var following: MessageMetadata
            }
            let seen = Recorder<Seen>()
            let handlers = MessageHandlers().handling(OrderPlaced.self) { message in
                try await store.publish(
                    Counter(value: message.data.amount),
                    to: "orders.event.\(message.data.orderId)",
                    metadata: .following(message)
                )
                seen.record(
                    Seen(
                        logMetadata: Logger.MetadataProvider.messageStoreTraceContext.get(),
                        following: .following(message)
                    )
                )
            }
            let worker = try store.subscription(to: "orders.command.>", consumer: consumer, handlers: handlers)
            try await withTracer(tracer) {
                try await store.publish(
                    OrderPlaced(orderId: "7", amount: 3),
                    to: "orders.command.7",
                    metadata: MessageMetadata(originSubject: "web.request.1")
                )
                try await withRunning(worker) {
                    try await seen.wait(forCount: 1)
                    try await waitUntil("the consumer span ends") {
                        tracer.finishedSpans.contains { $0.kind == .consumer }
                    }
                }
            }
            let spans = tracer.finishedSpans
            let producer = try #require(spans.first { $0.operationName == "nats publish orders.command.7" })
            let process = try #require(spans.first { $0.kind == .consumer })
            let reply = try #require(spans.first { $0.operationName == "nats publish orders.event.7" })
            let queueWait = try #require(spans.first { $0.operationName == "queue_wait" })

            #expect(process.operationName == "nats process orders.command.> (traced)")
            #expect(process.traceID == producer.traceID)
            #expect(process.parentSpanID == producer.spanID)
            #expect(process.links.map { $0.context.inMemorySpanContext?.spanID } == [producer.spanID])
            #expect(process.attribute("messaging.system") == "nats")
            #expect(process.attribute("messaging.operation") == "process")
            #expect(process.attribute("messaging.destination.name") == "orders.command.7")
            #expect(process.attribute("messaging.message.body.type") == "OrderPlaced")
            #expect(process.attribute("messaging.nats.consumer") == "traced")
            #expect(process.attribute("messaging.nats.stream") == .string("\(store.prefix)-orders"))
            #expect(process.attribute("messaging.message.seq") == 1)
            #expect(process.attribute("messaging.nats.redelivery_count") == 1)
            #expect(process.attribute("message_store.attempt") == 1)
            #expect(process.attribute("messaging.message.body.metadata.originSubject") == "web.request.1")
            #expect(process.errors.isEmpty)
            #expect(process.events.isEmpty)

            #expect(queueWait.parentSpanID == process.spanID)
            #expect(queueWait.startInstant.nanosecondsSinceEpoch <= queueWait.endInstant.nanosecondsSinceEpoch)
            #expect(queueWait.attribute("messaging.nats.consumer") == "traced")

            #expect(reply.kind == .producer)
            #expect(reply.parentSpanID == process.spanID)
            #expect(reply.traceID == producer.traceID)

            let inHandler = try #require(seen.events.only)
            #expect(inHandler.logMetadata["trace_id"] == "\(process.traceID)")
            #expect(inHandler.logMetadata["span_id"] == "\(process.spanID)")
            #expect(inHandler.following.traceId == producer.traceID)
            let event = try #require(try await store.lastMessage(on: "orders.event.7"))
            #expect(event.metadata?.traceId == producer.traceID)
            #expect(event.headers["traceparent"] == "00-\(reply.traceID)-\(reply.spanID)-01")
        }
    }

    @Test func retriesTerminationAndDeadLettersAreSpanEvents() async throws {
        let tracer = W3CTestTracer()
        try await withStore { store, _ in
            try await store.ensureStream("orders")
            let attempts = Recorder<Int>()
            let handlers = MessageHandlers().handling(OrderPlaced.self) { message in
                attempts.record(message.attempt)
                if message.attempt == 1 { throw HandlerFailure() }
                throw MessageTermination(reason: "order 9 does not exist")
            }
            var configuration = Subscription.Configuration()
            configuration.retrySchedule = .immediate
            configuration.deadLetterSubject = "dlq"
            let worker = try store.subscription(
                to: "orders.>",
                consumer: "events",
                handlers: handlers,
                configuration: configuration
            )
            try await withTracer(tracer) {
                try await store.publish(OrderPlaced(orderId: "9", amount: 1), to: "orders.9")
                try await withRunning(worker) {
                    try await attempts.wait(forCount: 2)
                    try await waitUntil("both consumer spans end") {
                        tracer.finishedSpans.filter { $0.kind == .consumer }.count == 2
                    }
                }
            }
            let spans = tracer.finishedSpans
            let producer = try #require(spans.first { $0.operationName == "nats publish orders.9" })
            let runs = spans.filter { $0.kind == .consumer }
            #expect(runs.map { $0.attribute("message_store.attempt") } == [1, 2])
            #expect(runs.allSatisfy { $0.parentSpanID == producer.spanID })

            let first = runs[0]
            #expect(first.errors.map { "\($0.error)" } == ["deliberate failure"])
            #expect(first.status?.code == .error)
            #expect(first.events.map(\.name) == ["retry"])
            #expect(first.events.first?.attribute("message_store.retry_delay_ms") == 0)

            let last = runs[1]
            #expect(last.attribute("messaging.nats.redelivery_count") == 2)
            #expect(last.errors.isEmpty)
            #expect(last.events.map(\.name) == ["dead_letter", "terminate"])
            let letterEvent = try #require(last.events.first)
            #expect(letterEvent.attribute("message_store.dead_letter.subject") == "dlq.orders.9")
            let termination = try #require(last.events.last)
            #expect(termination.attribute("message_store.reason") == "order 9 does not exist")
            #expect(termination.attribute("message_store.cause") == "terminated-by-handler")

            let letterSpan = try #require(spans.first { $0.operationName == "nats publish dlq.orders.9" })
            #expect(letterSpan.parentSpanID == last.spanID)
            let letter = try #require(try await store.lastMessageRaw(on: "dlq.orders.9"))
            #expect(letter.headers["traceparent"] == "00-\(letterSpan.traceID)-\(letterSpan.spanID)-01")
        }
    }
}

extension FinishedInMemorySpan {
    func attribute(_ name: String) -> SpanAttribute? { attributes[name]?.toSpanAttribute() }
}

extension SpanEvent {
    func attribute(_ name: String) -> SpanAttribute? { attributes[name]?.toSpanAttribute() }
}

extension Array {
    /// The one element, or nil when there are none or several.
    var only: Element? { count == 1 ? first : nil }
}

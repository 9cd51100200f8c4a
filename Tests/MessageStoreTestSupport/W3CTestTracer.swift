import Foundation
package import InMemoryTracing
package import Tracing

/// swift-distributed-tracing's `InMemoryTracer` with W3C ids (32 and 16 lowercase hex digits)
/// that propagates as OpenTelemetry does, through `traceparent` (and `tracestate`, kept as
/// extracted), so spans here and in a Python service join one trace.
package struct W3CTestTracer: Tracer {
    package typealias Span = InMemorySpan

    package let recorder: InMemoryTracer

    package init() {
        recorder = InMemoryTracer(
            idGenerator: InMemoryTracer.IDGenerator(
                nextTraceID: { Self.randomHex(bytes: 16) },
                nextSpanID: { Self.randomHex(bytes: 8) }
            )
        )
    }

    package var finishedSpans: [FinishedInMemorySpan] { recorder.finishedSpans }

    package func startSpan<Instant: TracerInstant>(
        _ operationName: String,
        context: @autoclosure () -> ServiceContext,
        ofKind kind: SpanKind,
        at instant: @autoclosure () -> Instant,
        function: String,
        file fileID: String,
        line: UInt
    ) -> InMemorySpan {
        recorder.startSpan(
            operationName,
            context: context(),
            ofKind: kind,
            at: instant(),
            function: function,
            file: fileID,
            line: line
        )
    }

    package func forceFlush() {}

    package func inject<Carrier, Inject: Injector>(
        _ context: ServiceContext,
        into carrier: inout Carrier,
        using injector: Inject
    ) where Carrier == Inject.Carrier {
        guard let span = context.inMemorySpanContext else { return }
        injector.inject("00-\(span.traceID)-\(span.spanID)-01", forKey: "traceparent", into: &carrier)
        if let state = context[TraceStateKey.self] {
            injector.inject(state, forKey: "tracestate", into: &carrier)
        }
    }

    package func extract<Carrier, Extract: Extractor>(
        _ carrier: Carrier,
        into context: inout ServiceContext,
        using extractor: Extract
    ) where Carrier == Extract.Carrier {
        guard let value = extractor.extract(key: "traceparent", from: carrier) else { return }
        let parts = value.split(separator: "-")
        guard parts.count == 4, parts[1].count == 32, parts[2].count == 16 else { return }
        context.inMemorySpanContext = InMemorySpanContext(
            traceID: String(parts[1]),
            spanID: String(parts[2]),
            parentSpanID: nil
        )
        if let state = extractor.extract(key: "tracestate", from: carrier) {
            context[TraceStateKey.self] = state
        }
    }

    private enum TraceStateKey: ServiceContextKey {
        typealias Value = String
    }

    private static func randomHex(bytes: Int) -> String {
        (0..<bytes).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
    }
}

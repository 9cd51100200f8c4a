// A tracer that prints each span when it ends: enough to see what the library records without
// a collector. In a service, bootstrap swift-otel instead (see the README's Observability
// section); nothing else in main.swift changes.

import ExampleSupport
import Synchronization
import Tracing

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Prints every finished span as `[trace …] KIND name (duration) parent … attributes, events`,
/// and propagates as OpenTelemetry does: W3C `traceparent` in the message headers.
struct ConsoleTracer: Tracer {
    /// The ids of a span, kept in its service context.
    struct SpanIDs: Sendable, Hashable {
        var traceID: String
        var spanID: String
    }

    private enum SpanIDsKey: ServiceContextKey {
        typealias Value = SpanIDs
    }

    func startSpan<Instant: TracerInstant>(
        _ operationName: String,
        context: @autoclosure () -> ServiceContext,
        ofKind kind: SpanKind,
        at instant: @autoclosure () -> Instant,
        function: String,
        file fileID: String,
        line: UInt
    ) -> ConsoleSpan {
        var context = context()
        let parent = context[SpanIDsKey.self]
        let ids = SpanIDs(traceID: parent?.traceID ?? Self.hex(bytes: 16), spanID: Self.hex(bytes: 8))
        context[SpanIDsKey.self] = ids
        return ConsoleSpan(
            name: operationName,
            kind: kind,
            context: context,
            ids: ids,
            parentSpanID: parent?.spanID,
            start: instant().nanosecondsSinceEpoch
        )
    }

    func forceFlush() {}

    func inject<Carrier, Inject: Injector>(
        _ context: ServiceContext,
        into carrier: inout Carrier,
        using injector: Inject
    ) where Carrier == Inject.Carrier {
        guard let ids = context[SpanIDsKey.self] else { return }
        injector.inject("00-\(ids.traceID)-\(ids.spanID)-01", forKey: "traceparent", into: &carrier)
    }

    func extract<Carrier, Extract: Extractor>(
        _ carrier: Carrier,
        into context: inout ServiceContext,
        using extractor: Extract
    ) where Carrier == Extract.Carrier {
        // version-traceid-spanid-flags, as https://www.w3.org/TR/trace-context/ writes it.
        guard let header = extractor.extract(key: "traceparent", from: carrier) else { return }
        let fields = header.split(separator: "-")
        guard fields.count == 4, fields[1].count == 32, fields[2].count == 16 else { return }
        context[SpanIDsKey.self] = SpanIDs(traceID: String(fields[1]), spanID: String(fields[2]))
    }

    static func ids(of context: ServiceContext) -> SpanIDs? { context[SpanIDsKey.self] }

    private static func hex(bytes: Int) -> String {
        let digits = Array("0123456789abcdef")
        return String(
            (0..<bytes).flatMap { _ in
                let byte = Int(UInt8.random(in: .min ... .max))
                return [digits[byte >> 4], digits[byte & 0xf]]
            }
        )
    }
}

/// One span being recorded; printed when it ends.
final class ConsoleSpan: Span {
    private struct Recorded {
        var name: String
        var attributes: SpanAttributes = [:]
        var events: [String] = []
        var links = 0
        var error: String?
        var ended = false
    }

    let context: ServiceContext
    private let kind: SpanKind
    private let ids: ConsoleTracer.SpanIDs
    private let parentSpanID: String?
    private let start: UInt64
    private let recorded: Mutex<Recorded>

    init(
        name: String,
        kind: SpanKind,
        context: ServiceContext,
        ids: ConsoleTracer.SpanIDs,
        parentSpanID: String?,
        start: UInt64
    ) {
        self.kind = kind
        self.context = context
        self.ids = ids
        self.parentSpanID = parentSpanID
        self.start = start
        recorded = Mutex(Recorded(name: name))
    }

    var operationName: String {
        get { recorded.withLock { $0.name } }
        set { recorded.withLock { $0.name = newValue } }
    }

    var attributes: SpanAttributes {
        get { recorded.withLock { $0.attributes } }
        set { recorded.withLock { $0.attributes = newValue } }
    }

    var isRecording: Bool { !recorded.withLock { $0.ended } }

    func setStatus(_ status: SpanStatus) {}

    func addEvent(_ event: SpanEvent) {
        var fields: [String] = []
        event.attributes.forEach { key, value in fields.append("\(key)=\(Self.text(value))") }
        let text = fields.isEmpty ? event.name : "\(event.name)(\(fields.sorted().joined(separator: ", ")))"
        recorded.withLock { $0.events.append(text) }
    }

    func recordError<Instant: TracerInstant>(
        _ error: any Error,
        attributes: SpanAttributes,
        at instant: @autoclosure () -> Instant
    ) {
        recorded.withLock { $0.error = "\(error)" }
    }

    func addLink(_ link: SpanLink) {
        recorded.withLock { $0.links += 1 }
    }

    func end<Instant: TracerInstant>(at instant: @autoclosure () -> Instant) {
        let end = instant().nanosecondsSinceEpoch
        guard
            let span = recorded.withLock({ state -> Recorded? in
                guard !state.ended else { return nil }
                state.ended = true
                return state
            })
        else { return }
        let kind =
            switch self.kind {
            case .producer: "PRODUCER"
            case .consumer: "CONSUMER"
            case .client: "CLIENT"
            case .server: "SERVER"
            case .internal: "INTERNAL"
            }
        let milliseconds = Double(end &- start) / 1e6
        var lines = [
            "  span [trace \(ids.traceID.prefix(8))…] \(kind) \(span.name) (\((milliseconds * 10).rounded() / 10) ms)"
                + (parentSpanID.map { ", parent \($0)" } ?? ", no parent") + (span.links > 0 ? ", linked" : "")
        ]
        var shown: [String] = []
        span.attributes.forEach { key, value in
            if Self.shownAttributes.contains(key) { shown.append("\(key)=\(Self.text(value))") }
        }
        if !shown.isEmpty { lines.append("       " + shown.sorted().joined(separator: " ")) }
        if !span.events.isEmpty { lines.append("       events: " + span.events.joined(separator: "; ")) }
        if let error = span.error { lines.append("       error: \(error)") }
        say(lines.joined(separator: "\n"))
    }

    /// The attributes printed; the library sets more (see the README).
    private static let shownAttributes: Set = [
        "messaging.message.seq", "messaging.nats.redelivery_count", "message_store.attempt", "messaging.nats.dwell_ms",
    ]

    private static func text(_ value: SpanAttribute) -> String {
        switch value {
        case .string(let string): string
        case .int64(let number): "\(number)"
        case .int32(let number): "\(number)"
        case .double(let number): "\((number * 10).rounded() / 10)"
        case .bool(let flag): "\(flag)"
        default: "\(value)"
        }
    }
}

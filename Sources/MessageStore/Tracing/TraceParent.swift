public import Logging
import Tracing

/// The ids of a W3C `traceparent` header value (`00-<trace id>-<parent id>-<flags>`).
struct TraceParent: Equatable {
    /// 32 lowercase hexadecimal digits.
    var traceID: String
    /// 16 lowercase hexadecimal digits: the span that sent the message.
    var spanID: String

    static let headerName = "traceparent"

    /// Parses a `traceparent` value; nil unless it is well formed with non-zero ids (version
    /// `ff` is invalid, later versions may carry more fields after the flags).
    init?(_ value: String) {
        let bytes = Array(value.utf8)
        guard bytes.count >= 55, bytes[2] == UInt8(ascii: "-"), bytes[35] == UInt8(ascii: "-"),
            bytes[52] == UInt8(ascii: "-"), bytes.count == 55 || bytes[55] == UInt8(ascii: "-")
        else { return nil }
        func isLowerHex(_ range: Range<Int>) -> Bool {
            bytes[range].allSatisfy {
                (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0)
                    || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0)
            }
        }
        func isZero(_ range: Range<Int>) -> Bool { bytes[range].allSatisfy { $0 == UInt8(ascii: "0") } }
        guard isLowerHex(0..<2), isLowerHex(3..<35), isLowerHex(36..<52), isLowerHex(53..<55),
            !(bytes[0] == UInt8(ascii: "f") && bytes[1] == UInt8(ascii: "f")),
            bytes.count == 55 || !(bytes[0] == UInt8(ascii: "0") && bytes[1] == UInt8(ascii: "0")),
            !isZero(3..<35), !isZero(36..<52)
        else { return nil }
        traceID = String(decoding: bytes[3..<35], as: UTF8.self)
        spanID = String(decoding: bytes[36..<52], as: UTF8.self)
    }

    /// The `traceparent` of `headers`, when it has a well-formed one.
    init?(_ headers: MessageHeaders) {
        guard let value = headers[Self.headerName] else { return nil }
        self.init(value)
    }

    /// The `traceparent` the active instrument writes for `context`, when it writes W3C trace
    /// context.
    init?(of context: ServiceContext) {
        var carrier: [String: String] = [:]
        InstrumentationSystem.instrument.inject(context, into: &carrier, using: DictionaryInjector())
        guard let value = carrier[Self.headerName] else { return nil }
        self.init(value)
    }

    private struct DictionaryInjector: Injector {
        func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) {
            carrier[key] = value
        }
    }
}

extension Logger.MetadataProvider {
    /// Adds `trace_id` and `span_id` to every log line written inside a span, such as the
    /// handling of a message, taken from the task's service context through the bootstrapped
    /// instrument (which must propagate W3C trace context, as OpenTelemetry's does). Lines
    /// written outside a span get nothing.
    ///
    /// ```swift
    /// LoggingSystem.bootstrap(StreamLogHandler.standardOutput, metadataProvider: .messageStoreTraceContext)
    /// ```
    public static var messageStoreTraceContext: Logger.MetadataProvider {
        Logger.MetadataProvider {
            guard let context = ServiceContext.current, let parent = TraceParent(of: context) else { return [:] }
            return ["trace_id": "\(parent.traceID)", "span_id": "\(parent.spanID)"]
        }
    }
}

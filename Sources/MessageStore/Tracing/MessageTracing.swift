import Tracing

/// Spans of publishes and handled messages, named and attributed as the Python
/// `message-store-open-telemetry` extension names them, so that traces read the same whichever
/// language published or handled a message (SPEC "Tracing").
///
/// Everything here runs only when the application bootstrapped a tracer: with none,
/// ``tracer`` is nil and callers skip every span and header.
enum MessageTracing {
    /// The tracer spans go to, or nil when none is bootstrapped (nor bound with `withTracer`).
    static var tracer: (any Tracer)? {
        let tracer = InstrumentationSystem.tracer
        return tracer is NoOpTracer ? nil : tracer
    }

    // MARK: Names

    /// `nats publish <subject>`, with id-like tokens (a 24-digit hex object id, a UUID) replaced
    /// by `{id}`: a span name is a metrics series key, and one series per message would explode.
    static func publishSpanName(subject: String) -> String {
        "nats publish " + subjectWithIDPlaceholders(subject)
    }

    /// `nats process <filter> (<consumer>)`.
    static func processSpanName(filter: String, consumer: String) -> String {
        "nats process \(filter) (\(consumer))"
    }

    /// `subject` with each token that looks like a per-message id replaced by `{id}`.
    static func subjectWithIDPlaceholders(_ subject: String) -> String {
        var tokens = subject.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
            .map { Substring($0) }
        var replaced = false
        for index in tokens.indices where isIDLike(tokens[index].utf8) {
            tokens[index] = "{id}"
            replaced = true
        }
        return replaced ? tokens.joined(separator: ".") : subject
    }

    /// A 24-digit hexadecimal object id or an 8-4-4-4-12 UUID, in either letter case.
    static func isIDLike(_ token: Substring.UTF8View) -> Bool {
        func isHex(_ byte: UInt8) -> Bool {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "f"),
                UInt8(ascii: "A")...UInt8(ascii: "F"):
                true
            default: false
            }
        }
        switch token.count {
        case 24:
            return token.allSatisfy(isHex)
        case 36:
            for (offset, byte) in token.enumerated() {
                let isDash = offset == 8 || offset == 13 || offset == 18 || offset == 23
                guard isDash ? byte == UInt8(ascii: "-") : isHex(byte) else { return false }
            }
            return true
        default:
            return false
        }
    }

    // MARK: Attributes and events

    /// Attribute names: the OpenTelemetry messaging conventions' and the Python extension's,
    /// then the library's own (`message_store.*`).
    enum Attribute {
        static let system = "messaging.system"
        static let operation = "messaging.operation"
        static let destination = "messaging.destination.name"
        static let bodyType = "messaging.message.body.type"
        static let stream = "messaging.nats.stream"
        static let sequence = "messaging.message.seq"
        static let consumer = "messaging.nats.consumer"
        static let redeliveryCount = "messaging.nats.redelivery_count"
        static let dwell = "messaging.nats.dwell_ms"
        static let originSubject = "messaging.message.body.metadata.originSubject"
        static let metadataTraceID = "messaging.message.body.metadata.traceId"
        static let duplicate = "message_store.duplicate"
        static let attempt = "message_store.attempt"
        static let maxAttempts = "message_store.max_attempts"
        static let retryDelay = "message_store.retry_delay_ms"
        static let reason = "message_store.reason"
        static let cause = "message_store.cause"
        static let deadLetterSubject = "message_store.dead_letter.subject"
        static let deadLetterSequence = "message_store.dead_letter.seq"
    }

    /// Span event names.
    enum Event {
        /// The handler failed and the message will be offered again.
        static let retry = "retry"
        /// The message is given up: terminated, so the server never offers it again.
        static let terminate = "terminate"
        /// A copy of the given-up message is stored under the dead-letter subject.
        static let deadLetter = "dead_letter"
    }

    // MARK: Publish

    /// Starts the PRODUCER span of a publish to `subject` and injects its context into `headers`
    /// through the bootstrapped instrument, over what the caller set (the caller's other headers
    /// stay). The span's parent is the task's current context: a handler's span when publishing
    /// from a handler.
    static func startPublish(
        _ tracer: any Tracer,
        subject: String,
        messageType: String?,
        headers: inout MessageHeaders
    ) -> any Span {
        let span = tracer.startSpan(
            publishSpanName(subject: subject),
            context: ServiceContext.current ?? .topLevel,
            ofKind: .producer
        )
        span.attributes[Attribute.system] = "nats"
        span.attributes[Attribute.operation] = "publish"
        span.attributes[Attribute.destination] = subject
        if let messageType {
            span.attributes[Attribute.bodyType] = messageType
        }
        tracer.inject(span.context, into: &headers, using: MessageHeadersInjector())
        return span
    }

    /// Ends a publish's span with where the message was stored, or the error.
    static func end(_ span: any Span, with result: Result<PublishAck, MessageStoreError>) {
        switch result {
        case .success(let ack):
            span.attributes[Attribute.stream] = ack.stream
            span.attributes[Attribute.sequence] = Int(clamping: ack.sequence)
            if ack.isDuplicate {
                span.attributes[Attribute.duplicate] = true
            }
        case .failure(let error):
            span.recordError(error)
            span.setStatus(SpanStatus(code: .error, message: "\(error.code)"))
        }
        span.end()
    }

    // MARK: Handle

    /// What a CONSUMER span says of the message it handles.
    struct Delivery {
        var filter: String
        var consumer: String
        var stream: String
        var subject: String
        var sequence: UInt64
        var deliveryCount: Int
        /// Nanoseconds since 1970 when the server stored the message.
        var timestamp: Int64
        var headers: MessageHeaders
        var type: String?
        var metadata: MessageMetadata?
    }

    /// Starts the CONSUMER span of a delivery: its parent (and link) is the context extracted
    /// from the message's headers; a backdated `queue_wait` child span covers the time from the
    /// server storing the message to now.
    static func startProcess(_ tracer: any Tracer, _ delivery: Delivery) -> any Span {
        var extracted = ServiceContext.topLevel
        tracer.extract(delivery.headers, into: &extracted, using: MessageHeadersExtractor())
        let span = tracer.startSpan(
            processSpanName(filter: delivery.filter, consumer: delivery.consumer),
            context: extracted,
            ofKind: .consumer
        )
        if !extracted.isEmpty {
            span.addLink(SpanLink(context: extracted, attributes: [:]))
        }
        span.attributes[Attribute.system] = "nats"
        span.attributes[Attribute.operation] = "process"
        span.attributes[Attribute.destination] = delivery.subject
        span.attributes[Attribute.sequence] = Int(clamping: delivery.sequence)
        span.attributes[Attribute.consumer] = delivery.consumer
        span.attributes[Attribute.stream] = delivery.stream
        span.attributes[Attribute.redeliveryCount] = delivery.deliveryCount
        if let type = delivery.type {
            span.attributes[Attribute.bodyType] = type
        }
        if let origin = delivery.metadata?.originSubject {
            span.attributes[Attribute.originSubject] = origin
        }
        if let traceID = delivery.metadata?.traceId {
            span.attributes[Attribute.metadataTraceID] = traceID
        }

        let stored = StoredInstant(nanosecondsSinceEpoch: UInt64(clamping: delivery.timestamp))
        let now = DefaultTracerClock.now
        let queueWait = tracer.startSpan(
            "queue_wait",
            context: span.context,
            ofKind: .internal,
            at: min(stored, StoredInstant(nanosecondsSinceEpoch: now.nanosecondsSinceEpoch))
        )
        queueWait.attributes[Attribute.system] = "nats"
        queueWait.attributes[Attribute.stream] = delivery.stream
        queueWait.attributes[Attribute.consumer] = delivery.consumer
        queueWait.attributes[Attribute.redeliveryCount] = delivery.deliveryCount
        let dwell = now.nanosecondsSinceEpoch.subtractingReportingOverflow(stored.nanosecondsSinceEpoch)
        queueWait.attributes[Attribute.dwell] = dwell.overflow ? 0.0 : Double(dwell.partialValue) / 1_000_000
        queueWait.end(at: now)
        return span
    }

    /// A time the server gave, as the tracing API takes it.
    struct StoredInstant: TracerInstant {
        var nanosecondsSinceEpoch: UInt64

        static func < (lhs: Self, rhs: Self) -> Bool {
            lhs.nanosecondsSinceEpoch < rhs.nanosecondsSinceEpoch
        }
    }
}

/// Writes trace context into NATS headers (a value replaces any the caller set under that name).
struct MessageHeadersInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout MessageHeaders) {
        carrier[key] = value
    }
}

/// Reads trace context from NATS headers.
struct MessageHeadersExtractor: Extractor {
    func extract(key: String, from carrier: MessageHeaders) -> String? {
        carrier[key]
    }
}

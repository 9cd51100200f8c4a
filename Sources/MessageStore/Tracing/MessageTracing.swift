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
        // The common case, no id-like token, without splitting (publishes name a span each).
        let utf8 = subject.utf8
        var start = utf8.startIndex
        var found = false
        while start <= utf8.endIndex {
            let end = utf8[start...].firstIndex(of: UInt8(ascii: ".")) ?? utf8.endIndex
            if isIDLike(Substring(subject)[start..<end].utf8) {
                found = true
                break
            }
            guard end < utf8.endIndex else { break }
            start = utf8.index(after: end)
        }
        guard found else { return subject }
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
        messageType: @autoclosure () -> String?,
        headers: inout MessageHeaders
    ) -> any Span {
        let span = tracer.startSpan(
            publishSpanName(subject: subject),
            context: ServiceContext.current ?? .topLevel,
            ofKind: .producer
        )
        // A span that records nothing (a sampler said no, a no-op tracer) gets no attributes:
        // each one set costs a dictionary write.
        if span.isRecording {
            span.updateAttributes { attributes in
                attributes[Attribute.system] = "nats"
                attributes[Attribute.operation] = "publish"
                attributes[Attribute.destination] = subject
                if let messageType = messageType() {
                    attributes[Attribute.bodyType] = messageType
                }
            }
        }
        tracer.inject(span.context, into: &headers, using: MessageHeadersInjector())
        return span
    }

    /// Ends a publish's span with where the message was stored, or the error.
    static func end(_ span: any Span, with result: Result<PublishAck, MessageStoreError>) {
        switch result {
        case .success(let ack):
            if span.isRecording {
                span.updateAttributes { attributes in
                    attributes[Attribute.stream] = ack.stream
                    attributes[Attribute.sequence] = Int(clamping: ack.sequence)
                    if ack.isDuplicate {
                        attributes[Attribute.duplicate] = true
                    }
                }
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
        var consumer: String
        var stream: String
        var subject: String
        var sequence: UInt64
        var deliveryCount: Int
        /// Nanoseconds since 1970 when the server stored the message.
        var timestamp: Int64
        var type: String?
        var metadata: MessageMetadata?
    }

    /// Starts the CONSUMER span of a delivery: its parent (and link) is the context extracted
    /// from the message's headers; a backdated `queue_wait` child span covers the time from the
    /// server storing the message to now.
    /// - Parameters:
    ///   - spanName: ``processSpanName(filter:consumer:)``, made once per subscription.
    ///   - delivery: What the span says; not even made for a span that records nothing.
    static func startProcess(
        _ tracer: any Tracer,
        spanName: String,
        headers: MessageHeaders,
        _ makeDelivery: @autoclosure () -> Delivery
    ) -> any Span {
        var extracted = ServiceContext.topLevel
        tracer.extract(headers, into: &extracted, using: MessageHeadersExtractor())
        let span = tracer.startSpan(spanName, context: extracted, ofKind: .consumer)
        // Nothing more for a span that records nothing: no attributes, no link, no child.
        guard span.isRecording else { return span }
        let delivery = makeDelivery()
        if !extracted.isEmpty {
            span.addLink(SpanLink(context: extracted, attributes: [:]))
        }
        span.updateAttributes { attributes in
            attributes[Attribute.system] = "nats"
            attributes[Attribute.operation] = "process"
            attributes[Attribute.destination] = delivery.subject
            attributes[Attribute.sequence] = Int(clamping: delivery.sequence)
            attributes[Attribute.consumer] = delivery.consumer
            attributes[Attribute.stream] = delivery.stream
            attributes[Attribute.redeliveryCount] = delivery.deliveryCount
            if let type = delivery.type {
                attributes[Attribute.bodyType] = type
            }
            if let origin = delivery.metadata?.originSubject {
                attributes[Attribute.originSubject] = origin
            }
            if let traceID = delivery.metadata?.traceId {
                attributes[Attribute.metadataTraceID] = traceID
            }
        }

        let stored = StoredInstant(nanosecondsSinceEpoch: UInt64(clamping: delivery.timestamp))
        let now = DefaultTracerClock.now
        let queueWait = tracer.startSpan(
            "queue_wait",
            context: span.context,
            ofKind: .internal,
            at: min(stored, StoredInstant(nanosecondsSinceEpoch: now.nanosecondsSinceEpoch))
        )
        let dwell = now.nanosecondsSinceEpoch.subtractingReportingOverflow(stored.nanosecondsSinceEpoch)
        queueWait.updateAttributes { attributes in
            attributes[Attribute.system] = "nats"
            attributes[Attribute.stream] = delivery.stream
            attributes[Attribute.consumer] = delivery.consumer
            attributes[Attribute.redeliveryCount] = delivery.deliveryCount
            attributes[Attribute.dwell] = dwell.overflow ? 0.0 : Double(dwell.partialValue) / 1_000_000
        }
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

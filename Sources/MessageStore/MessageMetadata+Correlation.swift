import Tracing

extension MessageMetadata {
    /// Metadata keys for correlation and causation. They travel as additional metadata fields,
    /// which the Python package keeps untouched.
    public enum Key {
        /// Ties together every message of one conversation or workflow.
        public static let correlationId = "correlationId"
        /// The subject of the message that caused this one.
        public static let causationSubject = "causationSubject"
        /// The stream sequence of the message that caused this one.
        public static let causationSequence = "causationSequence"
    }

    /// The conversation this message belongs to, if any.
    public var correlationId: String? {
        get {
            if case .string(let value) = additionalFields[Key.correlationId] { return value }
            return nil
        }
        set { additionalFields[Key.correlationId] = newValue.map(JSONValue.string) }
    }

    /// The subject and stream sequence of the message that caused this one, if any.
    public var causation: (subject: String, sequence: UInt64)? {
        guard case .string(let subject) = additionalFields[Key.causationSubject] else { return nil }
        switch additionalFields[Key.causationSequence] {
        case .int(let sequence) where sequence >= 0: return (subject, UInt64(sequence))
        default: return nil
        }
    }

    /// Metadata for a message caused by `cause`: the same correlation id (or, when the cause has
    /// none, one derived from the cause's subject and sequence), causation set to the cause,
    /// `originSubject` set to the cause's subject, and the trace id: the cause's `traceId`, else
    /// the trace id of its W3C `traceparent` header, else that of the task's active span (so the
    /// trace can be found from the message even where no tracer reads its headers).
    public static func following(_ cause: StoredMessage) -> MessageMetadata {
        following(subject: cause.subject, sequence: cause.sequence, metadata: cause.metadata, headers: cause.headers)
    }

    /// Metadata for a message caused by the message a handler received.
    public static func following<Payload>(_ cause: ReceivedMessage<Payload>) -> MessageMetadata {
        following(subject: cause.subject, sequence: cause.sequence, metadata: cause.metadata, headers: cause.headers)
    }

    static func following(
        subject: String,
        sequence: UInt64,
        metadata: MessageMetadata?,
        headers: MessageHeaders
    ) -> MessageMetadata {
        let traceID =
            metadata?.traceId ?? TraceParent(headers)?.traceID
            ?? ServiceContext.current.flatMap { TraceParent(of: $0) }?.traceID
        var result = MessageMetadata(originSubject: subject, traceId: traceID)
        result.correlationId = metadata?.correlationId ?? "\(subject)#\(sequence)"
        result.additionalFields[Key.causationSubject] = .string(subject)
        result.additionalFields[Key.causationSequence] = .int(Int(clamping: sequence))
        return result
    }
}

extension MessageStore {
    /// Every message in `category` that carries `correlationId`, in stream order.
    /// - Parameters:
    ///   - correlationId: The correlation id to follow.
    ///   - category: The category to search, such as `orders`.
    public func messages(correlatedWith correlationId: String, in category: String) async throws -> [StoredMessage] {
        try SubjectRules.validateCategory(category)
        var found: [StoredMessage] = []
        for try await message in messages(on: category + ".>") where message.metadata?.correlationId == correlationId {
            found.append(message)
        }
        return found
    }
}

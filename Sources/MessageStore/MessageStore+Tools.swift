/// A durable consumer as the server describes it.
public struct ConsumerDescription: Sendable, Hashable {
    /// The consumer's name.
    public var name: String
    /// The stream it reads.
    public var stream: String
    /// The subjects it reads, with the environment prefix as the server knows them.
    public var filter: String?
    /// Messages stored but not yet delivered to it.
    public var pending: UInt64
    /// Messages delivered but not yet acknowledged.
    public var ackPending: Int
    /// Messages delivered more than once and not yet acknowledged.
    public var redelivered: Int
    /// How many deliveries the server allows per message (-1: no limit).
    public var maxDeliver: Int?
}

extension MessageStore {
    /// The streams whose subjects are under the environment prefix (every stream when the prefix
    /// is empty).
    public func streams() async throws(MessageStoreError) -> [StreamDescription] {
        let filter = naming.subjectPrefix.isEmpty ? nil : naming.subjectPrefix + ">"
        return try await api.streams(overlapping: filter).map(StreamDescription.init)
    }

    /// The consumers of the stream that stores `category`.
    /// - Throws: ``MessageStoreError/Code/streamNotFound`` when no stream stores the category.
    public func consumers(of category: String) async throws(MessageStoreError) -> [ConsumerDescription] {
        try SubjectRules.validateCategory(category)
        guard let stream = try await stream(covering: naming.categoryFilter(category)) else {
            throw MessageStoreError(
                code: .streamNotFound,
                message: "no stream stores \(naming.categoryFilter(category))",
                subject: category + ".>"
            )
        }
        return try await api.consumers(stream: stream.name).map { info in
            ConsumerDescription(
                name: info.name,
                stream: info.streamName,
                filter: info.config.filterSubject,
                pending: info.numPending,
                ackPending: info.numAckPending,
                redelivered: info.numRedelivered,
                maxDeliver: info.config.maxDeliver
            )
        }
    }

    /// Publishes a message whose type is given as a string and whose data is untyped JSON, for
    /// tools and bridges that do not have the Swift type.
    /// - Throws: ``MessageStoreError/Code/encodingFailed`` when `data` is not a JSON object; otherwise
    ///   as ``publish(_:to:metadata:id:headers:expectedLastSubjectSequence:timeout:)``.
    @discardableResult
    public func publish(
        type: String,
        data: JSONValue,
        to subject: String,
        metadata: MessageMetadata? = nil,
        id: String? = nil,
        headers: MessageHeaders = [:],
        timeout: Duration? = nil
    ) async throws(MessageStoreError) -> PublishAck {
        let body = try Envelope.encode(type: type, data: data, metadata: metadata, subject: subject)
        return try await publish(rawBody: body, to: subject, id: id, headers: headers, timeout: timeout)
    }

    /// Publishes a body exactly as given, such as a dead-lettered message going back to its
    /// original subject. No envelope is checked or added.
    @discardableResult
    public func publish(
        rawBody body: [UInt8],
        to subject: String,
        id: String? = nil,
        headers: MessageHeaders = [:],
        timeout: Duration? = nil
    ) async throws(MessageStoreError) -> PublishAck {
        var headers = headers
        if let id {
            headers[MessageHeaderName.messageID] = id
        }
        let publication = Publication(
            subject: subject,
            natsSubject: try naming.publishSubject(subject),
            body: body,
            headers: headers
        )
        return try await publish(publication, timeout: timeout ?? configuration.publishTimeout)
    }
}

public import Logging

/// A message store on NATS JetStream: environment-prefixed streams, typed publishing and reads.
///
/// Every subject you pass is an *application subject* such as `orders.command.42`; the store adds
/// the environment prefix on the way out and removes it on the way in. The first token of a
/// subject is its *category*, and each category lives in one stream (`<prefix>-<category>`).
///
/// ```swift
/// let connection = try await NATSConnection.connect()
/// let store = try MessageStore(connection: connection, prefix: "dev", createMissingStreams: true)
/// try await store.ensureStream("orders")
/// let ack = try await store.publish(OrderPlaced(orderId: "42"), to: "orders.event.42", id: "order-42")
/// ```
///
/// The store is a small value: copy it freely and share it between tasks.
public struct MessageStore: Sendable {
    /// How the store names things and behaves.
    public struct Configuration: Sendable {
        /// The environment prefix (`dev`, `staging`, …); a trailing "." is dropped; may be empty.
        public var prefix: String
        /// Whether ``MessageStore/ensureStream(_:options:)`` may create a missing stream.
        /// Defaults to false.
        public var createMissingStreams = false
        /// How long to wait for a publish acknowledgement. Defaults to 5 seconds.
        public var publishTimeout: Duration = .seconds(5)
        /// Retries of a publish that found no stream to answer. Defaults to 3 attempts, 250 ms
        /// apart at first, doubling.
        public var publishRetry = Backoff()
        /// The most pipelined publishes waiting for their acknowledgement at once.
        /// Defaults to 4,000.
        public var maxPublishesInFlight = 4_000

        /// Exponential backoff between attempts.
        public struct Backoff: Sendable, Hashable {
            /// How many attempts in all (1 means no retry). Defaults to 3.
            public var maxAttempts: Int = 3
            /// The pause after the first failed attempt. Defaults to 250 ms.
            public var initialDelay: Duration = .milliseconds(250)
            /// How much each pause grows. Defaults to 2.
            public var multiplier: Double = 2

            /// Creates the default backoff.
            public init() {}

            /// Creates a backoff.
            public init(maxAttempts: Int, initialDelay: Duration, multiplier: Double = 2) {
                self.maxAttempts = maxAttempts
                self.initialDelay = initialDelay
                self.multiplier = multiplier
            }

            /// The longest pause, whatever the numbers: a day.
            public static let longestDelay = Duration.seconds(86_400)

            /// The pause after failed attempt number `attempt` (1-based); it saturates at
            /// ``longestDelay`` and is never negative.
            public func delay(afterAttempt attempt: Int) -> Duration {
                ExponentialDelay.delay(
                    initial: initialDelay,
                    multiplier: multiplier,
                    maximum: Self.longestDelay,
                    afterAttempt: attempt
                )
            }

            /// Checks the numbers a store is created with.
            /// - Throws: ``MessageStoreError/Code/invalidConfiguration`` naming the wrong part.
            func validate() throws(MessageStoreError) {
                func invalid(_ text: String) -> MessageStoreError {
                    MessageStoreError(code: .invalidConfiguration, message: "invalid publishRetry: \(text)")
                }
                guard maxAttempts >= 1 else { throw invalid("maxAttempts must be at least 1") }
                guard multiplier.isFinite, multiplier >= 1 else {
                    throw invalid("the multiplier must be a finite number of 1 or more, not \(multiplier)")
                }
                guard initialDelay >= .zero, initialDelay <= Self.longestDelay else {
                    throw invalid("initialDelay must be between zero and \(Self.longestDelay), not \(initialDelay)")
                }
            }
        }

        /// Creates a configuration.
        /// - Parameters:
        ///   - prefix: The environment prefix.
        ///   - createMissingStreams: Whether missing streams may be created. Defaults to false.
        public init(prefix: String, createMissingStreams: Bool = false) {
            self.prefix = prefix
            self.createMissingStreams = createMissingStreams
        }
    }

    /// The connection the store uses.
    public let connection: NATSConnection
    /// The store's configuration.
    public let configuration: Configuration
    /// Where the store logs.
    public let logger: Logger
    let naming: Naming

    /// Creates a store.
    /// - Parameters:
    ///   - connection: An open connection.
    ///   - prefix: The environment prefix; a trailing "." is dropped; may be empty.
    ///   - createMissingStreams: Whether ``ensureStream(_:options:)`` may create streams.
    ///     Defaults to false.
    ///   - logger: Defaults to a logger labelled `message-store`.
    /// - Throws: ``MessageStoreError/Code/invalidConfiguration`` when the prefix is not subject-safe.
    public init(
        connection: NATSConnection,
        prefix: String,
        createMissingStreams: Bool = false,
        logger: Logger = Logger(label: "message-store")
    ) throws(MessageStoreError) {
        try self.init(
            connection: connection,
            configuration: Configuration(prefix: prefix, createMissingStreams: createMissingStreams),
            logger: logger
        )
    }

    /// Creates a store from a configuration.
    /// - Throws: ``MessageStoreError/Code/invalidConfiguration`` when the prefix is not subject-safe.
    public init(
        connection: NATSConnection,
        configuration: Configuration,
        logger: Logger = Logger(label: "message-store")
    ) throws(MessageStoreError) {
        naming = try Naming(prefix: configuration.prefix)
        try configuration.publishRetry.validate()
        guard configuration.publishTimeout > .zero, configuration.publishTimeout <= ExponentialDelay.longestNanoseconds
        else {
            throw MessageStoreError(
                code: .invalidConfiguration,
                message: "publishTimeout must be positive and fit Int64 nanoseconds, not \(configuration.publishTimeout)"
            )
        }
        self.connection = connection
        self.configuration = configuration
        self.logger = logger
    }

    /// The environment prefix, without a trailing ".".
    public var prefix: String { naming.prefix }

    var client: NATSClient { connection.client }
    var api: JetStreamAPI { JetStreamAPI(client: connection.client) }
}

// MARK: Streams

extension MessageStore {
    /// Makes sure a stream stores the category's subjects (`<prefix>.<category>.>`).
    ///
    /// Any existing stream that covers those subjects counts, whatever its name. When there is
    /// none and the store was created with `createMissingStreams`, it creates
    /// `<prefix>-<category>` with `options`; otherwise it throws an error that names the stream
    /// to create.
    /// - Parameters:
    ///   - category: The first token of the subjects, such as `orders`.
    ///   - options: Limits for a stream that has to be created. Defaults to ``StreamOptions/init()``.
    /// - Returns: The stream that covers the category.
    /// - Throws: ``MessageStoreError/Code/streamNotFound`` when the stream is missing and may not be
    ///   created; ``MessageStoreError/Code/invalidSubject`` for a bad category; server errors as
    ///   they come.
    @discardableResult
    public func ensureStream(
        _ category: String,
        options: StreamOptions = StreamOptions()
    ) async throws(MessageStoreError) -> StreamDescription {
        try SubjectRules.validateCategory(category)
        let filter = naming.categoryFilter(category)
        if let existing = try await stream(covering: filter) {
            logger.debug(
                "stream covering subjects exists",
                metadata: [LogKey.subject: "\(filter)", LogKey.stream: "\(existing.name)"]
            )
            return existing
        }
        let name = naming.streamName(category: category)
        guard configuration.createMissingStreams else {
            throw MessageStoreError(
                code: .streamNotFound,
                message: "no stream covers \(filter); create a stream named \(name) with subjects \(filter), "
                    + "or create the store with createMissingStreams: true",
                subject: category + ".>",
                stream: name
            )
        }
        guard (1...5).contains(options.replicas) else {
            throw MessageStoreError(
                code: .invalidConfiguration,
                message: "replicas must be between 1 and 5, not \(options.replicas)",
                stream: name
            )
        }
        var config = JetStreamAPI.StreamConfig(name: name, subjects: [filter])
        config.maxBytes = options.maxBytes
        config.maxMsgSize = options.maxMessageSize
        config.storage = options.storage.rawValue
        config.numReplicas = options.replicas
        config.maxAge = options.maxAge?.nanoseconds ?? 0
        config.duplicateWindow = options.duplicateWindow.nanoseconds
        logger.info("creating stream", metadata: [LogKey.stream: "\(name)", LogKey.subject: "\(filter)"])
        do {
            return StreamDescription(try await api.createStream(config))
        } catch  where error.jetStreamErrorCode == 10058 {
            // Created by someone else meanwhile: use theirs if it covers the category.
            if let existing = try await stream(covering: filter) { return existing }
            throw error
        }
    }

    /// The stream that stores `subject` (an application subject or filter), or nil.
    public func stream(for subject: String) async throws(MessageStoreError) -> StreamDescription? {
        try await stream(covering: try naming.filterSubject(subject))
    }

    /// The first stream whose subjects cover every subject matching `natsFilter`.
    func stream(covering natsFilter: String) async throws(MessageStoreError) -> StreamDescription? {
        let candidates = try await api.streams(overlapping: natsFilter)
        let covering = candidates.first { info in
            (info.config.subjects ?? []).contains { SubjectRules.filter($0, covers: natsFilter) }
        }
        return covering.map(StreamDescription.init)
    }

    /// Describes a stream by name.
    /// - Throws: ``MessageStoreError/Code/streamNotFound`` when there is no such stream.
    public func streamDescription(named name: String) async throws(MessageStoreError) -> StreamDescription {
        StreamDescription(try await api.streamInfo(name))
    }

    /// Deletes a stream and every message in it.
    /// - Throws: ``MessageStoreError/Code/streamNotFound`` when there is no such stream.
    public func deleteStream(named name: String) async throws(MessageStoreError) {
        try await api.deleteStream(name)
    }
}

extension StreamDescription {
    init(_ info: JetStreamAPI.StreamInfo) {
        self.init(
            name: info.config.name,
            subjects: info.config.subjects ?? [],
            messages: info.state.messages,
            bytes: info.state.bytes,
            firstSequence: info.state.firstSeq,
            lastSequence: info.state.lastSeq,
            consumerCount: info.state.consumerCount
        )
    }
}

// MARK: Publishing

extension MessageStore {
    /// Publishes a typed message and waits for JetStream to store it.
    ///
    /// When no stream answers (no responders), the publish is retried with
    /// ``Configuration/publishRetry``; any other failure is thrown at once.
    /// - Parameters:
    ///   - payload: The message's data; its ``MessagePayload/messageType`` becomes the envelope type.
    ///   - subject: The application subject, such as `orders.command.42`. No wildcards.
    ///   - metadata: Envelope metadata. Defaults to none.
    ///   - id: A de-duplication id (`Nats-Msg-Id`): the stream stores a given id once within its
    ///     duplicate window. Defaults to none.
    ///   - headers: Extra NATS headers. Defaults to none.
    ///   - expectedLastSubjectSequence: Optimistic concurrency: store the message only if the
    ///     subject's last message has this stream sequence (0: the subject has no message yet).
    ///     Defaults to none.
    ///   - timeout: How long to wait for the acknowledgement. Defaults to
    ///     ``Configuration/publishTimeout``.
    /// - Returns: The stream, the sequence and whether the id was a duplicate.
    /// - Throws: ``MessageStoreError`` — ``MessageStoreError/Code/invalidSubject``,
    ///   ``MessageStoreError/Code/wrongExpectedSequence``, ``MessageStoreError/Code/messageTooLarge``,
    ///   ``MessageStoreError/Code/noResponders`` (after the retries),
    ///   ``MessageStoreError/Code/publishTimedOut``, and others.
    @discardableResult
    public func publish(
        _ payload: some MessagePayload,
        to subject: String,
        metadata: MessageMetadata? = nil,
        id: String? = nil,
        headers: MessageHeaders = [:],
        expectedLastSubjectSequence: UInt64? = nil,
        timeout: Duration? = nil
    ) async throws(MessageStoreError) -> PublishAck {
        let publication = try makePublication(
            OutgoingMessage(
                payload,
                to: subject,
                metadata: metadata,
                id: id,
                headers: headers,
                expectedLastSubjectSequence: expectedLastSubjectSequence
            )
        )
        return try await publish(publication, timeout: timeout ?? configuration.publishTimeout)
    }

    func publish(_ publication: Publication, timeout: Duration) async throws(MessageStoreError) -> PublishAck {
        let retry = configuration.publishRetry
        var attempt = 1
        while true {
            do {
                return try await client.publish(publication, timeout: timeout)
            } catch  where error.code == .noResponders && attempt < retry.maxAttempts {
                let delay = retry.delay(afterAttempt: attempt)
                logger.warning(
                    "no stream answered the publish; retrying",
                    metadata: [
                        LogKey.subject: "\(publication.subject)", LogKey.attempt: "\(attempt)",
                        "delay": "\(delay)",
                    ]
                )
                do {
                    try await Task.sleep(for: delay)
                } catch {
                    throw MessageStoreError(
                        code: .noResponders,
                        message: "publishing was cancelled while waiting to retry: no stream answered",
                        subject: publication.subject
                    )
                }
                attempt += 1
            } catch  where error.code == .noResponders {
                var error = error
                error.message =
                    "no stream answered a publish to \(publication.natsSubject) after \(attempt) attempt(s); "
                    + "make sure a stream covers the subject (ensureStream(\"\(Naming.category(of: publication.subject))\"))"
                throw error
            }
        }
    }

    /// Publishes many messages with their acknowledgements in flight together, far faster than
    /// awaiting each one.
    ///
    /// Every message gets its own result, in the order given: an acknowledgement or the error for
    /// that message. Messages are not retried; check the results. Messages to the same subject
    /// are stored in the order given.
    /// - Parameters:
    ///   - messages: The messages to publish.
    ///   - timeout: How long each message may wait for its acknowledgement. Defaults to
    ///     ``Configuration/publishTimeout``.
    /// - Returns: One result per message, in order.
    public func publish(
        contentsOf messages: some Sequence<OutgoingMessage>,
        timeout: Duration? = nil
    ) async -> [Result<PublishAck, MessageStoreError>] {
        let messages = Array(messages)
        let publisher = client.startPipelined(
            count: messages.count,
            timeout: timeout ?? configuration.publishTimeout,
            maxInFlight: max(1, configuration.maxPublishesInFlight)
        )
        // Encode in chunks and hand each to the sending thread at once, so that encoding the
        // next chunk overlaps with sending this one.
        let chunkSize = 64
        var chunk: [(Int, Publication)] = []
        chunk.reserveCapacity(chunkSize)
        var previous: Publication?
        for (index, message) in messages.enumerated() {
            do {
                let publication = try makePublication(message, after: previous)
                chunk.append((index, publication))
                previous = publication
            } catch {
                publisher.fail(index: index, with: error)
            }
            if chunk.count == chunkSize {
                publisher.send(chunk)
                chunk.removeAll(keepingCapacity: true)
            }
        }
        publisher.send(chunk)
        publisher.finish()
        var results = await publisher.results()
        // Failures settled by an acknowledgement, a timeout or a close carry no subject; give
        // every failure the message's own.
        for index in results.indices {
            if case .failure(var error) = results[index], error.subject != messages[index].subject {
                error.subject = messages[index].subject
                results[index] = .failure(error)
            }
        }
        return results
    }

    /// The message as it is sent. `previous`, the publication made just before, saves checking
    /// and prefixing the subject again when it is the same.
    func makePublication(
        _ message: OutgoingMessage,
        after previous: Publication? = nil
    ) throws(MessageStoreError) -> Publication {
        let natsSubject =
            // Compared as bytes, as NATS compares subjects: String equality would take
            // canonically equivalent spellings ("é" and "e\u{301}") for the same subject.
            if let previous, previous.subject.utf8.elementsEqual(message.subject.utf8) {
                previous.natsSubject
            } else {
                try naming.publishSubject(message.subject)
            }
        let body = try Envelope.encode(message.payload, metadata: message.metadata, subject: message.subject)
        var headers = message.headers
        if let id = message.id {
            headers[MessageHeaderName.messageID] = id
        }
        if let expected = message.expectedLastSubjectSequence {
            headers[MessageHeaderName.expectedLastSubjectSequence] = String(expected)
        }
        return Publication(subject: message.subject, natsSubject: natsSubject, body: body, headers: headers)
    }
}

// MARK: Reading

extension MessageStore {
    /// The last message stored on exactly `subject`, or nil when the subject has none.
    /// - Parameter subject: An application subject without wildcards.
    /// - Throws: ``MessageStoreError/Code/streamNotFound`` when no stream stores the subject;
    ///   ``MessageStoreError/Code/decodingFailed`` when the message is not a valid envelope.
    public func lastMessage(on subject: String) async throws(MessageStoreError) -> StoredMessage? {
        let natsSubject = try naming.publishSubject(subject)
        let candidates = try await api.streams(overlapping: natsSubject)
        guard let stream = candidates.first else {
            throw MessageStoreError(
                code: .streamNotFound,
                message: "no stream stores \(natsSubject)",
                subject: subject
            )
        }
        guard
            let raw = try await client.lastMessage(
                stream: stream.config.name,
                natsSubject: natsSubject,
                subject: subject
            )
        else { return nil }
        return try StoredMessage(raw: raw, naming: naming)
    }
}

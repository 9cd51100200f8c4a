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
        /// How publishes ride out a stream that cannot answer for a while, such as a leader
        /// election after a server died. Defaults to retrying for up to 15 seconds, 250 ms apart
        /// at first, doubling up to 1 second; a subject no stream covers fails after 3 attempts.
        public var publishRetry = Backoff()
        /// The most pipelined publishes waiting for their acknowledgement at once.
        /// Defaults to 4,000.
        public var maxPublishesInFlight = 4_000

        /// When a publish is sent again, and for how long.
        ///
        /// A publish is retried when nothing stored it (no responders; JetStream temporarily
        /// unavailable, as during a leader election), and, when it has an id (`Nats-Msg-Id`,
        /// de-duplicated by the stream), also when its acknowledgement did not come in time or
        /// its connection failed. Other failures are thrown at once. Retrying ends at
        /// ``deadline``; each attempt waits for its acknowledgement up to the publish timeout.
        public struct Backoff: Sendable, Hashable {
            /// How many attempts that found no responders before the store looks for a stream
            /// covering the subject: when there is none, the publish fails then; when there is
            /// one, it keeps trying until ``deadline``. Defaults to 3.
            public var maxAttempts: Int = 3
            /// The pause after the first failed attempt. Defaults to 250 ms.
            public var initialDelay: Duration = .milliseconds(250)
            /// How much each pause grows. Defaults to 2.
            public var multiplier: Double = 2
            /// The longest pause between attempts. Defaults to 1 second.
            public var maxDelay: Duration = .seconds(1)
            /// How long after the first attempt the store may still send a retry. Zero means no
            /// retries. Defaults to 15 seconds: a replicated stream's followers wait a random 4 to
            /// 9 seconds without their leader before they elect a new one (nats-server's Raft
            /// election timeout), and elections of a three-replica stream measured 6–9.5 s here.
            public var deadline: Duration = .seconds(15)

            /// Creates the default backoff.
            public init() {}

            /// Creates a backoff.
            /// - Parameters:
            ///   - maxAttempts: Attempts before looking for a stream that covers the subject.
            ///   - initialDelay: The first pause.
            ///   - multiplier: How much each pause grows. Defaults to 2.
            ///   - maxDelay: The longest pause. Defaults to 1 second.
            ///   - deadline: How long retries may go on. Defaults to 15 seconds.
            public init(
                maxAttempts: Int,
                initialDelay: Duration,
                multiplier: Double = 2,
                maxDelay: Duration = .seconds(1),
                deadline: Duration = .seconds(15)
            ) {
                self.maxAttempts = maxAttempts
                self.initialDelay = initialDelay
                self.multiplier = multiplier
                self.maxDelay = maxDelay
                self.deadline = deadline
            }

            /// The longest pause or deadline a store accepts: a day.
            public static let longestDelay = Duration.seconds(86_400)

            /// The pause after failed attempt number `attempt` (1-based), at most ``maxDelay``;
            /// it saturates whatever the numbers, and is never negative.
            public func delay(afterAttempt attempt: Int) -> Duration {
                ExponentialDelay.delay(
                    initial: initialDelay,
                    multiplier: multiplier,
                    maximum: min(maxDelay, Self.longestDelay),
                    afterAttempt: attempt
                )
            }

            /// Why this backoff cannot be used, or nil.
            var problem: String? {
                if maxAttempts < 1 { return "publishRetry.maxAttempts must be at least 1" }
                if !multiplier.isFinite || multiplier < 1 {
                    return "publishRetry.multiplier must be a finite number of at least 1, not \(multiplier)"
                }
                for (name, value) in [("initialDelay", initialDelay), ("maxDelay", maxDelay), ("deadline", deadline)]
                where value < .zero || value > Self.longestDelay {
                    return "publishRetry.\(name) must be between zero and \(Self.longestDelay), not \(value)"
                }
                return nil
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
        if let problem = configuration.publishRetry.problem {
            throw MessageStoreError(code: .invalidConfiguration, message: problem)
        }
        guard configuration.publishTimeout > .zero, configuration.publishTimeout <= ExponentialDelay.longestNanoseconds
        else {
            throw MessageStoreError(
                code: .invalidConfiguration,
                message:
                    "publishTimeout must be positive and fit Int64 nanoseconds, not \(configuration.publishTimeout)"
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
        } catch  where error.jetStreamError == .streamNameInUse {
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
            consumerCount: info.state.consumerCount,
            leader: info.cluster?.leader
        )
    }
}

// MARK: Publishing

extension MessageStore {
    /// Publishes a typed message and waits for JetStream to store it.
    ///
    /// A publish that nothing stored (no responders, or a stream electing its leader) is sent
    /// again until ``Configuration/publishRetry``'s deadline; so is one whose acknowledgement
    /// did not come, when it has an `id`. Any other failure is thrown at once.
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
    ///   ``MessageStoreError/Code/noResponders`` (no stream covers the subject),
    ///   ``MessageStoreError/Code/streamUnavailable`` (its stream did not answer until the
    ///   deadline), ``MessageStoreError/Code/publishTimedOut``,
    ///   ``MessageStoreError/Code/cancelled``, and others.
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

    /// Publishes many messages with their acknowledgements in flight together, far faster than
    /// awaiting each one.
    ///
    /// Every message gets its own result, in the order given: an acknowledgement or the error for
    /// that message. Messages that failed for a reason ``Configuration/publishRetry`` retries are
    /// sent again together, in order, until its deadline; check the results. Messages to the same
    /// subject are stored in the order given, except that a message sent again is stored after
    /// those of the batch that did not need to be.
    /// - Parameters:
    ///   - messages: The messages to publish.
    ///   - timeout: How long each message may wait for its acknowledgement. Defaults to
    ///     ``Configuration/publishTimeout``.
    /// - Returns: One result per message, in order.
    public func publish(
        contentsOf messages: some Sequence<OutgoingMessage>,
        timeout: Duration? = nil
    ) async -> [Result<PublishAck, MessageStoreError>] {
        let started = ContinuousClock.now
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
        nameSubjects(in: &results, of: messages.lazy.map(\.subject))
        return await retryFailed(
            results,
            of: messages,
            timeout: timeout ?? configuration.publishTimeout,
            since: started
        )
    }

    /// Failures settled by an acknowledgement, a timeout or a close carry no subject; gives
    /// every failure its message's own.
    func nameSubjects(in results: inout [Result<PublishAck, MessageStoreError>], of subjects: some Collection<String>) {
        for (index, subject) in zip(results.indices, subjects) {
            if case .failure(var error) = results[index], error.subject != subject {
                error.subject = subject
                results[index] = .failure(error)
            }
        }
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

#if canImport(FoundationEssentials)
    public import FoundationEssentials
#else
    public import Foundation
#endif

/// Where a read starts.
public struct ReadPosition: Sendable, Hashable {
    enum Kind: Hashable {
        case sequence(UInt64)
        case time(Date)
    }

    let kind: Kind

    /// From the first message.
    public static let beginning = ReadPosition(kind: .sequence(1))

    /// From the message with this stream sequence (or the first after it).
    public static func sequence(_ sequence: UInt64) -> ReadPosition {
        ReadPosition(kind: .sequence(sequence))
    }

    /// From the first message stored at or after `date`.
    public static func time(_ date: Date) -> ReadPosition {
        ReadPosition(kind: .time(date))
    }
}

extension MessageStore {
    /// Replays every message on `subject` in stream order into `projection` and returns the result.
    ///
    /// It reads through a short-lived consumer that is deleted afterwards, whether the projection
    /// succeeds or a reducer throws; nothing durable is left on the server.
    /// - Parameters:
    ///   - subject: An application subject or filter, such as `account.42` or `account.*`.
    ///   - projection: The initial value and the reducers.
    ///   - sequence: Stop after the message with this stream sequence. Defaults to none: every
    ///     message stored when the fetch starts.
    /// - Returns: The folded value; the initial value when the subject has no messages.
    /// - Throws: ``MessageStoreError/Code/streamNotFound`` when no stream stores the subject;
    ///   ``MessageStoreError/Code/decodingFailed`` for a message that is not a valid envelope or
    ///   whose data does not decode as its reducer's type; ``MessageStoreError/Code/cancelled``
    ///   when the task is cancelled; whatever a reducer throws.
    public func fetch<State>(
        _ subject: String,
        projection: Projection<State>,
        upTo sequence: UInt64? = nil
    ) async throws -> State {
        try await replay(subject, projection: projection, from: 1, initial: projection.initial, upTo: sequence).state
    }

    /// Replays from `start` onto `initial`; returns the state, the sequence of the last message
    /// read (0 when none) and how many messages were read.
    func replay<State>(
        _ subject: String,
        projection: Projection<State>,
        from start: UInt64,
        initial: State,
        upTo limit: UInt64?
    ) async throws -> (state: State, lastSequence: UInt64, count: Int) {
        let natsFilter = try naming.filterSubject(subject)
        let decoder = Envelope.makeDispatchDecoder(
            payloadTypes: projection.reducers.mapValues(\.payloadType),
            coding: configuration.bodyCoding
        )
        return try await OrderedReader.with(
            store: self,
            natsFilter: natsFilter,
            subject: subject,
            start: .sequence(start)
        ) {
            reader in
            var state = initial
            var lastSequence: UInt64 = 0
            var count = 0
            var done = false
            var batch = try await reader.next(batch: 512)
            while !done && !batch.isEmpty {
                // Fetch the next batch while this one is folded.
                async let following = reader.next(batch: 512)
                for fetched in batch {
                    if let limit, fetched.streamSequence > limit {
                        done = true
                        break
                    }
                    lastSequence = fetched.streamSequence
                    count += 1
                    let envelope = try Self.decodeForRead(fetched, using: decoder, naming: naming)
                    guard let payload = envelope.payload, let reducer = projection.reducers[envelope.type] else {
                        continue
                    }
                    let message = StoredMessage(
                        fetched: fetched,
                        envelope: envelope,
                        naming: naming,
                        bodyCoding: configuration.bodyCoding
                    )
                    state = try reducer.apply(state, payload, message)
                }
                if let limit, lastSequence >= limit { done = true }
                batch = try await following
            }
            return (state, lastSequence, count)
        }
    }

    static func decodeForRead(
        _ fetched: FetchedMessage,
        using decoder: BodyDecoder,
        naming: Naming
    ) throws(MessageStoreError) -> Envelope.Dispatched {
        do throws(Envelope.DispatchFailure) {
            return try Envelope.decodeForDispatch(fetched.body, using: decoder)
        } catch {
            let subject = naming.applicationSubject(fetched.natsSubject)
            let detail: String
            switch error {
            case .malformedEnvelope(let text):
                detail =
                    "is not a valid envelope (a JSON object with a string \"type\" and an object \"data\"): \(text)"
            case .undecodableData(let type, let text):
                detail = "has \(LogText.peer(type)) data that does not decode: \(text)"
            }
            throw MessageStoreError(
                code: .decodingFailed,
                message: "the message at sequence \(fetched.streamSequence) on \(LogText.peer(subject)) \(detail)",
                subject: subject
            )
        }
    }

    /// The messages on `subject` in stream order, from a position, as an asynchronous sequence.
    ///
    /// The read covers the messages stored when it starts. Iterating to the end (or to `limit`)
    /// releases the server-side consumer; a read abandoned early is removed by the server after
    /// 30 seconds.
    /// - Parameters:
    ///   - subject: An application subject or filter.
    ///   - position: Where to start. Defaults to ``ReadPosition/beginning``.
    ///   - limit: The most messages to return. Defaults to none.
    ///   - follow: Whether to keep waiting for new messages after the last stored one, until the
    ///     iterating task is cancelled (like `tail -f`). Defaults to false.
    public func messages(
        on subject: String,
        from position: ReadPosition = .beginning,
        limit: Int? = nil,
        follow: Bool = false
    ) -> StoredMessages {
        StoredMessages(
            raw: RawMessages(store: self, subject: subject, position: position, limit: limit, follow: follow)
        )
    }

    /// Waits for the next message on `subject` that satisfies `predicate`.
    ///
    /// Nothing stays subscribed afterwards.
    ///
    /// To wait for the consequence of something you are about to publish, pass the sequence you
    /// published at (or any earlier one) as `after`, so a reply stored before the wait is set up
    /// still counts:
    /// ```swift
    /// let ack = try await store.publish(PlaceOrder(id: "7"), to: "orders.command.7")
    /// let placed = try await store.waitFor("orders.event.7", after: ack.sequence)
    /// ```
    /// - Parameters:
    ///   - subject: An application subject or filter.
    ///   - sequence: Only messages stored after this stream sequence count. Defaults to nil: the
    ///     stream's last sequence when the wait is set up.
    ///   - timeout: How long to wait. Defaults to 5 seconds.
    ///   - predicate: Which message to return. Defaults to any.
    /// - Throws: ``MessageStoreError/Code/waitTimedOut`` when none arrives in time;
    ///   ``MessageStoreError/Code/cancelled`` at once when the task is cancelled.
    public func waitFor(
        _ subject: String,
        after sequence: UInt64? = nil,
        timeout: Duration = .seconds(5),
        where predicate: @escaping @Sendable (StoredMessage) throws -> Bool = { _ in true }
    ) async throws -> StoredMessage {
        let natsFilter = try naming.filterSubject(subject)
        let deadline = ContinuousClock.now + timeout
        let start: OrderedReader.Start = sequence.map { .sequence($0 + 1) } ?? .afterLast
        return try await OrderedReader.with(store: self, natsFilter: natsFilter, subject: subject, start: start) {
            reader in
            while true {
                let remaining = deadline - ContinuousClock.now
                guard remaining > .zero else { break }
                let batch = try await reader.next(batch: 64, wait: max(remaining, .milliseconds(1)))
                for fetched in batch {
                    guard
                        let message = try? StoredMessage(
                            raw: RawStoredMessage(fetched),
                            naming: naming,
                            bodyCoding: configuration.bodyCoding
                        )
                    else { continue }
                    if try predicate(message) { return message }
                }
            }
            throw MessageStoreError(
                code: .waitTimedOut,
                message: "no matching message arrived on \(subject) within \(timeout)",
                subject: subject
            )
        }
    }

    /// Waits for the next message on `subject` of type `Payload` that satisfies `predicate`.
    ///
    /// See ``waitFor(_:after:timeout:where:)`` for `after`.
    /// - Throws: ``MessageStoreError/Code/waitTimedOut`` when none arrives in time;
    ///   ``MessageStoreError/Code/cancelled`` at once when the task is cancelled.
    public func waitFor<Payload: MessagePayload>(
        _ subject: String,
        as _: Payload.Type,
        after sequence: UInt64? = nil,
        timeout: Duration = .seconds(5),
        where predicate: @escaping @Sendable (DecodedMessage<Payload>) throws -> Bool = { _ in true }
    ) async throws -> DecodedMessage<Payload> {
        let message = try await waitFor(subject, after: sequence, timeout: timeout) { message in
            guard message.type == Payload.messageType, let data = try? message.decode(as: Payload.self) else {
                return false
            }
            return try predicate(DecodedMessage(data: data, message: message))
        }
        return DecodedMessage(data: try message.decode(as: Payload.self), message: message)
    }
}

/// The messages of a read, in stream order. See ``MessageStore/messages(on:from:limit:follow:)``.
public struct StoredMessages: AsyncSequence, Sendable {
    /// Each element is one stored message.
    public typealias Element = StoredMessage

    let raw: RawMessages

    /// Starts reading.
    public func makeAsyncIterator() -> Iterator {
        Iterator(raw: raw.makeAsyncIterator())
    }

    /// Reads batches as they are needed.
    public struct Iterator: AsyncIteratorProtocol {
        var raw: RawMessages.Iterator

        /// The next message, or nil at the end.
        /// - Throws: ``MessageStoreError`` when the read fails or a message is not a valid envelope.
        public mutating func next() async throws -> StoredMessage? {
            guard let message = try await raw.next() else { return nil }
            do {
                return try message.decoded()
            } catch {
                await raw.finish()
                throw error
            }
        }
    }
}

/// A message as stored, whatever its body: for tools that must show poison messages too.
public struct RawMessage: Sendable {
    /// The application subject (environment prefix removed).
    public var subject: String
    /// The message's sequence in its stream.
    public var sequence: UInt64
    /// When the server stored the message.
    public var timestamp: Date
    /// The message's headers.
    public var headers: MessageHeaders
    /// The body, byte for byte.
    public var body: [UInt8]
    let naming: Naming
    let natsSubject: String
    let bodyCoding: BodyCoding

    /// The message read as an envelope.
    /// - Throws: ``MessageStoreError/Code/decodingFailed`` when the body is not a valid envelope.
    public func decoded() throws(MessageStoreError) -> StoredMessage {
        try StoredMessage(
            raw: RawStoredMessage(
                natsSubject: natsSubject,
                body: body,
                headers: headers,
                sequence: sequence,
                timestamp: Int64(timestamp.timeIntervalSince1970 * 1_000_000_000)
            ),
            naming: naming,
            bodyCoding: bodyCoding
        )
    }
}

extension MessageStore {
    /// The messages on `subject` in stream order without reading their envelopes, so messages
    /// that are not valid envelopes are returned too. See ``messages(on:from:limit:follow:)``.
    public func rawMessages(
        on subject: String,
        from position: ReadPosition = .beginning,
        limit: Int? = nil,
        follow: Bool = false
    ) -> RawMessages {
        RawMessages(store: self, subject: subject, position: position, limit: limit, follow: follow)
    }
}

/// The messages of a raw read, in stream order. See ``MessageStore/rawMessages(on:from:limit:follow:)``.
public struct RawMessages: AsyncSequence, Sendable {
    /// Each element is one stored message, body as stored.
    public typealias Element = RawMessage

    let store: MessageStore
    let subject: String
    let position: ReadPosition
    let limit: Int?
    let follow: Bool

    /// Starts reading.
    public func makeAsyncIterator() -> Iterator {
        Iterator(store: store, subject: subject, position: position, limit: limit, follow: follow)
    }

    /// Reads batches as they are needed.
    public struct Iterator: AsyncIteratorProtocol {
        let store: MessageStore
        let subject: String
        let position: ReadPosition
        var remainingLimit: Int?
        var reader: OrderedReader?
        var buffer: [FetchedMessage] = []
        var bufferIndex = 0
        var finished = false
        let follow: Bool

        init(store: MessageStore, subject: String, position: ReadPosition, limit: Int?, follow: Bool) {
            self.store = store
            self.subject = subject
            self.position = position
            self.remainingLimit = limit
            self.follow = follow
        }

        /// The next message, or nil at the end.
        /// - Throws: ``MessageStoreError`` when the read fails.
        public mutating func next() async throws -> RawMessage? {
            if finished { return nil }
            if let remainingLimit, remainingLimit <= 0 {
                await finish()
                return nil
            }
            if reader == nil {
                // A task cancelled already asks the server for nothing.
                if Task.isCancelled {
                    finished = true
                    return nil
                }
                let start: OrderedReader.Start
                switch position.kind {
                case .sequence(let sequence): start = .sequence(sequence)
                case .time(let date): start = .time(date)
                }
                reader = try await OrderedReader.open(
                    store: store,
                    natsFilter: try store.naming.filterSubject(subject),
                    subject: subject,
                    start: start
                )
            }
            while bufferIndex == buffer.count {
                guard let reader else { return nil }
                if Task.isCancelled {
                    await finish()
                    return nil
                }
                let caughtUp = reader.isAtEnd
                do {
                    buffer = try await reader.next(
                        batch: Swift.min(remainingLimit ?? 256, 256),
                        wait: follow && caughtUp ? .seconds(5) : nil
                    )
                } catch  where error.code == .cancelled && follow {
                    // Following ends when the iterating task is cancelled.
                    await finish()
                    return nil
                } catch {
                    await finish()
                    throw error
                }
                bufferIndex = 0
                if buffer.isEmpty && !follow {
                    await finish()
                    return nil
                }
            }
            let fetched = buffer[bufferIndex]
            bufferIndex += 1
            remainingLimit? -= 1
            return RawMessage(
                subject: store.naming.applicationSubject(fetched.natsSubject),
                sequence: fetched.streamSequence,
                timestamp: Date(timeIntervalSince1970: Double(fetched.timestamp) / 1_000_000_000),
                headers: fetched.headers,
                body: fetched.body,
                naming: store.naming,
                natsSubject: fetched.natsSubject,
                bodyCoding: store.configuration.bodyCoding
            )
        }

        /// Ends the read and releases its consumer.
        mutating func finish() async {
            finished = true
            buffer = []
            await reader?.close()
            reader = nil
        }
    }
}

extension RawStoredMessage {
    init(_ fetched: FetchedMessage) {
        self.init(
            natsSubject: fetched.natsSubject,
            body: fetched.body,
            headers: fetched.headers,
            sequence: fetched.streamSequence,
            timestamp: fetched.timestamp
        )
    }
}

extension StoredMessage {
    init(fetched: FetchedMessage, envelope: Envelope.Dispatched, naming: Naming, bodyCoding: BodyCoding) {
        self.bodyCoding = bodyCoding
        type = envelope.type
        metadata = envelope.metadata
        subject = naming.applicationSubject(fetched.natsSubject)
        sequence = fetched.streamSequence
        timestamp = Date(timeIntervalSince1970: Double(fetched.timestamp) / 1_000_000_000)
        headers = fetched.headers
        body = fetched.body
    }
}

extension MessageStore {
    /// The last message stored on exactly `subject`, or nil when the subject has none.
    /// - Parameter subject: An application subject without wildcards.
    /// - Throws: ``MessageStoreError/Code/streamNotFound`` when no stream stores the subject;
    ///   ``MessageStoreError/Code/decodingFailed`` when the message is not a valid envelope.
    public func lastMessage(on subject: String) async throws(MessageStoreError) -> StoredMessage? {
        let natsSubject = try naming.publishSubject(subject)
        let candidates = try await jetStream.streams(overlapping: natsSubject)
        guard let stream = candidates.first else {
            throw MessageStoreError(
                code: .streamNotFound,
                message: "no stream stores \(natsSubject)",
                subject: subject
            )
        }
        guard
            let raw = try await jetStream.lastMessage(
                stream: stream.config.name,
                natsSubject: natsSubject,
                subject: subject
            )
        else { return nil }
        return try StoredMessage(raw: raw, naming: naming, bodyCoding: configuration.bodyCoding)
    }
}

import Logging
import MessageStoreJSON

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

// Streams: making sure one stores a category, finding, describing and deleting them, and the
// durable consumers on them.

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
        var config = JetStream.StreamConfig(name: name, subjects: [filter])
        config.maxBytes = options.maxBytes
        config.maxMsgSize = options.maxMessageSize
        config.storage = options.storage.rawValue
        config.numReplicas = options.replicas
        config.maxAge = options.maxAge?.nanoseconds ?? 0
        config.duplicateWindow = options.duplicateWindow.nanoseconds
        logger.info("creating stream", metadata: [LogKey.stream: "\(name)", LogKey.subject: "\(filter)"])
        do {
            return StreamDescription(try await jetStream.createStream(config))
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
        let candidates = try await jetStream.streams(overlapping: natsFilter)
        let covering = candidates.first { info in
            (info.config.subjects ?? []).contains { SubjectRules.filter($0, covers: natsFilter) }
        }
        return covering.map(StreamDescription.init)
    }

    /// Describes a stream by name.
    /// - Throws: ``MessageStoreError/Code/streamNotFound`` when there is no such stream.
    public func streamDescription(named name: String) async throws(MessageStoreError) -> StreamDescription {
        StreamDescription(try await jetStream.streamInfo(name))
    }

    /// Deletes a stream and every message in it.
    /// - Throws: ``MessageStoreError/Code/streamNotFound`` when there is no such stream.
    public func deleteStream(named name: String) async throws(MessageStoreError) {
        try await jetStream.deleteStream(name)
    }
}

extension StreamDescription {
    init(_ info: JetStream.StreamInfo) {
        self.init(
            name: info.config.name,
            subjects: info.config.subjects ?? [],
            messages: info.state.messages,
            bytes: info.state.bytes,
            firstSequence: info.state.firstSeq,
            lastSequence: info.state.lastSeq,
            consumerCount: info.state.consumerCount,
            firstTimestamp: ServerTimestamp.date(info.state.firstTs),
            lastTimestamp: ServerTimestamp.date(info.state.lastTs),
            subjectCount: info.state.numSubjects,
            leader: info.cluster?.leader
        )
    }
}

/// The server's RFC 3339 times, such as `2026-12-03T11:39:11.123456789Z`.
enum ServerTimestamp {
    /// The date, or nil for the zero time (`0001-…`, what the server says for an empty stream)
    /// and anything it cannot read.
    static func date(_ text: String?) -> Date? {
        guard let text, text.count >= 20, text.hasSuffix("Z") else { return nil }
        guard let whole = FastJSONDate.parse(String(text.prefix(19)) + "Z") else { return nil }
        let fraction = text.dropFirst(19).dropLast()
        guard !fraction.isEmpty else { return whole }
        guard fraction.first == ".", fraction.count > 1, fraction.dropFirst().allSatisfy(\.isASCII),
            let seconds = Double("0" + fraction)
        else { return nil }
        return whole.addingTimeInterval(seconds)
    }
}

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
        return try await jetStream.streams(overlapping: filter).map(StreamDescription.init)
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
        return try await consumers(ofStream: stream.name)
    }

    /// The consumers of the stream named `stream`.
    /// - Throws: ``MessageStoreError/Code/streamNotFound`` when there is no such stream.
    public func consumers(ofStream stream: String) async throws(MessageStoreError) -> [ConsumerDescription] {
        try await jetStream.consumers(stream: stream).map { info in
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
}

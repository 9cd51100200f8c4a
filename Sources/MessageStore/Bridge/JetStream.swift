#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// JetStream's JSON administration API (`$JS.API.…`), spoken directly over NATS requests.
///
/// Requests and replies are plain JSON, so the store reads the fields it needs from any server
/// version without depending on which fields a particular C client release knows.
struct JetStream: Sendable {
    let client: NATSClient

    struct APIError: Decodable {
        var code: Int
        var errCode: Int?
        var description: String?

        enum CodingKeys: String, CodingKey {
            case code
            case errCode = "err_code"
            case description
        }
    }

    private struct ErrorProbe: Decodable {
        var error: APIError?
    }

    /// Sends `request` to `$JS.API.<endpoint>` and decodes the reply, turning API errors into
    /// typed errors.
    func call<Response: Decodable>(
        _ endpoint: String,
        _ request: (some Encodable)?,
        as _: Response.Type,
        context: ClientErrors.Context
    ) async throws(MessageStoreError) -> Response {
        var body: [UInt8] = []
        if let request {
            do {
                body = Array(try JSONEncoder().encode(request))
            } catch {
                throw MessageStoreError(
                    code: .encodingFailed,
                    message: "\(context.operation) failed: could not encode the request: \(error)",
                    underlying: error
                )
            }
        }
        let reply = try await client.request(
            subject: client.jetStreamAPIPrefix + endpoint,
            body: body,
            context: context
        )
        let decoder = JSONDecoder()
        do {
            if let apiError = try decoder.decode(ErrorProbe.self, from: Data(reply)).error {
                throw Self.error(apiError, context)
            }
            return try decoder.decode(Response.self, from: Data(reply))
        } catch let error as MessageStoreError {
            throw error
        } catch {
            throw MessageStoreError(
                code: .serverError,
                message: "\(context.operation) failed: unexpected reply from JetStream: \(error)",
                subject: context.subject,
                stream: context.stream,
                underlying: error
            )
        }
    }

    static func error(_ apiError: APIError, _ context: ClientErrors.Context) -> MessageStoreError {
        let text = apiError.description ?? "error \(apiError.code)"
        let code: MessageStoreError.Code
        if let mapped = JetStreamErrorCode(apiError.errCode)?.errorCode {
            code = mapped
        } else if apiError.errCode == nil, apiError.code == 503 {
            code = .noResponders
        } else {
            code = .serverError
        }
        return MessageStoreError(
            code: code,
            message: "\(context.operation) failed: \(text)",
            subject: context.subject,
            stream: context.stream,
            consumer: context.consumer,
            jetStreamErrorCode: apiError.errCode
        )
    }
}

// MARK: Streams

extension JetStream {
    struct StreamConfig: Codable, Sendable {
        var name: String
        var subjects: [String]?
        var retention: String? = "limits"
        var maxConsumers: Int? = -1
        var maxMsgs: Int64? = -1
        var maxBytes: Int64?
        var maxAge: Int64?
        var maxMsgSize: Int32?
        var storage: String?
        var numReplicas: Int?
        var duplicateWindow: Int64?
        var discard: String? = "old"
        var maxMsgsPerSubject: Int64?
        var allowRollupHdrs: Bool?
        var denyDelete: Bool?
        var allowDirect: Bool?
        var sources: [StreamSource]?

        enum CodingKeys: String, CodingKey {
            case name, subjects, retention, storage, discard, sources
            case maxMsgsPerSubject = "max_msgs_per_subject"
            case allowRollupHdrs = "allow_rollup_hdrs"
            case denyDelete = "deny_delete"
            case allowDirect = "allow_direct"
            case maxConsumers = "max_consumers"
            case maxMsgs = "max_msgs"
            case maxBytes = "max_bytes"
            case maxAge = "max_age"
            case maxMsgSize = "max_msg_size"
            case numReplicas = "num_replicas"
            case duplicateWindow = "duplicate_window"
        }
    }

    /// A stream another stream copies messages from (`sources`), optionally with subject
    /// transforms (NATS 2.10 or later: an older server drops them from the configuration).
    struct StreamSource: Codable, Sendable, Equatable {
        var name: String
        var subjectTransforms: [SubjectTransform]?

        enum CodingKeys: String, CodingKey {
            case name
            case subjectTransforms = "subject_transforms"
        }
    }

    struct SubjectTransform: Codable, Sendable, Equatable {
        var source: String
        var destination: String

        enum CodingKeys: String, CodingKey {
            case source = "src"
            case destination = "dest"
        }
    }

    struct StreamState: Decodable, Sendable {
        var messages: UInt64
        var bytes: UInt64
        var firstSeq: UInt64
        var lastSeq: UInt64
        var consumerCount: Int
        /// When the first and last stored messages were stored (RFC 3339, nanoseconds, UTC);
        /// the zero time `0001-01-01T00:00:00Z` for an empty stream.
        var firstTs: String?
        var lastTs: String?
        /// How many distinct subjects hold messages.
        var numSubjects: Int?
        /// Messages per subject, when the request asked for a subjects filter.
        var subjects: [String: UInt64]?

        enum CodingKeys: String, CodingKey {
            case messages, bytes
            case firstSeq = "first_seq"
            case lastSeq = "last_seq"
            case consumerCount = "consumer_count"
            case firstTs = "first_ts"
            case lastTs = "last_ts"
            case numSubjects = "num_subjects"
            case subjects
        }
    }

    struct StreamInfo: Decodable, Sendable {
        var config: StreamConfig
        var state: StreamState
        /// Present when the server runs in a cluster.
        var cluster: ClusterInfo?
    }

    struct ClusterInfo: Decodable, Sendable {
        /// The server that leads the stream; absent while a leader is being elected.
        var leader: String?
    }

    private struct StreamListRequest: Encodable {
        var offset: Int
        var subject: String?
    }

    private struct StreamListResponse: Decodable {
        var total: Int
        var offset: Int
        var limit: Int
        var streams: [StreamInfo]?
    }

    /// Every stream whose subjects overlap `subjectFilter` (all streams when nil), with paging.
    func streams(overlapping subjectFilter: String?) async throws(MessageStoreError) -> [StreamInfo] {
        var result: [StreamInfo] = []
        var offset = 0
        while true {
            let page = try await call(
                "STREAM.LIST",
                StreamListRequest(offset: offset, subject: subjectFilter),
                as: StreamListResponse.self,
                context: .init(operation: "listing streams", subject: subjectFilter)
            )
            let streams = page.streams ?? []
            result += streams
            offset += streams.count
            if streams.isEmpty || offset >= page.total { return result }
        }
    }

    private struct StreamNamesResponse: Decodable {
        var total: Int
        var streams: [String]?
    }

    /// The names of the streams whose subjects match the literal subject `natsSubject`: those
    /// that would store a message published to it. The meta leader answers alone (a stream
    /// listing asks every stream's leader), so this stays cheap while streams elect leaders.
    func streamNames(storing natsSubject: String) async throws(MessageStoreError) -> [String] {
        let page = try await call(
            "STREAM.NAMES",
            StreamListRequest(offset: 0, subject: natsSubject),
            as: StreamNamesResponse.self,
            context: .init(operation: "looking up the stream for \(natsSubject)", subject: natsSubject)
        )
        return page.streams ?? []
    }

    func createStream(_ config: StreamConfig) async throws(MessageStoreError) -> StreamInfo {
        try await call(
            "STREAM.CREATE." + config.name,
            config,
            as: StreamInfo.self,
            context: .init(operation: "creating stream \(config.name)", stream: config.name)
        )
    }

    func streamInfo(_ name: String) async throws(MessageStoreError) -> StreamInfo {
        try await call(
            "STREAM.INFO." + name,
            String?.none,
            as: StreamInfo.self,
            context: .init(operation: "reading stream \(name)", stream: name)
        )
    }

    private struct SuccessResponse: Decodable {
        var success: Bool?
    }

    private struct SubjectsFilter: Encodable {
        var subjectsFilter: String

        enum CodingKeys: String, CodingKey {
            case subjectsFilter = "subjects_filter"
        }
    }

    /// The subjects of `stream` matching `natsFilter` that hold messages, with their counts.
    func subjects(of stream: String, matching natsFilter: String) async throws(MessageStoreError) -> [String: UInt64] {
        try await call(
            "STREAM.INFO." + stream,
            SubjectsFilter(subjectsFilter: natsFilter),
            as: StreamInfo.self,
            context: .init(operation: "listing the subjects of stream \(stream)", stream: stream)
        ).state.subjects ?? [:]
    }

    private struct PurgeRequest: Encodable {
        var filter: String
    }

    /// Removes every message of `stream` on `natsSubject`.
    func purge(stream: String, natsSubject: String) async throws(MessageStoreError) {
        _ = try await call(
            "STREAM.PURGE." + stream,
            PurgeRequest(filter: natsSubject),
            as: SuccessResponse.self,
            context: .init(operation: "purging \(natsSubject) from stream \(stream)", stream: stream)
        )
    }

    /// Changes the configuration of an existing stream.
    func updateStream(_ config: StreamConfig) async throws(MessageStoreError) -> StreamInfo {
        try await call(
            "STREAM.UPDATE." + config.name,
            config,
            as: StreamInfo.self,
            context: .init(operation: "updating stream \(config.name)", stream: config.name)
        )
    }

    func deleteStream(_ name: String) async throws(MessageStoreError) {
        _ = try await call(
            "STREAM.DELETE." + name,
            String?.none,
            as: SuccessResponse.self,
            context: .init(operation: "deleting stream \(name)", stream: name)
        )
    }
}

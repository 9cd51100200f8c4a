#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

extension JetStream {
    struct ConsumerConfig: Codable, Sendable, Equatable {
        var durableName: String?
        var deliverPolicy: String = "all"
        var ackPolicy: String = "explicit"
        var ackWait: Int64?
        var maxDeliver: Int?
        var filterSubject: String?
        var replayPolicy: String = "instant"
        var maxAckPending: Int?
        var maxWaiting: Int?
        var inactiveThreshold: Int64?
        var numReplicas: Int?
        var memStorage: Bool?
        var optStartSeq: UInt64?
        var optStartTime: String?

        enum CodingKeys: String, CodingKey {
            case durableName = "durable_name"
            case deliverPolicy = "deliver_policy"
            case ackPolicy = "ack_policy"
            case ackWait = "ack_wait"
            case maxDeliver = "max_deliver"
            case filterSubject = "filter_subject"
            case replayPolicy = "replay_policy"
            case maxAckPending = "max_ack_pending"
            case maxWaiting = "max_waiting"
            case inactiveThreshold = "inactive_threshold"
            case numReplicas = "num_replicas"
            case memStorage = "mem_storage"
            case optStartSeq = "opt_start_seq"
            case optStartTime = "opt_start_time"
        }
    }

    struct SequenceInfo: Decodable, Sendable {
        var consumerSeq: UInt64
        var streamSeq: UInt64

        enum CodingKeys: String, CodingKey {
            case consumerSeq = "consumer_seq"
            case streamSeq = "stream_seq"
        }
    }

    struct ConsumerInfo: Decodable, Sendable {
        var streamName: String
        var name: String
        var config: ConsumerConfig
        var delivered: SequenceInfo
        var ackFloor: SequenceInfo
        var numAckPending: Int
        var numRedelivered: Int
        var numWaiting: Int
        var numPending: UInt64
        /// When the consumer was created (RFC 3339), as the server says it.
        var created: String?

        enum CodingKeys: String, CodingKey {
            case streamName = "stream_name"
            case name, config, delivered, created
            case ackFloor = "ack_floor"
            case numAckPending = "num_ack_pending"
            case numRedelivered = "num_redelivered"
            case numWaiting = "num_waiting"
            case numPending = "num_pending"
        }
    }

    private struct CreateConsumerRequest: Encodable {
        var streamName: String
        var config: ConsumerConfig

        enum CodingKeys: String, CodingKey {
            case streamName = "stream_name"
            case config
        }
    }

    /// The consumer's info, or nil when it does not exist.
    func consumerInfo(stream: String, name: String) async throws(MessageStoreError) -> ConsumerInfo? {
        do {
            return try await call(
                "CONSUMER.INFO.\(stream).\(name)",
                String?.none,
                as: ConsumerInfo.self,
                context: .init(operation: "reading consumer \(name)", stream: stream, consumer: name)
            )
        } catch  where error.jetStreamError == .consumerNotFound {
            return nil
        }
    }

    /// Creates a durable consumer, or updates the one of that name.
    func createOrUpdateDurableConsumer(
        stream: String,
        config: ConsumerConfig
    ) async throws(MessageStoreError) -> ConsumerInfo {
        let name = config.durableName ?? ""
        return try await call(
            "CONSUMER.DURABLE.CREATE.\(stream).\(name)",
            CreateConsumerRequest(streamName: stream, config: config),
            as: ConsumerInfo.self,
            context: .init(operation: "creating consumer \(name)", stream: stream, consumer: name)
        )
    }

    /// Creates a consumer without a durable name (the server names it and removes it when idle).
    func createEphemeralConsumer(stream: String, config: ConsumerConfig) async throws(MessageStoreError) -> ConsumerInfo
    {
        try await call(
            "CONSUMER.CREATE.\(stream)",
            CreateConsumerRequest(streamName: stream, config: config),
            as: ConsumerInfo.self,
            context: .init(operation: "creating a consumer", stream: stream)
        )
    }

    func deleteConsumer(stream: String, name: String) async throws(MessageStoreError) {
        struct Reply: Decodable { var success: Bool? }
        _ = try await call(
            "CONSUMER.DELETE.\(stream).\(name)",
            String?.none,
            as: Reply.self,
            context: .init(operation: "deleting consumer \(name)", stream: stream, consumer: name)
        )
    }

    private struct ConsumerListRequest: Encodable {
        var offset: Int
    }

    private struct ConsumerListResponse: Decodable {
        var total: Int
        var offset: Int
        var limit: Int
        var consumers: [ConsumerInfo]?
    }

    /// Every consumer of `stream`, with paging.
    func consumers(stream: String) async throws(MessageStoreError) -> [ConsumerInfo] {
        var result: [ConsumerInfo] = []
        while true {
            let page = try await call(
                "CONSUMER.LIST.\(stream)",
                ConsumerListRequest(offset: result.count),
                as: ConsumerListResponse.self,
                context: .init(operation: "listing consumers", stream: stream)
            )
            let consumers = page.consumers ?? []
            result += consumers
            if consumers.isEmpty || result.count >= page.total { return result }
        }
    }
}

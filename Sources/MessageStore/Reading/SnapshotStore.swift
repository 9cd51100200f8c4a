import Logging

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Keeps projection snapshots in a JetStream key-value bucket (`<prefix>-snapshots`), written
/// and read with the KV layout (`$KV.<bucket>.<key>` on stream `KV_<bucket>`), so any NATS KV
/// client can inspect them.
struct SnapshotStore {
    let store: MessageStore

    struct Record<State: Codable>: Codable {
        var projection: String
        var version: Int
        var sequence: UInt64
        var state: State
    }

    var bucket: String {
        let prefix = store.naming.prefix.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" }
        return prefix.isEmpty ? "snapshots" : String(prefix) + "-snapshots"
    }

    var streamName: String { "KV_" + bucket }

    func key(entity: String, policy: SnapshotPolicy) -> String? {
        let key = policy.name + "." + entity
        let allowed = key.unicodeScalars.allSatisfy {
            ($0.isASCII && ($0.properties.isAlphabetic || $0.properties.numericType != nil))
                || "-_=/.".unicodeScalars.contains($0)
        }
        return allowed && !key.hasPrefix(".") && !key.hasSuffix(".") ? key : nil
    }

    /// Whether the bucket is missing and may not be created: loads then go without snapshots.
    func isUnavailable() async -> Bool {
        if store.configuration.createMissingStreams { return false }
        let info = try? await store.jetStream.streamInfo(streamName)
        return info == nil
    }

    func read<State: Codable>(_: State.Type, entity: String, policy: SnapshotPolicy) async throws -> (
        state: State, sequence: UInt64
    )? {
        guard let key = key(entity: entity, policy: policy) else { return nil }
        let raw = try await lastRecord(key: key, entity: entity)
        guard let raw, !raw.body.isEmpty else { return nil }
        guard
            let record = try? Envelope.bodyDecoder(store.configuration.bodyCoding).decode(
                Record<State>.self,
                from: raw.body
            ),
            record.projection == policy.name, record.version == policy.version
        else {
            store.logger.debug(
                "ignoring a snapshot of another projection version",
                metadata: [LogKey.subject: "\(entity)"]
            )
            return nil
        }
        return (record.state, record.sequence)
    }

    private func lastRecord(key: String, entity: String) async throws(MessageStoreError) -> RawStoredMessage? {
        do {
            return try await store.jetStream.lastMessage(
                stream: streamName,
                natsSubject: "$KV.\(bucket).\(key)",
                subject: entity
            )
        } catch {
            if error.code == .streamNotFound { return nil }
            throw error
        }
    }

    func write<State: Codable>(_ state: State, sequence: UInt64, entity: String, policy: SnapshotPolicy) async throws {
        guard let key = key(entity: entity, policy: policy) else {
            store.logger.debug(
                "entity subject cannot be a snapshot key; not snapshotting",
                metadata: [LogKey.subject: "\(entity)"]
            )
            return
        }
        try await ensureBucket()
        let record = Record(projection: policy.name, version: policy.version, sequence: sequence, state: state)
        let body = Array(try Envelope.encoder.encode(record))
        // Through the store's publisher, so that a snapshot rides out a failover as any publish.
        _ = try await store.publisher.publish(
            Publication(subject: entity, natsSubject: "$KV.\(bucket).\(key)", body: body, headers: [:]),
            traced: false
        )
    }

    private func ensureBucket() async throws(MessageStoreError) {
        if (try? await store.jetStream.streamInfo(streamName)) != nil { return }
        guard store.configuration.createMissingStreams else {
            throw MessageStoreError(
                code: .streamNotFound,
                message: "the snapshot bucket \(bucket) does not exist; create it (a JetStream key-value bucket) "
                    + "or let the store create missing streams",
                stream: streamName
            )
        }
        var config = JetStream.StreamConfig(name: streamName, subjects: ["$KV.\(bucket).>"])
        config.maxMsgsPerSubject = 1
        config.maxBytes = -1
        config.maxMsgSize = -1
        config.storage = "file"
        config.numReplicas = 1
        config.discard = "new"
        config.duplicateWindow = Duration.seconds(120).nanoseconds
        config.allowRollupHdrs = true
        config.denyDelete = true
        config.allowDirect = true
        do {
            _ = try await store.jetStream.createStream(config)
        } catch  where error.jetStreamError == .streamNameInUse {
            // Created meanwhile by another process.
        }
    }
}

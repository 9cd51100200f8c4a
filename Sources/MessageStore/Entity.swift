import Logging

/// An entity loaded from its subject: the folded state and the version it was loaded at.
///
/// Append to it with ``MessageStore/append(_:to:metadata:id:headers:)``: the write succeeds only
/// if nobody wrote to the entity's subject since it was loaded (optimistic concurrency).
public struct Entity<State: Sendable>: Sendable {
    /// The entity's subject, such as `account.42`.
    public var subject: String
    /// The state folded from every message on the subject.
    public var state: State
    /// The stream sequence of the subject's last message, or 0 when it has none.
    public var version: UInt64
    /// Whether loading started from a snapshot.
    public var usedSnapshot: Bool
}

/// When and how an entity's state is kept as a snapshot, so loading does not replay everything.
///
/// Snapshots live in the JetStream key-value bucket `<prefix>-snapshots`, one key per projection
/// name and entity. A snapshot written with another ``version`` is ignored: bump it whenever the
/// projection's reducers or state shape change.
public struct SnapshotPolicy: Sendable, Hashable {
    /// Names the projection in the snapshot key; letters, digits, `-` and `_`.
    public var name: String
    /// The projection's version. Defaults to 1.
    public var version: Int
    /// Write a new snapshot when a load replayed at least this many messages beyond the last one.
    /// Defaults to 100.
    public var frequency: Int

    /// Creates a snapshot policy.
    public init(name: String, version: Int = 1, frequency: Int = 100) {
        self.name = name
        self.version = version
        self.frequency = frequency
    }
}

extension MessageStore {
    /// Loads an entity: its snapshot (when `snapshots` is given and one of the right version
    /// exists) plus every message on `subject` after it.
    ///
    /// Loading with or without a snapshot gives the same state. When the load replayed at least
    /// `snapshots.frequency` messages, it writes a new snapshot.
    /// - Parameters:
    ///   - subject: The entity's subject, such as `account.42` (no wildcards).
    ///   - projection: How to fold the entity's messages.
    ///   - snapshots: Snapshot policy. Defaults to none: replay every message.
    /// - Throws: ``MessageStoreError`` as ``fetch(_:projection:upTo:)`` does.
    public func loadEntity<State: Codable & Sendable>(
        _ subject: String,
        projection: Projection<State>,
        snapshots: SnapshotPolicy? = nil
    ) async throws -> Entity<State> {
        _ = try naming.publishSubject(subject)
        var start: UInt64 = 1
        var initial = projection.initial
        var snapshotSequence: UInt64 = 0
        var snapshots = snapshots
        if let policy = snapshots {
            let store = SnapshotStore(store: self)
            if let snapshot = try await store.read(State.self, entity: subject, policy: policy) {
                initial = snapshot.state
                snapshotSequence = snapshot.sequence
                start = snapshot.sequence + 1
            } else if await store.isUnavailable() {
                snapshots = nil
            }
        }
        let replayed = try await replay(subject, projection: projection, from: start, initial: initial, upTo: nil)
        let version = replayed.count > 0 ? replayed.lastSequence : snapshotSequence
        if let policy = snapshots, replayed.count >= max(policy.frequency, 1) {
            do {
                try await SnapshotStore(store: self)
                    .write(replayed.state, sequence: version, entity: subject, policy: policy)
            } catch {
                logger.warning(
                    "could not write a snapshot; the next load replays more",
                    metadata: [LogKey.subject: "\(subject)", LogKey.error: "\(error)"]
                )
            }
        }
        return Entity(subject: subject, state: replayed.state, version: version, usedSnapshot: snapshotSequence > 0)
    }

    /// Appends a message to an entity's subject, only if nobody wrote to it since it was loaded.
    /// - Throws: ``MessageStoreError/Code/wrongExpectedSequence`` when someone else wrote first:
    ///   load the entity again and decide again.
    @discardableResult
    public func append<State>(
        _ payload: some MessagePayload,
        to entity: Entity<State>,
        metadata: MessageMetadata? = nil,
        id: String? = nil,
        headers: MessageHeaders = [:]
    ) async throws(MessageStoreError) -> PublishAck {
        try await publish(
            payload,
            to: entity.subject,
            metadata: metadata,
            id: id,
            headers: headers,
            expectedLastSubjectSequence: entity.version
        )
    }
}

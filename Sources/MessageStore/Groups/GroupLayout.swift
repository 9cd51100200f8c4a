/// The server-side parts of a partitioned group, and the leases its members hold.
///
/// - The **partitioned stream** `GROUP_<stream prefix><group>` (work-queue retention) sources
///   the messages of the group's filter from the category stream with a subject transform
///   (NATS 2.10 or later) that puts the partition of each message's key in front:
///   `dev.orders.command.42` becomes `$GROUP.<stream>.<partition>.orders.command.42`, the
///   partition being the server's `partition(n, wildcards…)` hash of the key tokens. Sourcing
///   keeps the category stream's order.
/// - One durable consumer per partition, `<group>-<partition>`, filtered on its partition.
/// - The **lease bucket** `KV_<partitioned stream>` (a key-value bucket whose entries live as long
///   as the lease time): `member.<id>` says a member is alive, `lease.<partition>` names the
///   member that holds a partition. A member rewrites both every heartbeat; a lease is taken
///   with an expected last sequence of 0 (or of a released lease's tombstone) and renewed with
///   the sequence it last wrote, so two members never hold one partition; a crashed member's
///   entries expire.
struct GroupLayout: Sendable {
    let store: MessageStore
    let group: String
    let partitions: Int
    /// The partitioned stream.
    let stream: String
    /// `$GROUP.<stream>.`
    let subjectRoot: String
    let bucketStream: String
    /// `$KV.<stream>.`
    let bucketRoot: String
    /// How long an entry of the bucket lives without being rewritten.
    let leaseTime: Duration

    static let operationHeader = "KV-Operation"

    static func streamName(group: String, naming: Naming) -> String {
        "GROUP_" + naming.streamPrefix + group
    }

    /// The subject transform's destination for the application filter `filter`: the partition
    /// of the wildcards at `keyWildcards` (1-based), then the application subject.
    static func destination(root: String, filter: String, partitions: Int, keyWildcards: [Int]) -> String {
        var wildcard = 0
        let tokens = filter.split(separator: ".", omittingEmptySubsequences: false).map { token -> String in
            guard token == "*" else { return String(token) }
            wildcard += 1
            return "{{wildcard(\(wildcard))}}"
        }
        let keys = keyWildcards.map(String.init).joined(separator: ",")
        return root + "{{partition(\(partitions),\(keys))}}." + tokens.joined(separator: ".")
    }

    /// Makes sure the category stream, the partitioned stream and the lease bucket exist, and
    /// that the partitioned stream partitions as this member would.
    static func prepare(
        store: MessageStore,
        group: String,
        filter: String,
        natsFilter: String,
        partitions: Int,
        keyWildcards: [Int],
        leaseTime: Duration
    ) async throws(MessageStoreError) -> GroupLayout {
        let jetStream = store.jetStream
        let source = try await Subscription.ensureStream(
            store: store,
            covering: filter,
            purpose: "the partitioned group \(group)",
            consumer: group
        )
        let replicas = try await jetStream.streamInfo(source).config.numReplicas ?? 1
        let name = streamName(group: group, naming: store.naming)
        let root = "$GROUP.\(name)."
        let wanted = JetStream.StreamSource(
            name: source,
            subjectTransforms: [
                JetStream.SubjectTransform(
                    source: natsFilter,
                    destination: destination(
                        root: root,
                        filter: filter,
                        partitions: partitions,
                        keyWildcards: keyWildcards
                    )
                )
            ]
        )
        var config = JetStream.StreamConfig(name: name)
        config.subjects = [root + ">"]
        config.retention = "workqueue"
        config.storage = "file"
        config.numReplicas = replicas
        config.sources = [wanted]
        // Sourced messages keep their `Nats-Msg-Id`; the category stream de-duplicated them
        // already, and a short window here keeps a legitimate repeat from being dropped.
        config.duplicateWindow = Duration.seconds(1).nanoseconds
        let info: JetStream.StreamInfo
        var created = false
        do {
            info = try await jetStream.streamInfo(name)
        } catch  where error.jetStreamError == .streamNotFound {
            do {
                info = try await jetStream.createStream(config)
                created = true
            } catch {
                // Another member may have created it at the same moment.
                info = try await jetStream.streamInfo(name)
            }
        }
        guard let transforms = info.config.sources?.first?.subjectTransforms, !transforms.isEmpty else {
            // A server before 2.10 accepts the stream and silently drops the transform: every
            // message would land outside every partition.
            if created { try? await jetStream.deleteStream(name) }
            throw MessageStoreError(
                code: .unsupportedServer,
                message: "the partitioned group \(group) needs NATS server 2.10 or later (stream subject transforms); "
                    + "this server ignored the transform of stream \(name)",
                stream: name,
                consumer: group
            )
        }
        guard info.config.sources == [wanted] else {
            let existing = transforms.map { "\($0.source) → \($0.destination)" }.joined(separator: ", ")
            throw MessageStoreError(
                code: .invalidConfiguration,
                message: "the partitioned group \(group) exists with another filter, key or partition count "
                    + "(stream \(name) sources \(info.config.sources?.first?.name ?? "?") with \(existing)); "
                    + "every member must use the same ones: delete stream \(name) to change them",
                stream: name,
                consumer: group
            )
        }
        let bucketTime = try await prepareBucket(store: store, name: name, replicas: replicas, leaseTime: leaseTime)
        return GroupLayout(
            store: store,
            group: group,
            partitions: partitions,
            stream: name,
            subjectRoot: root,
            bucketStream: "KV_" + name,
            bucketRoot: "$KV.\(name).",
            leaseTime: bucketTime
        )
    }

    /// Makes sure the lease bucket exists and keeps entries at least `leaseTime`; returns how
    /// long it keeps them (the longest any member asked for: longer is safe for everyone).
    private static func prepareBucket(
        store: MessageStore,
        name: String,
        replicas: Int,
        leaseTime: Duration
    ) async throws(MessageStoreError) -> Duration {
        let jetStream = store.jetStream
        let bucket = "KV_" + name
        do {
            var info = try await jetStream.streamInfo(bucket)
            let kept = Duration.nanoseconds(info.config.maxAge ?? 0)
            guard kept < leaseTime else { return kept }
            info.config.maxAge = leaseTime.nanoseconds
            _ = try await jetStream.updateStream(info.config)
            return leaseTime
        } catch  where error.jetStreamError == .streamNotFound {
            var config = JetStream.StreamConfig(name: bucket)
            config.subjects = ["$KV.\(name).>"]
            config.maxAge = leaseTime.nanoseconds
            config.maxMsgsPerSubject = 1
            config.storage = "file"
            config.numReplicas = replicas
            config.allowRollupHdrs = true
            config.allowDirect = true
            do {
                _ = try await jetStream.createStream(config)
            } catch {
                _ = try await jetStream.streamInfo(bucket)
            }
            return leaseTime
        }
    }

    /// What the member holding `partition` reads.
    func partition(_ partition: Int, slots: HandlerSlots) -> Subscription.Partition {
        Subscription.Partition(
            stream: stream,
            natsFilter: subjectRoot + "\(partition).>",
            deliveredPrefix: subjectRoot + "\(partition).",
            slots: slots
        )
    }

    func consumerName(partition: Int) -> String {
        "\(group)-\(partition)"
    }

    // MARK: Membership and leases

    private func memberSubject(_ member: String) -> String { bucketRoot + "member." + member }
    private func leaseSubject(_ partition: Int) -> String { bucketRoot + "lease.\(partition)" }

    /// Says `member` is alive for another lease time.
    func announce(_ member: String) async throws(MessageStoreError) {
        _ = try await put(memberSubject(member), value: member, expected: nil)
    }

    /// Forgets `member` at once (it is leaving).
    func leave(_ member: String) async throws(MessageStoreError) {
        try await store.jetStream.purge(stream: bucketStream, natsSubject: memberSubject(member))
    }

    /// The members alive, by id.
    func members() async throws(MessageStoreError) -> [String] {
        let subjects = try await store.jetStream.subjects(of: bucketStream, matching: bucketRoot + "member.*")
        let prefix = bucketRoot + "member."
        return subjects.keys.map { Naming.cutting(prefix, from: $0) }
    }

    /// Takes `partition` for `member` if nobody holds it; returns the lease's revision, nil when
    /// another member holds it.
    func acquire(_ partition: Int, for member: String) async throws(MessageStoreError) -> UInt64? {
        let subject = leaseSubject(partition)
        do {
            return try await put(subject, value: member, expected: 0)
        } catch  where error.code == .wrongExpectedSequence {
            // Held, or released: a released lease is a tombstone, which may be taken over.
            guard
                let last = try await store.jetStream.lastMessage(
                    stream: bucketStream,
                    natsSubject: subject,
                    subject: subject
                ),
                last.headers[Self.operationHeader] != nil
            else { return nil }
            do {
                return try await put(subject, value: member, expected: last.sequence)
            } catch  where error.code == .wrongExpectedSequence {
                return nil
            }
        }
    }

    /// Renews the lease `member` holds on `partition` at `revision`; returns the new revision.
    /// - Throws: ``MessageStoreError/Code/wrongExpectedSequence`` when the lease is no longer
    ///   this member's (it expired, and perhaps another member holds it now).
    func renew(_ partition: Int, for member: String, revision: UInt64) async throws(MessageStoreError) -> UInt64 {
        try await put(leaseSubject(partition), value: member, expected: revision)
    }

    /// Gives up the lease on `partition` held at `revision`, so another member may take it at
    /// once; nothing happens if it is no longer this member's.
    func release(_ partition: Int, revision: UInt64) async {
        var headers = MessageHeaders()
        headers[Self.operationHeader] = "DEL"
        _ = try? await put(leaseSubject(partition), value: "", expected: revision, headers: headers)
    }

    private func put(
        _ subject: String,
        value: String,
        expected: UInt64?,
        headers: MessageHeaders = MessageHeaders()
    ) async throws(MessageStoreError) -> UInt64 {
        var headers = headers
        if let expected { headers[MessageHeaderName.expectedLastSubjectSequence] = String(expected) }
        let publication = Publication(subject: subject, natsSubject: subject, body: Array(value.utf8), headers: headers)
        return try await store.jetStream.publish(publication, timeout: .seconds(2)).sequence
    }
}

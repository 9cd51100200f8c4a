import Logging
public import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A member of a partitioned consumer group: the workers of a named group, in any number of
/// processes, divide the keys of a filter among themselves so that each key is handled by one
/// member at a time, in stream order.
///
/// The keys are the tokens of the subject at the filter's `*` wildcards (all of them, or those
/// ``Configuration/keyWildcards`` names). The server hashes each message's key into one of
/// ``Configuration/partitions`` partitions; each partition is held by one member at a time,
/// which handles its keys as a worker with ``Subscription/Ordering`` per key does: one message
/// of a key at a time, different keys in parallel up to the member's
/// ``Subscription/Configuration/maxConcurrentHandlers``, a failed message retried in place.
///
/// Members come and go at will. Each says it is alive every ``Configuration/heartbeatInterval``;
/// the partitions are spread evenly over the members alive, and a partition moves only once its
/// holder has finished and acknowledged what it took (and given back what it had not started),
/// so its messages are handled in order by the next member. A member that crashes holds its
/// partitions until its lease expires (``leaseTime``: the ack wait, one idle poll and two
/// heartbeats), by when every message it had taken is due for redelivery ahead of newer ones;
/// the messages it was handling are then handled again (at-least-once), the only duplicates.
///
/// It needs NATS server 2.10 or later (stream subject transforms): ``run()`` throws
/// ``MessageStoreError/Code/unsupportedServer`` on an older one.
///
/// ```swift
/// let member = try store.partitionedGroup(
///     "order-workers",
///     to: "orders.*.*",
///     handlers: handlers,
///     configuration: .init(keyWildcards: [2])  // orders.<kind>.<id>: order per id
/// )
/// try await ServiceGroup(services: [member], gracefulShutdownSignals: [.sigterm], logger: logger).run()
/// ```
public final class PartitionedGroup: Service, Sendable {
    /// How a member partitions, leases and handles.
    public struct Configuration: Sendable {
        /// How many partitions the keys are hashed into: the most members that get work. Every
        /// member of a group must use the same number. Defaults to 16.
        public var partitions = 16
        /// Which of the filter's `*` wildcards (1 is the first) make up a message's key.
        /// Defaults to nil: all of them. Every member must use the same ones.
        public var keyWildcards: [Int]?
        /// This member's id: letters, digits, `-` and `_`. Defaults to nil: the host name, the
        /// process id and a random part, unique for every run.
        public var memberID: String?
        /// How often the member says it is alive, renews its leases and looks at the other
        /// members. Defaults to 1 second.
        public var heartbeatInterval: Duration = .seconds(1)
        /// How each partition is handled (attempts, retries, dead letters, ack wait, concurrency
        /// for the whole member). Its ``Subscription/Configuration/ordering`` is ignored: order
        /// is per key. The defaults differ from a worker's in ack wait (10 seconds) and idle poll
        /// (1 second), which bound how long a crashed member's partitions wait.
        public var worker: Subscription.Configuration

        /// Creates a configuration.
        public init(partitions: Int = 16, keyWildcards: [Int]? = nil, memberID: String? = nil) {
            self.partitions = partitions
            self.keyWildcards = keyWildcards
            self.memberID = memberID
            worker = Subscription.Configuration()
            worker.ackWait = .seconds(10)
            worker.idlePollInterval = .seconds(1)
        }

        /// How long a lease outlives its last renewal: by then every message the crashed holder
        /// took is due for redelivery.
        var leaseTime: Duration {
            worker.ackWait + worker.idlePollInterval + heartbeatInterval * 2
        }
    }

    /// The group's name.
    public let group: String
    /// The application subject filter, such as `orders.*.*`.
    public let filter: String
    /// This member's id.
    public let memberID: String
    /// The member's configuration.
    public let configuration: Configuration

    let store: MessageStore
    let handlers: MessageHandlers
    private let natsFilter: String
    /// The key wildcards, 1-based, and the positions of those tokens in an application subject.
    private let keyWildcards: [Int]
    private let keyTokens: [Int]
    private let slots: HandlerSlots
    private let state = Mutex(State())

    private struct State {
        var running = false
        var stopRequested = false
        var held: [Int: Held] = [:]
        var leaseTime: Duration?
    }

    /// A partition this member holds a lease on.
    private struct Held {
        var subscription: Subscription
        var revision: UInt64
        var renewed: ContinuousClock.Instant
        /// Asked to stop: the partition goes to another member once it has.
        var releasing = false
        /// The lease is no longer this member's.
        var lost = false
    }

    init(
        store: MessageStore,
        group: String,
        filter: String,
        handlers: MessageHandlers,
        configuration: Configuration
    ) throws(MessageStoreError) {
        func invalid(_ text: String) -> MessageStoreError {
            MessageStoreError(code: .invalidConfiguration, message: text, consumer: group)
        }
        guard Self.isIdentifier(group), group.utf8.count <= 64 else {
            throw invalid("invalid group name \"\(group)\": use 1 to 64 letters, digits, \"-\" and \"_\"")
        }
        natsFilter = try store.naming.filterSubject(filter)
        let tokens = filter.split(separator: ".", omittingEmptySubsequences: false)
        let wildcards = tokens.indices.filter { tokens[$0] == "*" }
        guard !wildcards.isEmpty else {
            throw invalid(
                "the filter \(filter) of the partitioned group \(group) has no \"*\" token to take keys from; "
                    + "write the key's place as \"*\", such as orders.*.>"
            )
        }
        let chosen = configuration.keyWildcards ?? Array(1...wildcards.count)
        guard !chosen.isEmpty, Set(chosen).count == chosen.count,
            chosen.allSatisfy({ (1...wildcards.count).contains($0) })
        else {
            throw invalid(
                "keyWildcards \(chosen) must name distinct wildcards of \(filter), from 1 to \(wildcards.count)"
            )
        }
        guard (1...1_024).contains(configuration.partitions) else {
            throw invalid("partitions must be from 1 to 1,024")
        }
        guard configuration.heartbeatInterval >= .milliseconds(100) else {
            throw invalid("heartbeatInterval must be at least 100 ms")
        }
        let member = configuration.memberID ?? Self.defaultMemberID()
        guard Self.isIdentifier(member) else {
            throw invalid("invalid member id \"\(member)\": use letters, digits, \"-\" and \"_\"")
        }
        try Subscription.validate(
            consumer: "\(group)-0",
            filter: filter,
            configuration: configuration.worker,
            naming: store.naming
        )
        try handlers.validateBatches(for: configuration.worker, consumer: "\(group)-0")
        self.store = store
        self.group = group
        self.filter = filter
        self.handlers = handlers
        self.configuration = configuration
        memberID = member
        keyWildcards = chosen
        keyTokens = chosen.map { wildcards[$0 - 1] }
        slots = HandlerSlots(count: configuration.worker.maxConcurrentHandlers)
    }

    /// The partitions this member holds now, in order.
    public var partitions: [Int] {
        state.withLock { state in state.held.filter { !$0.value.releasing && !$0.value.lost }.keys.sorted() }
    }

    /// How long a crashed member's partitions wait before another member takes them: the lease
    /// bucket's entry lifetime (the longest any member asked for). Nil before ``run()`` has
    /// prepared the group.
    public var leaseTime: Duration? {
        state.withLock { $0.leaseTime }
    }

    /// Joins the group and handles the partitions it is given until graceful shutdown,
    /// cancellation or ``stop()``; then finishes what it holds, gives its partitions up and
    /// leaves.
    /// - Throws: ``MessageStoreError`` when it cannot start: the server is older than 2.10
    ///   (``MessageStoreError/Code/unsupportedServer``), the group exists with another filter,
    ///   key or partition count, or no stream covers the filter.
    public func run() async throws {
        let start = state.withLock { state -> Bool in
            guard !state.running else { return false }
            state.running = true
            state.stopRequested = false
            return true
        }
        guard start else { return }
        defer { state.withLock { $0.running = false } }
        let layout = try await GroupLayout.prepare(
            store: store,
            group: group,
            filter: filter,
            natsFilter: natsFilter,
            partitions: configuration.partitions,
            keyWildcards: keyWildcards,
            leaseTime: configuration.leaseTime
        )
        state.withLock { $0.leaseTime = layout.leaseTime }
        store.logger.info(
            "joined partitioned group",
            metadata: logMetadata.merging([LogKey.stream: "\(layout.stream)"]) { $1 }
        )
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                await coordinate(layout)
            } onCancel: {
                self.stop()
            }
        } onGracefulShutdown: {
            self.stop()
        }
        store.logger.info("left partitioned group", metadata: logMetadata)
    }

    /// Leaves the group gracefully: the partitions' handlers in progress finish and are
    /// acknowledged, what was fetched and not started goes back, and the partitions are given up
    /// for the other members to take at once. Harmless to repeat.
    public func stop() {
        let subscriptions = state.withLock { state -> [Subscription] in
            state.stopRequested = true
            return state.held.values.map(\.subscription)
        }
        subscriptions.forEach { $0.stop() }
    }

    private var isStopRequested: Bool {
        state.withLock { $0.stopRequested }
    }

    private func coordinate(_ layout: GroupLayout) async {
        await withDiscardingTaskGroup { tasks in
            while !isStopRequested {
                await heartbeat(layout, tasks: &tasks)
                await pause { self.isStopRequested }
            }
            stop()
            // Partitions finish their handlers, then give their leases up; renew them meanwhile.
            while state.withLock({ !$0.held.isEmpty }) {
                await renewLeases(layout)
                await pause { self.state.withLock { $0.held.isEmpty } }
            }
        }
        do {
            try await layout.leave(memberID)
        } catch {
            store.logger.debug(
                "could not say the member left; it is forgotten when its entry expires",
                metadata: logMetadata.merging([LogKey.error: "\(error)"]) { $1 }
            )
        }
    }

    /// Waits a heartbeat, or less once `done` holds.
    private func pause(until done: @escaping @Sendable () -> Bool) async {
        let end = ContinuousClock.now + configuration.heartbeatInterval
        while !done() {
            let left = end - ContinuousClock.now
            guard left > .zero else { return }
            try? await Task.sleep(for: min(left, .milliseconds(50)))
        }
    }

    /// One heartbeat: say this member is alive, renew its leases, and take or give up partitions
    /// so that they are spread evenly over the members alive.
    private func heartbeat(_ layout: GroupLayout, tasks: inout DiscardingTaskGroup) async {
        do {
            try await layout.announce(memberID)
        } catch {
            store.logger.debug(
                "could not say the member is alive",
                metadata: logMetadata.merging([LogKey.error: "\(error)"]) { $1 }
            )
        }
        await renewLeases(layout)
        let alive: [String]
        do {
            alive = try await layout.members()
        } catch {
            store.logger.debug(
                "could not list the group's members",
                metadata: logMetadata.merging([LogKey.error: "\(error)"]) { $1 }
            )
            return
        }
        let members = Set(alive + [memberID]).sorted()
        let index = members.firstIndex(of: memberID) ?? 0
        let wanted = Set((0..<layout.partitions).filter { $0 % members.count == index })

        let surplus = state.withLock { state -> [Subscription] in
            var surplus: [Subscription] = []
            for (partition, held) in state.held where !wanted.contains(partition) && !held.releasing {
                state.held[partition]?.releasing = true
                surplus.append(held.subscription)
            }
            return surplus
        }
        for subscription in surplus {
            store.logger.debug("giving up a partition", metadata: partitionMetadata(subscription.consumer))
            subscription.stop()
        }

        let missing = state.withLock { state in wanted.filter { state.held[$0] == nil }.sorted() }
        for partition in missing {
            guard !isStopRequested else { return }
            let revision: UInt64?
            do {
                revision = try await layout.acquire(partition, for: memberID)
            } catch {
                store.logger.debug(
                    "could not take a partition",
                    metadata: partitionMetadata(layout.consumerName(partition: partition)).merging([
                        LogKey.error: "\(error)"
                    ]) { $1 }
                )
                continue
            }
            guard let revision else { continue }
            let subscription: Subscription
            do {
                subscription = try makeSubscription(layout, partition: partition)
            } catch {
                await layout.release(partition, revision: revision)
                store.logger.error(
                    "cannot handle a partition",
                    metadata: logMetadata.merging([LogKey.error: "\(error)"]) { $1 }
                )
                continue
            }
            state.withLock { state in
                state.held[partition] = Held(subscription: subscription, revision: revision, renewed: .now)
            }
            store.logger.debug("took a partition", metadata: partitionMetadata(subscription.consumer))
            tasks.addTask {
                do {
                    try await subscription.run()
                } catch {
                    self.store.logger.warning(
                        "a partition stopped",
                        metadata: self.partitionMetadata(subscription.consumer).merging([
                            LogKey.error: "\(error)"
                        ]) { $1 }
                    )
                }
                await self.giveUp(partition, layout: layout)
            }
        }
    }

    /// Renews every lease held; a lease found lost (or not renewed for nearly its whole time)
    /// stops its partition at once, since another member may take it.
    private func renewLeases(_ layout: GroupLayout) async {
        let held = state.withLock { state in state.held.filter { !$0.value.lost } }
        for (partition, lease) in held {
            do {
                let revision = try await layout.renew(partition, for: memberID, revision: lease.revision)
                state.withLock { state in
                    state.held[partition]?.revision = revision
                    state.held[partition]?.renewed = .now
                }
                continue
            } catch  where error.code == .wrongExpectedSequence {
                // Expired (this process was frozen or cut off): another member may hold it.
            } catch {
                guard ContinuousClock.now - lease.renewed >= layout.leaseTime - configuration.heartbeatInterval * 2
                else { continue }
            }
            state.withLock { $0.held[partition]?.lost = true }
            store.logger.warning(
                "lost the lease of a partition; stopping it",
                metadata: partitionMetadata(lease.subscription.consumer)
            )
            lease.subscription.stop()
        }
    }

    /// Forgets a partition whose subscription ended, releasing its lease if it is still held.
    private func giveUp(_ partition: Int, layout: GroupLayout) async {
        let lease = state.withLock { state in state.held.removeValue(forKey: partition) }
        guard let lease, !lease.lost else { return }
        await layout.release(partition, revision: lease.revision)
    }

    private func makeSubscription(_ layout: GroupLayout, partition: Int) throws(MessageStoreError) -> Subscription {
        var worker = configuration.worker
        let keyTokens = keyTokens
        worker.ordering = .perKey { subject in
            let tokens = subject.split(separator: ".", omittingEmptySubsequences: false)
            return keyTokens.map { $0 < tokens.count ? String(tokens[$0]) : "" }.joined(separator: ".")
        }
        return try Subscription(
            store: store,
            filter: filter,
            consumer: layout.consumerName(partition: partition),
            handlers: handlers,
            configuration: worker,
            partition: layout.partition(partition, slots: slots)
        )
    }

    private var logMetadata: Logger.Metadata {
        ["group": "\(group)", "member": "\(memberID)", LogKey.subject: "\(filter)"]
    }

    private func partitionMetadata(_ consumer: String) -> Logger.Metadata {
        logMetadata.merging([LogKey.consumer: "\(consumer)"]) { $1 }
    }

    private static func isIdentifier(_ text: String) -> Bool {
        !text.isEmpty
            && text.utf8.allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                    UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"):
                    return true
                default:
                    return false
                }
            }
    }

    private static func defaultMemberID() -> String {
        var name = [CChar](repeating: 0, count: 256)
        let host =
            gethostname(&name, name.count) == 0
            ? String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "host"
        let safeHost = String(host.map { isIdentifier(String($0)) ? $0 : "_" }.prefix(40))
        let random = String(UInt32.random(in: 0...UInt32.max), radix: 36)
        return "\(safeHost.isEmpty ? "host" : safeHost)-\(getpid())-\(random)"
    }
}

extension MessageStore {
    /// A member of the partitioned consumer group `group` over `filter`: run it (as a
    /// ServiceLifecycle `Service`) in as many processes as you like, and the keys of the filter
    /// are divided among them, each key handled by one member at a time, in stream order.
    /// See ``PartitionedGroup``.
    /// - Throws: ``MessageStoreError/Code/invalidConfiguration`` for an invalid name, filter
    ///   (it needs a `*` token for the key) or configuration.
    public func partitionedGroup(
        _ group: String,
        to filter: String,
        handlers: MessageHandlers,
        configuration: PartitionedGroup.Configuration = PartitionedGroup.Configuration()
    ) throws(MessageStoreError) -> PartitionedGroup {
        try PartitionedGroup(
            store: self,
            group: group,
            filter: filter,
            handlers: handlers,
            configuration: configuration
        )
    }
}

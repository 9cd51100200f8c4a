import Logging
public import ServiceLifecycle
import Synchronization

/// A durable worker: it delivers each message on a subject filter to the handler of its type,
/// retries failures a bounded number of times, and terminates and dead-letters poison messages
/// instead of letting them block the stream.
///
/// It is a ServiceLifecycle `Service`: ``run()`` works until graceful shutdown (or cancellation,
/// or ``stop()``), then lets the handler in progress finish, acknowledges it, and returns.
///
/// ```swift
/// let worker = try store.subscription(
///     to: "orders.>",
///     consumer: "order-worker",
///     handlers: MessageHandlers()
///         .handling(OrderPlaced.self) { message in try await ship(message.data) }
/// )
/// let group = ServiceGroup(services: [worker], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
/// try await group.run()
/// ```
///
/// Several workers with the same consumer name share the messages (each message goes to one of
/// them); workers with different consumer names each see every message.
public final class Subscription: Service, Sendable {
    /// How the subscription fetches, retries and gives up.
    public struct Configuration: Sendable {
        /// How many times a handler may run for one message. Defaults to 3: after the third
        /// failure the message is terminated (and dead-lettered) instead of retried.
        ///
        /// Attempts count runs of the handler: a delivery that never reached one (returned by a
        /// stopping worker, or queued in a worker that crashed) does not use one up.
        public var maxAttempts = 3
        /// How many times the server delivers a message at most, whether its handler ran or not
        /// (the consumer's MaxDeliver): the bound that holds even when no worker is alive. The
        /// worker treats the last of these deliveries as the last attempt, so a message is never
        /// left on the server undelivered and not dead-lettered. Defaults to nil:
        /// ``maxAttempts`` + 20, room for twenty stops or crashes while a message waits in a worker.
        public var maxDeliveries: Int?
        /// The pause between a failure and the next attempt. Defaults to exponential from 1 second,
        /// doubling, at most 60 seconds.
        public var retrySchedule = RetrySchedule.exponential()
        /// Where terminated messages are copied, as an application subject prefix: a message from
        /// `orders.command.42` goes to `<deadLetterSubject>.orders.command.42`. Defaults to none.
        public var deadLetterSubject: String?
        /// How long the server waits for an acknowledgement before redelivering. Defaults to
        /// 30 seconds.
        public var ackWait: Duration = .seconds(30)
        /// How often a running handler tells the server it is still working, so the message is not
        /// redelivered meanwhile. Defaults to nil: a third of ``ackWait``.
        public var progressInterval: Duration?
        /// The most messages fetched in one request. Defaults to 256.
        public var batchSize = 256
        /// The most messages delivered but not yet acknowledged, across every worker of the
        /// consumer. Defaults to 1,024.
        public var maxAckPending = 1_024
        /// How many handlers run at once. Defaults to 1, which keeps the stream's order.
        public var maxConcurrentHandlers = 1
        /// Which messages are handled one at a time in stream order while others run in
        /// parallel, and whether a failed message is retried in place (holding back its key) or
        /// given back to the server. Defaults to ``Ordering/unordered``.
        public var ordering = Ordering.unordered
        /// What to do with a message whose type has no handler. Defaults to
        /// ``UnknownTypePolicy/acknowledge``.
        public var unknownTypes = UnknownTypePolicy.acknowledge
        /// How long an idle worker's request for new messages stays open before it is renewed.
        /// Defaults to 5 seconds.
        public var idlePollInterval: Duration = .seconds(5)
        /// How long a handler still running when the worker stops may go on: after this, it is
        /// cancelled and its message given back to the server, not acknowledged (and that run does
        /// not count as an attempt). Defaults to nil: running handlers finish.
        public var shutdownGracePeriod: Duration?
        /// How often a running subscription asks the server for its consumer's pending, ack
        /// pending and redelivered counts, for the `message_store_consumer_*` gauges. Defaults to
        /// 15 seconds; nil turns the polling off. Nothing is polled unless the application
        /// bootstrapped swift-metrics.
        public var consumerMetricsInterval: Duration? = .seconds(15)

        /// The server's MaxDeliver for this configuration.
        var effectiveMaxDeliveries: Int {
            maxDeliveries ?? Self.saturatingSum(maxAttempts, 20)
        }

        private static func saturatingSum(_ a: Int, _ b: Int) -> Int {
            let (sum, overflow) = a.addingReportingOverflow(b)
            return overflow ? .max : sum
        }

        var deliveryPolicy: DeliveryPolicy {
            DeliveryPolicy(
                maxAttempts: maxAttempts,
                maxDeliveries: effectiveMaxDeliveries,
                retrySchedule: retrySchedule,
                deadLetterUnknownTypes: unknownTypes.action == .deadLetter
            )
        }

        /// Creates the default configuration.
        public init() {}
    }

    /// What to do with a message whose type has no handler.
    public struct UnknownTypePolicy: Sendable, Hashable {
        enum Action: Hashable {
            case acknowledge, deadLetter
        }

        let action: Action

        /// Acknowledge and skip it (logged at debug level), as the Python package does.
        public static let acknowledge = UnknownTypePolicy(action: .acknowledge)
        /// Terminate it and copy it to the dead-letter subject.
        public static let deadLetter = UnknownTypePolicy(action: .deadLetter)
    }

    /// The application subject filter, such as `orders.>`.
    public let filter: String
    /// The durable consumer's name.
    public let consumer: String
    /// The subscription's configuration.
    public let configuration: Configuration

    let store: MessageStore
    let handlers: MessageHandlers
    let natsFilter: String
    /// For a ``DurableMessages`` sequence: where messages go instead of handlers.
    let sink: DurableSink?
    /// For a member of a partitioned group: the partition it reads instead of the stream
    /// covering its filter.
    let partition: Partition?
    private let state = Mutex(State.idle)
    let activity = SubscriptionActivity()
    /// Tasks waiting for the subscription to be running (or to have given up starting).
    private let startWaiters = Mutex<[CheckedContinuation<Void, Never>]>([])

    private enum State {
        case idle
        case starting(stopRequested: Bool)
        case running(Running)
        case stopping
    }

    /// What a running subscription's stop acts on.
    private struct Running {
        var loop: FetchLoop
        var progress: ProgressReporter
        var dispatching: Task<Void, Never>
        var policy: DeliveryPolicy
        var batching: BatchGate?
    }

    init(
        store: MessageStore,
        filter: String,
        consumer: String,
        handlers: MessageHandlers,
        configuration: Configuration,
        sink: DurableSink? = nil,
        partition: Partition? = nil
    ) throws(MessageStoreError) {
        let applicationFilter = try store.naming.filterSubject(filter)
        natsFilter = partition?.natsFilter ?? applicationFilter
        self.sink = sink
        self.partition = partition
        try Self.validate(consumer: consumer, filter: filter, configuration: configuration, naming: store.naming)
        try handlers.validateBatches(for: configuration, consumer: consumer)
        self.store = store
        self.filter = filter
        self.consumer = consumer
        self.handlers = handlers
        self.configuration = configuration
    }

    /// Runs until graceful shutdown, cancellation or ``stop()``.
    ///
    /// It makes sure the stream, the durable consumer and the dead-letter stream exist, then
    /// fetches and dispatches. While the server is away it waits and resumes when the connection
    /// comes back. Calling it while it already runs returns at once.
    /// - Throws: ``MessageStoreError`` when it cannot start: no stream covers the filter (and the
    ///   store may not create one), no stream for the dead-letter subject, or the consumer exists
    ///   with another filter.
    public func run() async throws {
        let start = state.withLock { state -> Bool in
            guard case .idle = state else { return false }
            state = .starting(stopRequested: false)
            return true
        }
        guard start else {
            store.logger.debug("subscription is already running", metadata: logMetadata)
            return
        }
        defer {
            state.withLock { $0 = .idle }
            resumeStartWaiters()
        }
        try await withGracefulShutdownHandler {
            try await withTaskCancellationHandler {
                try await runUntilStopped()
            } onCancel: {
                self.stop()
            }
        } onGracefulShutdown: {
            self.stop()
        }
    }

    /// Stops the subscription gracefully: no new fetches; the handler in progress finishes and is
    /// acknowledged; messages fetched but not started go back to the server at once. Harmless to
    /// repeat, or to call when not running.
    public func stop() {
        let running = state.withLock { state -> Running? in
            switch state {
            case .idle, .stopping:
                return nil
            case .starting:
                state = .starting(stopRequested: true)
                return nil
            case .running(let running):
                state = .stopping
                return running
            }
        }
        guard let running else { return }
        // No more fetches first, so that what is given back is not fetched again by this worker.
        running.loop.stop()
        let returned = running.progress.giveBackWaiting { running.policy.maxDeliveries <= $0.deliveryCount }
        if returned > 0 {
            store.logger.debug(
                "stopping: gave back messages whose handlers had not started",
                metadata: logMetadata.merging(["count": "\(returned)"]) { $1 }
            )
        }
        // Batches being formed start now: their messages have started, and no more will come.
        running.batching?.stop()
        if let grace = configuration.shutdownGracePeriod {
            let dispatching = running.dispatching
            Task {
                // Ends early when the dispatching ends: nothing is left to cancel then.
                await withTaskGroup(of: Bool.self) { group in
                    group.addTask {
                        (try? await Task.sleep(for: grace)) != nil
                    }
                    group.addTask {
                        await dispatching.value
                        return false
                    }
                    if await group.next() == true { dispatching.cancel() }
                    group.cancelAll()
                }
            }
        }
    }

    /// How many fetched messages the running subscription keeps for progress reports (tests).
    var keptMessageCount: Int? {
        state.withLock { state in
            if case .running(let running) = state { return running.progress.keptCount }
            return nil
        }
    }

    /// The lifecycle as ``Status`` names it.
    var lifecycleState: Status.State {
        state.withLock { state in
            switch state {
            case .idle: .stopped
            case .starting: .starting
            case .running: .running
            case .stopping: .stopping
            }
        }
    }

    var isStopping: Bool {
        state.withLock { state in
            switch state {
            case .stopping, .starting(stopRequested: true): return true
            default: return false
            }
        }
    }

    private func runUntilStopped() async throws {
        let setup = try await prepare()
        activity.stream = setup.stream
        let batchSize = max(1, min(configuration.batchSize, configuration.maxAckPending))
        let batchesInFlight = configuration.maxAckPending >= 2 * batchSize ? 2 : 1
        let prefetch = PrefetchBudget(
            maxBatch: batchSize,
            concurrency: configuration.maxConcurrentHandlers,
            batchesInFlight: batchesInFlight,
            ackWait: configuration.ackWait
        )
        let dispatcher = Dispatcher(
            context: Dispatcher.Context(
                consumer: consumer,
                filter: filter,
                handlers: handlers,
                configuration: configuration,
                deliveredPrefix: partition?.deliveredPrefix ?? store.naming.subjectPrefix,
                bodyCoding: store.configuration.bodyCoding,
                logger: store.logger,
                publisher: store.publisher,
                progressThread: store.jetStream.progressThread,
                isStopping: { [self] in isStopping },
                activity: activity,
                sink: sink
            ),
            stream: setup.stream,
            deadLetterPrefix: setup.deadLetterPrefix,
            ledger: setup.ledger,
            prefetch: prefetch
        )
        let progress = dispatcher.progress
        let loop = setup.subscription.batches(
            batchSize: { prefetch.batchSize },
            longPoll: configuration.idlePollInterval,
            maxBatchesInFlight: batchesInFlight,
            // A partition's next holder must get what this one gives back before anything newer.
            endsRequestsAtStop: partition == nil,
            logger: store.logger,
            fetched: { [activity] batch in
                activity.fetched()
                progress.track(batch)
            }
        )
        // The dispatching runs in a task of its own, so that a stop can cancel it after the
        // grace period without cancelling the rest of `run()`.
        let (started, start) = AsyncStream.makeStream(of: Void.self)
        let keyed = configuration.ordering.key.map {
            KeyedDispatch(
                dispatcher: dispatcher,
                key: $0,
                limit: configuration.maxConcurrentHandlers,
                slots: partition?.slots,
                takeover: setup.takeover
            )
        }
        let dispatching = Task {
            for await _ in started { break }
            if let keyed {
                await keyed.run(loop.batches) { loop.batchDone() }
                return
            }
            for await batch in loop.batches {
                await dispatcher.process(batch)
                loop.batchDone()
            }
        }
        let running = Running(
            loop: loop,
            progress: progress,
            dispatching: dispatching,
            policy: dispatcher.policy,
            batching: dispatcher.batching
        )
        let stopAtOnce = state.withLock { state -> Bool in
            if case .starting(stopRequested: true) = state {
                state = .stopping
                return true
            }
            state = .running(running)
            return false
        }
        if stopAtOnce {
            resumeStartWaiters()
            start.finish()
            dispatching.cancel()
            setup.subscription.unsubscribe()
            return
        }
        store.logger.info(
            "subscription started",
            metadata: logMetadata.merging([LogKey.stream: "\(setup.stream)"]) { $1 }
        )
        progress.start()
        loop.start()
        start.yield()
        start.finish()
        // Only now is it started in full: its progress reports run and it fetches.
        resumeStartWaiters()
        let polling = pollConsumerCounts(stream: setup.stream)
        await withTaskCancellationHandler {
            await dispatching.value
        } onCancel: {
            dispatching.cancel()
        }
        // A partition's fetch was let finish rather than woken (see `endsRequestsAtStop`).
        if partition != nil { setup.subscription.unsubscribe() }
        // Not awaited: a request to a frozen server may take its whole time-out to fail.
        polling?.cancel()
        progress.stop()
        guard isStopping else {
            // Fetching ended by itself: the connection closed for good. Saying so beats
            // returning as if stopped, which would leave a service with a worker that does nothing.
            let error = MessageStoreError(
                code: .connectionClosed,
                message: "the subscription \(consumer) on \(filter) cannot go on: the connection to the server "
                    + "closed for good",
                subject: filter,
                consumer: consumer
            )
            store.logger.error(
                "subscription cannot go on",
                metadata: logMetadata.merging([LogKey.error: "\(error)"]) { $1 }
            )
            throw error
        }
        // Acknowledgements are buffered for a moment; make sure the server has them before
        // returning, so a process that exits right after a graceful shutdown loses none.
        do {
            try await store.jetStream.flush(timeout: .seconds(5))
        } catch {
            store.logger.warning(
                "could not confirm the last acknowledgements; those messages may be delivered again",
                metadata: logMetadata.merging([LogKey.error: "\(error)"]) { $1 }
            )
        }
        store.logger.info("subscription stopped", metadata: logMetadata)
    }

    /// Records the consumer's counts in the gauges every ``Configuration/consumerMetricsInterval``
    /// until cancelled; nil when there is nothing to record them in.
    private func pollConsumerCounts(stream: String) -> Task<Void, Never>? {
        guard let interval = configuration.consumerMetricsInterval, interval > .zero,
            ConsumerGauges.metricsBootstrapped
        else { return nil }
        let gauges = ConsumerGauges(consumer: consumer)
        return Task { [store, consumer, logger = store.logger, logMetadata] in
            while !Task.isCancelled {
                do {
                    if let info = try await store.jetStream.consumerInfo(stream: stream, name: consumer) {
                        gauges.record(
                            pending: info.numPending,
                            ackPending: info.numAckPending,
                            redelivered: info.numRedelivered
                        )
                    }
                } catch {
                    // The server is away: the gauges keep their last values, the health says why.
                    logger.debug(
                        "could not read the consumer's counts",
                        metadata: logMetadata.merging([LogKey.error: "\(error)"]) { $1 }
                    )
                }
                try? await Task.sleep(for: interval)
            }
        }
    }

    /// Returns once ``run()`` is fetching, or has ended without getting there.
    func untilStarted() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { state -> Bool in
                if case .starting = state {
                    startWaiters.withLock { $0.append(continuation) }
                    return false
                }
                if case .idle = state {
                    startWaiters.withLock { $0.append(continuation) }
                    return false
                }
                return true
            }
            if ready { continuation.resume() }
        }
    }

    private func resumeStartWaiters() {
        let waiters = startWaiters.withLock { waiters in
            defer { waiters.removeAll() }
            return waiters
        }
        waiters.forEach { $0.resume() }
    }

    var logMetadata: Logger.Metadata {
        [LogKey.consumer: "\(consumer)", LogKey.subject: "\(filter)"]
    }
}

extension Subscription {
    /// One partition of a partitioned group's stream, as one of its members reads it.
    struct Partition: Sendable {
        let stream: String
        /// The partition's subjects, such as `$GROUP.<stream>.3.>`.
        let natsFilter: String
        /// What its subjects start with before the application subject.
        let deliveredPrefix: String
        /// The member's handler slots, shared by every partition it holds.
        let slots: HandlerSlots
    }

    struct Setup {
        var stream: String
        var subscription: PullSubscription
        /// `<dead-letter subject>.` as an application subject prefix, when dead-lettering.
        var deadLetterPrefix: String?
        var ledger: AttemptLedger
        /// For a partition that another member left with messages unacknowledged.
        var takeover: KeyedDispatch.Takeover?
    }

    static func validate(
        consumer: String,
        filter: String,
        configuration: Configuration,
        naming: Naming
    ) throws(MessageStoreError) {
        do {
            try SubjectRules.validateCategory(consumer)
        } catch {
            throw MessageStoreError(
                code: .invalidConfiguration,
                message: "invalid consumer name \"\(consumer)\": \(error.message)",
                consumer: consumer
            )
        }
        func invalid(_ text: String) -> MessageStoreError {
            MessageStoreError(code: .invalidConfiguration, message: text, consumer: consumer)
        }
        guard configuration.maxAttempts >= 1 else { throw invalid("maxAttempts must be at least 1") }
        try configuration.retrySchedule.validate()
        if let maxDeliveries = configuration.maxDeliveries, maxDeliveries < configuration.maxAttempts {
            throw invalid("maxDeliveries must be at least maxAttempts (\(configuration.maxAttempts))")
        }
        if let grace = configuration.shutdownGracePeriod, grace < .zero {
            throw invalid("shutdownGracePeriod must not be negative")
        }
        guard configuration.batchSize >= 1 else { throw invalid("batchSize must be at least 1") }
        guard configuration.maxAckPending >= 1 else { throw invalid("maxAckPending must be at least 1") }
        guard configuration.maxConcurrentHandlers >= 1 else {
            throw invalid("maxConcurrentHandlers must be at least 1")
        }
        guard configuration.ackWait >= .milliseconds(100) else { throw invalid("ackWait must be at least 100 ms") }
        guard configuration.idlePollInterval >= .milliseconds(100) else {
            throw invalid("idlePollInterval must be at least 100 ms")
        }
        if let interval = configuration.progressInterval, interval <= .zero || interval >= configuration.ackWait {
            throw invalid("progressInterval must be positive and shorter than ackWait")
        }
        if let deadLetter = configuration.deadLetterSubject {
            _ = try naming.publishSubject(deadLetter)
            // Dead letters of this worker would be delivered to it again, and so on forever.
            if SubjectOverlap.overlaps(deadLetter + ".>", filter) {
                throw invalid(
                    "the dead-letter subject \(deadLetter) is inside the filter \(filter): its dead letters would "
                        + "come back to this worker; choose a dead-letter subject outside the filter"
                )
            }
        }
    }

    /// Makes sure the streams and the consumer exist, then binds a pull subscription.
    func prepare() async throws(MessageStoreError) -> Setup {
        var deadLetterPrefix: String?
        if let deadLetter = configuration.deadLetterSubject {
            _ = try await ensureStream(covering: deadLetter + ".>", purpose: "the dead-letter subject \(deadLetter)")
            deadLetterPrefix = deadLetter + "."
        }
        let stream =
            if let partition { partition.stream } else {
                try await ensureStream(covering: filter, purpose: "the subscription filter \(filter)")
            }
        let consumerInfo = try await ensureConsumer(stream: stream)
        let replicas = try await store.jetStream.streamInfo(stream).config.numReplicas ?? 1
        let ledger = try await AttemptLedger.prepare(
            store: store,
            stream: stream,
            consumer: consumer,
            consumerCreated: consumerInfo.created,
            replicas: replicas
        )
        let subscription = try await store.jetStream.pullSubscription(
            stream: stream,
            consumer: consumer,
            acknowledges: true
        )
        var takeover: KeyedDispatch.Takeover?
        if partition != nil, consumerInfo.numAckPending > 0 {
            takeover = KeyedDispatch.Takeover(
                boundary: consumerInfo.delivered.streamSeq,
                outstanding: consumerInfo.numAckPending,
                deadline: .now + configuration.ackWait * 2
            )
            store.logger.debug(
                "taking over a partition with unacknowledged messages: newer ones wait for them",
                metadata: logMetadata.merging(["count": "\(consumerInfo.numAckPending)"]) { $1 }
            )
        }
        return Setup(
            stream: stream,
            subscription: subscription,
            deadLetterPrefix: deadLetterPrefix,
            ledger: ledger,
            takeover: takeover
        )
    }

    /// Creates the durable consumer, or brings an existing one's settings up to date.
    private func ensureConsumer(stream: String) async throws(MessageStoreError) -> JetStream.ConsumerInfo {
        var desired = JetStream.ConsumerConfig(durableName: consumer)
        desired.filterSubject = natsFilter
        desired.ackWait = configuration.ackWait.nanoseconds
        // Deliveries beyond the attempts: those that never reached a handler do not count as
        // attempts, and a worker that crashed during the last attempt gets the message once more,
        // to terminate and dead-letter it without running the handler.
        desired.maxDeliver = configuration.effectiveMaxDeliveries
        desired.maxAckPending = configuration.maxAckPending

        let jetStream = store.jetStream
        if let existing = try await jetStream.consumerInfo(stream: stream, name: consumer) {
            if let existingFilter = existing.config.filterSubject, !existingFilter.isEmpty,
                existingFilter != natsFilter
            {
                throw MessageStoreError(
                    code: .invalidConfiguration,
                    message: "consumer \(consumer) already exists on stream \(stream) with filter \(existingFilter), "
                        + "not \(natsFilter); use another consumer name or delete the consumer",
                    stream: stream,
                    consumer: consumer
                )
            }
            if existing.config.ackWait != desired.ackWait || existing.config.maxDeliver != desired.maxDeliver
                || existing.config.maxAckPending != desired.maxAckPending
            {
                var update = existing.config
                update.ackWait = desired.ackWait
                update.maxDeliver = desired.maxDeliver
                update.maxAckPending = desired.maxAckPending
                do {
                    let updated = try await jetStream.createOrUpdateDurableConsumer(stream: stream, config: update)
                    store.logger.info("updated consumer settings", metadata: logMetadata)
                    return updated
                } catch {
                    store.logger.warning(
                        "could not update the existing consumer's settings; using them as they are",
                        metadata: logMetadata.merging([LogKey.error: "\(error)"]) { $1 }
                    )
                }
            }
            return existing
        }
        do {
            return try await jetStream.createOrUpdateDurableConsumer(stream: stream, config: desired)
        } catch {
            // Another worker may have created it at the same moment.
            guard let existing = try await jetStream.consumerInfo(stream: stream, name: consumer) else { throw error }
            return existing
        }
    }

    private func ensureStream(covering applicationFilter: String, purpose: String) async throws(MessageStoreError)
        -> String
    {
        try await Self.ensureStream(store: store, covering: applicationFilter, purpose: purpose, consumer: consumer)
    }

    /// The name of the stream covering `applicationFilter`, created when the store may.
    static func ensureStream(
        store: MessageStore,
        covering applicationFilter: String,
        purpose: String,
        consumer: String
    ) async throws(MessageStoreError) -> String {
        if let stream = try await store.stream(for: applicationFilter) {
            return stream.name
        }
        let category = Naming.category(of: applicationFilter)
        guard store.configuration.createMissingStreams, (try? SubjectRules.validateCategory(category)) != nil else {
            throw MessageStoreError(
                code: .streamNotFound,
                message: "no stream covers \(store.naming.subjectPrefix)\(applicationFilter), needed for \(purpose); "
                    + "create stream \(store.naming.streamName(category: category)) (ensureStream(\"\(category)\")) "
                    + "or let the store create missing streams",
                subject: applicationFilter,
                consumer: consumer
            )
        }
        return try await store.ensureStream(category).name
    }
}

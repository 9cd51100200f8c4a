import Logging

// Pulling from consumers: a subscription bound to an existing consumer, read either by a fetch
// thread of its own (workers) or one awaited fetch at a time (ordered reads).

extension JetStream {
    /// Subscribes to receive from the consumer `consumer` of `stream`, which must already exist.
    /// - Parameter acknowledges: Whether the consumer expects acknowledgements.
    func pullSubscription(
        stream: String,
        consumer: String,
        acknowledges: Bool
    ) async throws(MessageStoreError) -> PullSubscription {
        try await PullSubscription.bind(client: client, stream: stream, consumer: consumer, acknowledges: acknowledges)
    }

    /// The connection's thread that tells the server which messages are still being handled.
    var progressThread: ProgressThread { client.progressThread }
}

extension PullSubscription {
    /// The batches this subscription pulls on a thread of its own, as an async sequence; see
    /// ``FetchLoop``. Nothing is fetched before its ``FetchLoop/start()``.
    func batches(
        batchSize: @escaping @Sendable () -> Int,
        longPoll: Duration,
        maxBatchesInFlight: Int,
        endsRequestsAtStop: Bool = true,
        logger: Logger,
        fetched: @escaping @Sendable ([FetchedMessage]) -> Void
    ) -> FetchLoop {
        FetchLoop(
            subscription: self,
            batchSize: batchSize,
            longPoll: longPoll,
            maxBatchesInFlight: maxBatchesInFlight,
            endsRequestsAtStop: endsRequestsAtStop,
            logger: logger,
            fetched: fetched
        )
    }

    /// One fetch, awaited on a library thread (see ``fetch(batch:longPoll:)``). A blocked fetch
    /// cannot see task cancellation, so cancelling the task unsubscribes, which wakes it at once:
    /// the subscription is finished then.
    func fetch(batch: Int, wait: Duration?) async throws(MessageStoreError) -> FetchOutcome {
        let result: Result<FetchOutcome, MessageStoreError> = await withTaskCancellationHandler {
            do throws(MessageStoreError) {
                return .success(
                    try await client.pool.run { () throws(MessageStoreError) -> FetchOutcome in
                        self.fetch(batch: batch, longPoll: wait)
                    }
                )
            } catch {
                return .failure(error)
            }
        } onCancel: {
            unsubscribe()
        }
        return try result.get()
    }
}

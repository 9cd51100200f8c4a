import CNATS
import Synchronization

extension JetStream {
    /// Publishes one message to JetStream and waits for its acknowledgement, through the
    /// connection that sends at once (see ``PromptConnection``).
    func publish(_ publication: Publication, timeout: Duration) async throws(MessageStoreError) -> PublishAck {
        if let prompt = client.prompt {
            return try await prompt.publish(publication, timeout: timeout)
        }
        // Without the second connection, through the main one's inbox: the same matching of
        // acknowledgements, timeouts and refused publishes, only behind its flusher.
        let inbox: AckInbox
        do {
            inbox = try client.pipelineAcks()
        } catch {
            var error = error
            error.subject = publication.subject
            throw error
        }
        return try await inbox.publish(publication, timeout: timeout)
    }

    /// Writes one message to the socket now and returns without waiting for its
    /// acknowledgement, which the result holds; nil when the store has no connection that
    /// sends at once (the main one's flusher would hold the message back).
    func sendAtOnce(_ publication: Publication, timeout: Duration) -> SentPublish? {
        client.prompt?.send(publication, timeout: timeout)
    }

    /// Starts a batch of `count` messages published with their acknowledgements in flight
    /// together, at most `maxInFlight` at a time.
    ///
    /// The caller feeds the returned publisher in chunks while a library thread sends them, so
    /// encoding and sending overlap. Each message gets its own result, at the index it was given.
    func startPipelined(count: Int, timeout: Duration, maxInFlight: Int) -> PipelinedPublisher {
        let publisher = PipelinedPublisher(count: count, maxInFlight: maxInFlight)
        guard count > 0 else { return publisher }
        client.pool.submit {
            self.sendPipelined(publisher, timeout: timeout)
        }
        return publisher
    }

    private func sendPipelined(_ publisher: PipelinedPublisher, timeout: Duration) {
        let batch = publisher.batch
        let acks: AckInbox
        do {
            acks = try client.pipelineAcks()
        } catch {
            while let chunk = publisher.nextChunk() {
                for (index, _) in chunk {
                    batch.fail(index: index, with: error)
                }
            }
            return
        }
        while let chunk = publisher.nextChunk() {
            var start = chunk.startIndex
            while start < chunk.endIndex {
                // Messages in flight time out within `timeout`, so places come free by then;
                // the wait is bounded all the same, at twice that.
                let granted = batch.window.acquire(upTo: chunk.endIndex - start, timeout: timeout * 2)
                guard granted > 0 else {
                    let (index, publication) = chunk[start]
                    var error = ClientErrors.make(
                        NATS_TIMEOUT,
                        .publishing(publication.subject)
                    )
                    error.message =
                        "publishing stalled: too many acknowledgements outstanding for longer than the timeout"
                    batch.fail(index: index, with: error)
                    start += 1
                    continue
                }
                acks.send(chunk[start..<(start + granted)], timeout: timeout, batch: batch)
                start += granted
            }
        }
    }
}

extension JetStream {
    /// Waits until the server has received everything sent so far (acks are buffered briefly by
    /// cnats to coalesce writes).
    func flush(timeout: Duration) async throws(MessageStoreError) {
        let milliseconds = timeout.milliseconds
        try await client.pool.run { () throws(MessageStoreError) in
            let status = client.withConnection { natsConnection_FlushTimeout($0, milliseconds) }
            if status != NATS_OK {
                throw ClientErrors.make(status, .init(operation: "flushing acknowledgements"))
            }
        }
    }
}

/// The caller's side of a pipelined batch: chunks of publications go in, results come out.
final class PipelinedPublisher: @unchecked Sendable {
    // @unchecked: `chunks`, `head` and `finished` are guarded by `condition`'s mutex.
    let batch: PipelinedBatch
    private let condition = ConditionLock()
    private var chunks: [[(Int, Publication)]] = []
    private var head = 0
    private var finished = false

    init(count: Int, maxInFlight: Int) {
        batch = PipelinedBatch(count: count, maxInFlight: maxInFlight)
    }

    /// Hands publications (with their result indices) to the sending thread.
    func send(_ chunk: [(Int, Publication)]) {
        guard !chunk.isEmpty else { return }
        condition.lock()
        chunks.append(chunk)
        condition.signal()
        condition.unlock()
    }

    /// Records a result for a message that is not sent, such as one that failed to encode.
    func fail(index: Int, with error: MessageStoreError) {
        batch.fail(index: index, with: error)
    }

    /// No more chunks will come.
    func finish() {
        condition.lock()
        finished = true
        condition.signal()
        condition.unlock()
    }

    /// The next chunk for the sending thread, or nil once every chunk is taken and the caller
    /// has finished. Blocks while there is nothing to take.
    fileprivate func nextChunk() -> [(Int, Publication)]? {
        condition.lock()
        defer { condition.unlock() }
        while head == chunks.count {
            if finished { return nil }
            _ = condition.wait(seconds: 60)
        }
        let chunk = chunks[head]
        chunks[head] = []
        head += 1
        return chunk
    }

    /// Every result, in index order, once all are in.
    func results() async -> [Result<PublishAck, MessageStoreError>] {
        await withCheckedContinuation { continuation in
            batch.setContinuation(continuation)
        }
    }
}

/// Collects the results of one pipelined batch and resumes its caller when all are in.
final class PipelinedBatch: Sendable {
    private struct State {
        var results: [Result<PublishAck, MessageStoreError>?]
        var remaining: Int
        var continuation: CheckedContinuation<[Result<PublishAck, MessageStoreError>], Never>?
        var finished = false
    }

    private let state: Mutex<State>
    /// Bounds the messages sent and not yet answered.
    let window: InFlightWindow

    init(count: Int, maxInFlight: Int) {
        state = Mutex(State(results: Array(repeating: nil, count: count), remaining: count, finished: count == 0))
        window = InFlightWindow(limit: maxInFlight)
    }

    /// Resumes `continuation` with every result once all are in (at once if they already are).
    func setContinuation(_ continuation: CheckedContinuation<[Result<PublishAck, MessageStoreError>], Never>) {
        let results = state.withLock { state -> [Result<PublishAck, MessageStoreError>]? in
            guard state.finished else {
                state.continuation = continuation
                return nil
            }
            return state.results.map { $0! }
        }
        if let results { continuation.resume(returning: results) }
    }

    func fail(index: Int, with error: MessageStoreError) {
        settle(index: index, result: .failure(error))
    }

    /// Records the outcome of a message that was sent, freeing its place in the window.
    func settleSent(index: Int, result: Result<PublishAck, MessageStoreError>) {
        window.release()
        settle(index: index, result: result)
    }

    func settle(index: Int, result: Result<PublishAck, MessageStoreError>) {
        let finished = state.withLock {
            state -> (
                CheckedContinuation<[Result<PublishAck, MessageStoreError>], Never>?,
                [Result<PublishAck, MessageStoreError>]
            )? in
            guard state.results[index] == nil else { return nil }
            state.results[index] = result
            state.remaining -= 1
            guard state.remaining == 0 else { return nil }
            state.finished = true
            let continuation = state.continuation
            state.continuation = nil
            return (continuation, continuation == nil ? [] : state.results.map { $0! })
        }
        if let (continuation, results) = finished {
            continuation?.resume(returning: results)
        }
    }
}

/// Bounds how many messages of a pipelined batch are sent and not yet answered.
///
/// The sending thread blocks when the window is full until a quarter of it has drained (or the
/// timeout passes), so a full window costs one wake-up per quarter, not one per message.
final class InFlightWindow: @unchecked Sendable {
    // @unchecked: `inFlight` and `senderWaits` are guarded by `lock`.
    private let lock = ConditionLock()
    private var inFlight = 0
    private var senderWaits = false
    /// The most places ever taken at once.
    private var highWater = 0
    private let limit: Int
    private let lowWater: Int

    init(limit: Int) {
        self.limit = max(1, limit)
        lowWater = self.limit - max(1, self.limit / 4)
    }

    /// Takes between 1 and `wanted` places, as many as are free; 0 when none came free within
    /// `timeout`.
    func acquire(upTo wanted: Int, timeout: Duration) -> Int {
        lock.lock()
        defer { lock.unlock() }
        if inFlight >= limit {
            let deadline = MonotonicClock.deadline(after: timeout)
            while inFlight > lowWater {
                let now = MonotonicClock.now()
                guard now < deadline else { return 0 }
                senderWaits = true
                _ = lock.wait(nanoseconds: Int64(clamping: deadline - now))
                senderWaits = false
            }
        }
        let granted = min(max(wanted, 1), limit - inFlight)
        inFlight += granted
        highWater = max(highWater, inFlight)
        return granted
    }

    /// Gives a place back.
    func release() {
        lock.lock()
        inFlight -= 1
        if senderWaits, inFlight <= lowWater {
            lock.signal()
        }
        lock.unlock()
    }

    /// Places taken now, and the most ever taken at once.
    var usage: (now: Int, most: Int) {
        lock.lock()
        defer { lock.unlock() }
        return (inFlight, highWater)
    }
}

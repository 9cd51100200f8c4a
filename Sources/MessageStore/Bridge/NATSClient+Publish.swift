import CNATS
import Synchronization

extension NATSClient {
    /// Publishes one message to JetStream and waits for its acknowledgement.
    func publish(_ publication: Publication, timeout: Duration) async throws(MessageStoreError) -> PublishAck {
        if let prompt {
            return try await prompt.publish(publication, timeout: timeout)
        }
        let waitMilliseconds = timeout.milliseconds
        return try await pool.run { () throws(MessageStoreError) -> PublishAck in
            let message = try CMessage.make(publication)
            // js_PublishMsg does not take ownership of the message.
            defer { natsMsg_Destroy(message) }
            var options = jsPubOptions()
            jsPubOptions_Init(&options)
            options.MaxWait = waitMilliseconds
            var ack: UnsafeMutablePointer<jsPubAck>?
            var errorCode = jsErrCode(rawValue: 0)
            let status = self.withJetStream { jetStream in
                js_PublishMsg(&ack, jetStream, message, &options, &errorCode)
            }
            defer { jsPubAck_Destroy(ack) }
            guard status == NATS_OK, let ack else {
                throw ClientErrors.make(
                    status,
                    jetStreamCode: errorCode,
                    .init(operation: "publishing", subject: publication.subject, isPublish: true)
                )
            }
            return PublishAck(
                stream: ack.pointee.Stream.map { String(cString: $0) } ?? "",
                sequence: ack.pointee.Sequence,
                isDuplicate: ack.pointee.Duplicate
            )
        }
    }

    /// Starts a batch of `count` messages published with their acknowledgements in flight
    /// together.
    ///
    /// The caller feeds the returned publisher in chunks while a library thread sends them, so
    /// encoding and sending overlap. Each message gets its own result, at the index it was given.
    /// A dedicated JetStream context carries this batch's acknowledgement callback, so batches
    /// never see each other's acks.
    func startPipelined(count: Int, timeout: Duration, maxInFlight: Int) -> PipelinedPublisher {
        let publisher = PipelinedPublisher(count: count)
        guard count > 0 else { return publisher }
        pool.submit {
            self.sendPipelined(publisher, timeout: timeout, maxInFlight: maxInFlight)
        }
        return publisher
    }

    private func sendPipelined(_ publisher: PipelinedPublisher, timeout: Duration, maxInFlight: Int) {
        let batch = publisher.batch
        let context = Unmanaged.passRetained(batch)
        var jsOptions = jsOptions()
        jsOptions_Init(&jsOptions)
        jsOptions.Wait = timeout.milliseconds
        jsOptions.PublishAsync.MaxPending = Int64(maxInFlight)
        jsOptions.PublishAsync.StallWait = timeout.milliseconds
        jsOptions.PublishAsync.AckHandlerClosure = context.toOpaque()
        jsOptions.PublishAsync.AckHandler = { _, message, ack, failure, closure in
            guard let closure else {
                natsMsg_Destroy(message)
                return
            }
            let batch = Unmanaged<PipelinedBatch>.fromOpaque(closure).takeUnretainedValue()
            let result = PublishOutcome.make(
                subject: message.map { CMessage.subject(of: $0) },
                ack: ack,
                failure: failure
            )
            // Take the slot before destroying the message: its address may be reused at once.
            let index = message.flatMap { batch.takeIndex(key: UInt(bitPattern: $0)) }
            natsMsg_Destroy(message)
            if let index {
                batch.settle(index: index, result: result)
            }
        }

        var jetStream: OpaquePointer?
        let status = withConnection { connection in natsConnection_JetStream(&jetStream, connection, &jsOptions) }
        guard status == NATS_OK, let jetStream else {
            let error = ClientErrors.make(status, .init(operation: "creating a JetStream context"))
            while let chunk = publisher.nextChunk() {
                for (index, _) in chunk {
                    batch.fail(index: index, with: error)
                }
            }
            context.release()
            return
        }

        var options = jsPubOptions()
        jsPubOptions_Init(&options)
        options.MaxWait = timeout.milliseconds
        while let chunk = publisher.nextChunk() {
            for (index, publication) in chunk {
                let message: OpaquePointer
                do {
                    message = try CMessage.make(publication)
                } catch {
                    batch.fail(index: index, with: error)
                    continue
                }
                let key = UInt(bitPattern: message)
                batch.register(key: key, index: index)
                var owned: OpaquePointer? = message
                let publishStatus = js_PublishMsgAsync(jetStream, &owned, &options)
                if publishStatus != NATS_OK {
                    var error = ClientErrors.make(
                        publishStatus,
                        .init(operation: "publishing", subject: publication.subject, isPublish: true)
                    )
                    if publishStatus == NATS_TIMEOUT {
                        error.message =
                            "publishing stalled: too many acknowledgements outstanding for longer than the timeout"
                    }
                    batch.unregister(key: key)
                    batch.fail(index: index, with: error)
                }
                // Destroys the message only if the library did not take it (it then cleared `owned`).
                natsMsg_Destroy(owned)
            }
        }

        // Every registered message is answered by the handler: an ack, an error or a timeout.
        let owner = JetStreamContextOwner(pointer: jetStream)
        batch.whenDone {
            self.pool.submit {
                owner.destroy()
                context.release()
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

    init(count: Int) {
        batch = PipelinedBatch(count: count)
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
        var indexByMessage: [UInt: Int] = [:]
        var continuation: CheckedContinuation<[Result<PublishAck, MessageStoreError>], Never>?
        var onDone: (@Sendable () -> Void)?
        var finished = false
    }

    private let state: Mutex<State>

    init(count: Int) {
        state = Mutex(State(results: Array(repeating: nil, count: count), remaining: count, finished: count == 0))
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

    func register(key: UInt, index: Int) {
        state.withLock { $0.indexByMessage[key] = index }
    }

    func unregister(key: UInt) {
        _ = state.withLock { $0.indexByMessage.removeValue(forKey: key) }
    }

    func fail(index: Int, with error: MessageStoreError) {
        settle(index: index, result: .failure(error))
    }

    func takeIndex(key: UInt) -> Int? {
        state.withLock { $0.indexByMessage.removeValue(forKey: key) }
    }

    /// Runs `action` once every result is in (at once if they already are).
    func whenDone(_ action: @escaping @Sendable () -> Void) {
        let runNow = state.withLock { state -> Bool in
            if state.finished { return true }
            state.onDone = action
            return false
        }
        if runNow { action() }
    }

    func settle(index: Int, result: Result<PublishAck, MessageStoreError>) {
        let finished = state.withLock {
            state -> (
                CheckedContinuation<[Result<PublishAck, MessageStoreError>], Never>?,
                [Result<PublishAck, MessageStoreError>], (@Sendable () -> Void)?
            )? in
            guard state.results[index] == nil else { return nil }
            state.results[index] = result
            state.remaining -= 1
            guard state.remaining == 0 else { return nil }
            state.finished = true
            let continuation = state.continuation
            state.continuation = nil
            let onDone = state.onDone
            state.onDone = nil
            return (continuation, continuation == nil ? [] : state.results.map { $0! }, onDone)
        }
        if let (continuation, results, onDone) = finished {
            continuation?.resume(returning: results)
            onDone?()
        }
    }
}

/// Carries a batch's private `jsCtx` to the thread that destroys it once every ack is in.
private struct JetStreamContextOwner: @unchecked Sendable {
    // @unchecked: used by exactly one thread, once, after the batch is finished.
    let pointer: OpaquePointer

    func destroy() {
        jsCtx_Destroy(pointer)
    }
}

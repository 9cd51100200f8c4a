#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Runs blocking cnats calls on threads the library owns, never on Swift's cooperative pool.
///
/// The pool is elastic: a job that finds no idle thread starts a new one (up to a cap), and a
/// thread that stays idle for a while exits. Blocking calls are bounded by their own timeouts, so
/// concurrent callers are not serialised behind one slow request. Long-running loops (a
/// subscription's fetch loop) use ``Threads/start(name:_:)`` instead, so they never occupy
/// a pool thread.
final class BlockingThreadPool: @unchecked Sendable {
    // @unchecked: every mutable field is guarded by `condition`'s mutex.
    typealias Job = () -> Void

    static let shared = BlockingThreadPool(maximumThreads: 64, idleSeconds: 10)

    private let condition = ConditionLock()
    private var jobs: [Job] = []
    private var jobsHead = 0
    private var idleThreads = 0
    private var threads = 0
    private let maximumThreads: Int
    private let idleSeconds: Int

    init(maximumThreads: Int, idleSeconds: Int) {
        precondition(maximumThreads > 0)
        self.maximumThreads = maximumThreads
        self.idleSeconds = idleSeconds
    }

    /// Runs `body` on a pool thread and returns its result to the awaiting task.
    func run<T: Sendable>(
        _ body: @escaping @Sendable () throws(MessageStoreError) -> T
    ) async throws(MessageStoreError) -> T {
        let result: Result<T, MessageStoreError> = await withCheckedContinuation { continuation in
            self.submit {
                do throws(MessageStoreError) {
                    continuation.resume(returning: .success(try body()))
                } catch {
                    continuation.resume(returning: .failure(error))
                }
            }
        }
        return try result.get()
    }

    /// Runs `body` on a pool thread without waiting for it.
    func submit(_ job: @escaping Job) {
        condition.lock()
        jobs.append(job)
        let startThread = idleThreads == 0 && threads < maximumThreads
        if startThread {
            threads += 1
        }
        condition.signal()
        condition.unlock()
        if startThread {
            Threads.start(name: "message-store-io") { [self] in workerLoop() }
        }
    }

    private func nextJob() -> Job? {
        condition.lock()
        defer { condition.unlock() }
        while jobsHead == jobs.count {
            idleThreads += 1
            let signalled = condition.wait(seconds: idleSeconds)
            idleThreads -= 1
            if !signalled && jobsHead == jobs.count {
                threads -= 1
                return nil
            }
        }
        let job = jobs[jobsHead]
        jobsHead += 1
        if jobsHead == jobs.count {
            jobs.removeAll(keepingCapacity: true)
            jobsHead = 0
        } else if jobsHead > 1024 && jobsHead * 2 > jobs.count {
            jobs.removeFirst(jobsHead)
            jobsHead = 0
        }
        return job
    }

    private func workerLoop() {
        while let job = nextJob() {
            job()
        }
    }
}

import CNATS

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
/// subscription's fetch loop) use ``startDedicatedThread(name:_:)`` instead, so they never occupy
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
            Self.startDedicatedThread(name: "message-store-io") { [self] in workerLoop() }
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

    /// Starts a detached OS thread that runs `body` and then releases cnats' per-thread memory.
    static func startDedicatedThread(name: String, _ body: @escaping @Sendable () -> Void) {
        final class Box {
            let name: String
            let body: () -> Void
            init(name: String, body: @escaping () -> Void) {
                self.name = name
                self.body = body
            }
        }
        let box = Unmanaged.passRetained(Box(name: name, body: body)).toOpaque()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        defer { pthread_attr_destroy(&attributes) }
        #if canImport(Darwin)
            var thread: pthread_t?
        #else
            var thread = pthread_t()
        #endif
        let status = pthread_create(
            &thread,
            &attributes,
            { raw in
                #if canImport(Darwin)
                    let context = raw
                #else
                    guard let context = raw else { return nil }
                #endif
                let box = Unmanaged<Box>.fromOpaque(context).takeRetainedValue()
                cnats_shim_set_thread_name(String(box.name.prefix(15)))
                box.body()
                nats_ReleaseThreadMemory()
                return nil
            },
            box
        )
        precondition(status == 0, "pthread_create failed with \(status)")
    }
}

/// A pthread mutex with one condition variable, heap-allocated so its address never moves.
final class ConditionLock: @unchecked Sendable {
    // @unchecked: the pthread primitives are themselves the synchronisation.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let cond: UnsafeMutablePointer<pthread_cond_t>

    init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        cond = .allocate(capacity: 1)
        cond.initialize(to: pthread_cond_t())
        #if canImport(Darwin)
            pthread_cond_init(cond, nil)
        #else
            var attributes = pthread_condattr_t()
            pthread_condattr_init(&attributes)
            pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
            pthread_cond_init(cond, &attributes)
            pthread_condattr_destroy(&attributes)
        #endif
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        cond.deallocate()
        mutex.deallocate()
    }

    func lock() { pthread_mutex_lock(mutex) }
    func unlock() { pthread_mutex_unlock(mutex) }
    func signal() { pthread_cond_signal(cond) }
    func broadcast() { pthread_cond_broadcast(cond) }

    /// Waits for a signal; returns false when `seconds` passed without one.
    func wait(seconds: Int) -> Bool {
        wait(nanoseconds: Int64(seconds) * 1_000_000_000)
    }

    /// Waits for a signal; returns false when `nanoseconds` passed without one.
    func wait(nanoseconds: Int64) -> Bool {
        #if canImport(Darwin)
            var relative = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
            return pthread_cond_timedwait_relative_np(cond, mutex, &relative) != ETIMEDOUT
        #else
            var deadline = timespec()
            clock_gettime(CLOCK_MONOTONIC, &deadline)
            let total = Int64(deadline.tv_nsec) + nanoseconds % 1_000_000_000
            deadline.tv_sec += Int(nanoseconds / 1_000_000_000 + total / 1_000_000_000)
            deadline.tv_nsec = Int(total % 1_000_000_000)
            return pthread_cond_timedwait(cond, mutex, &deadline) != ETIMEDOUT
        #endif
    }
}

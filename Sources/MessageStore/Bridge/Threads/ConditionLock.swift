#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

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

extension ConditionLock {
    /// Waits for a signal for at most `milliseconds`; returns false on timeout.
    func wait(milliseconds: Int) -> Bool {
        wait(nanoseconds: Int64(milliseconds) * 1_000_000)
    }
}

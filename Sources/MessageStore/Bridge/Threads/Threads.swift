import CNATS

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The one place the library starts threads of its own. Each is named (`ms-…`, visible in
/// `top -H` and debuggers) and releases cnats' per-thread memory when its body returns.
///
/// The threads: `message-store-io` (the ``BlockingThreadPool``'s workers, for blocking cnats
/// calls), `ms-fetch` (a subscription's fetch loop), `ms-progress` (a subscription's
/// in-progress acknowledgements) and `ms-ack-timer` (an ``AckInbox``'s publish timeouts).
/// cnats starts its own besides: one per connection for reading and one for flushing, one per
/// asynchronous subscription for delivery, and a shared one for its timers.
enum Threads {
    /// Starts a detached OS thread named `name` (at most 15 bytes are kept) that runs `body`.
    static func start(name: String, _ body: @escaping @Sendable () -> Void) {
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

/// Nanoseconds on the monotonic clock: the clock ``ConditionLock`` waits on and deadlines are
/// kept in.
enum MonotonicClock {
    static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }

    /// `timeout` from now; `UInt64.max` (never) when that is beyond the clock.
    static func deadline(after timeout: Duration) -> UInt64 {
        let (deadline, overflow) = now().addingReportingOverflow(UInt64(clamping: max(timeout.nanoseconds, 1)))
        return overflow ? .max : deadline
    }
}

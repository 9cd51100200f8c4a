// A minimal check of whether ThreadSanitizer reports `Synchronization.Mutex` on Linux: two threads
// increment a counter that only a Mutex guards, so a report here is a false positive.
//
//     swiftc -sanitize=thread -O scripts/tsan/MutexCounter.swift -o /tmp/MutexCounter && /tmp/MutexCounter
//
// scripts/tsan.sh builds and runs this first and says what TSan made of it.
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

final class Counter: Sendable {
    let value = Mutex(0)
}

let counter = Counter()
let increments = 100_000

func work(_ argument: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    for _ in 0..<increments {
        counter.value.withLock { $0 += 1 }
    }
    return nil
}

var threads: [pthread_t] = []
for _ in 0..<2 {
    var thread = pthread_t()
    guard pthread_create(&thread, nil, work, nil) == 0 else { fatalError("pthread_create failed") }
    threads.append(thread)
}
for thread in threads {
    pthread_join(thread, nil)
}
let total = counter.value.withLock { $0 }
print("MutexCounter: \(total) of \(2 * increments) increments")
exit(total == 2 * increments ? 0 : 1)

// One scenario, one repetition, through the public MessageStore API; prints one JSON result line.
//
//   SwiftBench <scenario> --url nats://127.0.0.1:PORT --prefix P --n N [--sample-at K] [--schedule zero|default]
//              [--tracer none|noop] [--ordering unordered|perkey] [--keys K] [--members M] [--handlers H]
//
// --tracer noop bootstraps a tracer that records nothing but is not swift-distributed-tracing's
// NoOpTracer, so the library makes every span and injects every context it would for a real one:
// the cost of tracing itself, without an exporter's.
//
// Scenarios: publish_sync, publish_pipelined, consume, consume_slow, poison, replay, latency, memory,
// io_concurrent (publishes N messages over K subjects first, untimed, then handles them with
// handlers that await 2 ms of simulated I/O, 64 at a time, unordered or in order per subject),
// group_scaling (the same work for a partitioned group of --members processes; see Group.swift),
// publish_fanin (100 tasks each awaiting its publishes, N in all), large_messages (N 64 KiB
// bodies published pipelined, then consumed), cold_start (a new worker handles the first stored
// message and prints a line at once: the runner times the process from its start to that line).
// consume, replay and memory expect N BenchEvent messages already stored on bench.events.1
// (Benchmarks/run stores them with the C tool, so every implementation reads identical bytes).

import MessageStore
import Synchronization
import Tracing

// FoundationEssentials, as the library itself uses: full Foundation would add its ICU data to
// the memory scenario's resident set, which says nothing about this library.
#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

struct BenchEvent: MessagePayload {
    var id: Int
    var amount: Int
    var currency: String
    var note: String

    init(_ id: Int) {
        self.id = id
        amount = id % 1_000
        currency = "EUR"
        note = "benchmark payload padding text"
    }
}

/// The large_messages scenario's message: a 64 KiB string in its envelope.
struct LargeEvent: MessagePayload {
    var id: Int
    var blob: String

    static let blobBytes = 65_536
    /// Made once: the standard library's String(repeating:count:) takes longer than a publish.
    static let sharedBlob = String(decoding: [UInt8](repeating: UInt8(ascii: "x"), count: blobBytes), as: UTF8.self)

    init(_ id: Int) {
        self.id = id
        blob = Self.sharedBlob
    }
}

/// Always fails: the poison scenario's message.
struct PoisonEvent: MessagePayload {
    var id: Int
}

/// Tells the caller that a worker is running and fetching.
struct Warmup: MessagePayload {
    var id: Int
}

struct BenchFailure: Error {}

struct Options {
    var scenario = ""
    var url = "nats://127.0.0.1:4222"
    var prefix = "bench"
    var n = 1_000
    var sampleAt = 50_000
    var schedule = "zero"
    var tracer = "none"
    var ordering = "unordered"
    var keys = 500
    var members = 1
    var handlers = 16
    var group = "bench-group"
    var index = 0
    var out = ""

    init(_ arguments: [String]) {
        var rest = arguments.dropFirst()
        scenario = rest.popFirst() ?? ""
        while let key = rest.popFirst() {
            let value = rest.popFirst() ?? ""
            switch key {
            case "--url": url = value
            case "--prefix": prefix = value
            case "--n": n = Int(value) ?? n
            case "--sample-at": sampleAt = Int(value) ?? sampleAt
            case "--schedule": schedule = value
            case "--tracer": tracer = value
            case "--ordering": ordering = value
            case "--keys": keys = Int(value) ?? keys
            case "--members": members = Int(value) ?? members
            case "--handlers": handlers = Int(value) ?? handlers
            case "--group": group = value
            case "--index": index = Int(value) ?? index
            case "--out": out = value
            default: fail("unknown option \(key)")
            }
        }
    }
}

/// Spans that record nothing, from a tracer the library cannot tell from a real one.
struct DiscardingTracer: Tracer {
    func startSpan<Instant: TracerInstant>(
        _ operationName: String,
        context: @autoclosure () -> ServiceContext,
        ofKind kind: SpanKind,
        at instant: @autoclosure () -> Instant,
        function: String,
        file fileID: String,
        line: UInt
    ) -> NoOpTracer.NoOpSpan {
        NoOpTracer.NoOpSpan(context: context())
    }

    func forceFlush() {}

    func inject<Carrier, Inject: Injector>(
        _ context: ServiceContext,
        into carrier: inout Carrier,
        using injector: Inject
    ) where Carrier == Inject.Carrier {}

    func extract<Carrier, Extract: Extractor>(
        _ carrier: Carrier,
        into context: inout ServiceContext,
        using extractor: Extract
    ) where Carrier == Extract.Carrier {}
}

struct BenchResult: Encodable {
    var scenario: String
    var impl = "swift"
    var n: Int
    var seconds: Double
    var per_second: Double
    var p50_ms: Double?
    var p99_ms: Double?
    var rss_bytes: Int?
    var rss_bytes_at_50k: Int?
    var schedule: String?
    var handled_twice: Int?
    var ordering: String?
    var order_violations: Int?
    var members: Int?
    var mb_per_second: Double?
}

func fail(_ message: String) -> Never {
    let line = Array("SwiftBench: \(message)\n".utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    exit(1)
}

/// A value from /proc/self/status (VmRSS, VmHWM), in bytes.
func procStatus(_ key: String) -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in text.split(separator: "\n") where line.hasPrefix(key + ":") {
        let kilobytes = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
        return kilobytes * 1_024
    }
    return 0
}

func seconds(_ duration: Duration) -> Double {
    let parts = duration.components
    return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
}

/// Exits with the count of failures if any publish of a batch failed.
func requireAllPublished(_ results: [Result<PublishAck, MessageStoreError>], _ what: String) {
    let failures = results.filter { (try? $0.get()) == nil }.count
    if failures > 0 { fail("\(failures) of \(results.count) \(what) publishes failed") }
}

/// Counts handled messages and signals once when `target` is reached.
final class Countdown: Sendable {
    let target: Int
    private let count = Mutex(0)
    private let stream: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    init(target: Int) {
        self.target = target
        (stream, continuation) = AsyncStream.makeStream()
    }

    @discardableResult
    func tick() -> Int {
        let value = count.withLock { count in
            count += 1
            return count
        }
        if value == target {
            continuation.yield()
            continuation.finish()
        }
        return value
    }

    func wait() async {
        for await _ in stream { return }
    }
}

/// Runs `worker` while `body` runs, then stops it and waits for it to finish.
func withWorker<T>(_ worker: Subscription, _ body: () async throws -> T) async throws -> T {
    let task = Task { try await worker.run() }
    do {
        let result = try await body()
        worker.stop()
        try await task.value
        return result
    } catch {
        worker.stop()
        _ = try? await task.value
        throw error
    }
}

/// Publishes a Warmup message and waits until the worker's handler has seen it.
func warmUp(_ store: MessageStore, _ seen: Countdown) async throws {
    try await store.publish(Warmup(id: 0), to: "bench.warmup.1")
    await seen.wait()
}

let subject = "bench.events.1"

func run(_ options: Options) async throws -> BenchResult {
    let connection = try await NATSConnection.connect(.init(url: options.url))
    let store = try MessageStore(connection: connection, prefix: options.prefix, createMissingStreams: true)
    let clock = ContinuousClock()
    let n = options.n
    var result = BenchResult(scenario: options.scenario, n: n, seconds: 0, per_second: 0)
    if options.scenario == "cold_start" {
        // What a new service does: connect, start a worker, handle what is stored. The runner
        // times this process from its start to the line printed when the first message is in.
        try await runColdStart(store)
        await connection.close()
        exit(0)
    }
    try await store.ensureStream("bench")

    switch options.scenario {
    case "publish_sync":
        let start = clock.now
        for index in 0..<n {
            try await store.publish(BenchEvent(index), to: subject)
        }
        result.seconds = seconds(clock.now - start)

    case "publish_fanin":
        // A web service under load: 100 tasks, each publishing and awaiting one at a time.
        let tasks = 100
        let start = clock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<tasks {
                group.addTask {
                    for index in stride(from: task, to: n, by: tasks) {
                        try await store.publish(BenchEvent(index), to: subject)
                    }
                }
            }
            try await group.waitForAll()
        }
        result.seconds = seconds(clock.now - start)

    case "large_messages":
        // 64 KiB bodies: published pipelined, then consumed by a worker; both timed.
        let batch = (0..<n).map { OutgoingMessage(LargeEvent($0), to: "bench.large.1") }
        let seen = Countdown(target: n)
        let worker = try store.subscription(
            to: "bench.>",
            consumer: "bench-worker",
            handlers: MessageHandlers().handling(LargeEvent.self) { message in
                if message.data.blob.utf8.count != LargeEvent.blobBytes { throw BenchFailure() }
                seen.tick()
            }
        )
        let start = clock.now
        requireAllPublished(await store.publish(contentsOf: batch), "large")
        try await withWorker(worker) { await seen.wait() }
        result.seconds = seconds(clock.now - start)
        result.mb_per_second = Double(2 * n * LargeEvent.blobBytes) / result.seconds / 1_048_576

    case "publish_pipelined":
        let batch = (0..<n).map { OutgoingMessage(BenchEvent($0), to: subject) }
        let start = clock.now
        let results = await store.publish(contentsOf: batch)
        result.seconds = seconds(clock.now - start)
        requireAllPublished(results, "pipelined")

    case "consume", "memory":
        let seen = Countdown(target: n)
        let rssAtSample = Mutex(0)
        let sampleAt = options.sampleAt
        let worker = try store.subscription(
            to: "bench.>",
            consumer: "bench-worker",
            handlers: MessageHandlers().handling(BenchEvent.self) { message in
                if message.data.id < 0 { throw BenchFailure() }
                if seen.tick() == sampleAt {
                    let rss = procStatus("VmRSS")
                    rssAtSample.withLock { $0 = rss }
                }
            }
        )
        let start = clock.now
        try await withWorker(worker) { await seen.wait() }
        result.seconds = seconds(clock.now - start)
        if options.scenario == "memory" {
            result.rss_bytes = procStatus("VmHWM")
            result.rss_bytes_at_50k = rssAtSample.withLock { $0 }
        }

    case "consume_slow":
        let handled = Mutex((count: 0, ids: Set<Int>()))
        let seen = Countdown(target: n)
        let worker = try store.subscription(
            to: "bench.>",
            consumer: "bench-worker",
            handlers: MessageHandlers().handling(BenchEvent.self) { message in
                try await Task.sleep(for: .milliseconds(5))
                let first = handled.withLock { state in
                    state.count += 1
                    return state.ids.insert(message.data.id).inserted
                }
                if first { _ = seen.tick() }
            }
        )
        let start = clock.now
        try await withWorker(worker) { await seen.wait() }
        result.seconds = seconds(clock.now - start)
        result.handled_twice = handled.withLock { $0.count - $0.ids.count }

    case "io_concurrent":
        let keys = max(options.keys, 1)
        let messages = (0..<n).map { OutgoingMessage(BenchEvent($0), to: "bench.events.\($0 % keys)") }
        for result in await store.publish(contentsOf: messages) { _ = try result.get() }
        // Per subject: the last id handled, and how often one came before an earlier one.
        let last = Mutex((ids: [String: Int](), violations: 0))
        let seen = Countdown(target: n)
        var configuration = Subscription.Configuration()
        configuration.maxConcurrentHandlers = 64
        switch options.ordering {
        case "unordered": configuration.ordering = .unordered
        case "perkey": configuration.ordering = .perSubject
        default: fail("unknown ordering \(options.ordering): unordered or perkey")
        }
        let worker = try store.subscription(
            to: "bench.>",
            consumer: "bench-worker",
            handlers: MessageHandlers().handling(BenchEvent.self) { message in
                try await Task.sleep(for: .milliseconds(2))
                last.withLock { state in
                    if let previous = state.ids[message.subject], previous > message.data.id { state.violations += 1 }
                    state.ids[message.subject] = message.data.id
                }
                seen.tick()
            },
            configuration: configuration
        )
        let start = clock.now
        try await withWorker(worker) { await seen.wait() }
        result.seconds = seconds(clock.now - start)
        result.ordering = options.ordering
        result.order_violations = last.withLock { $0.violations }

    case "group_scaling":
        try await runGroupScaling(store, options, result: &result)

    case "group_member":
        try await runGroupMember(store, options)

    case "poison":
        var configuration = Subscription.Configuration()
        configuration.maxAttempts = 3
        configuration.deadLetterSubject = "dead"
        if options.schedule == "zero" { configuration.retrySchedule = .immediate }
        result.schedule = options.schedule
        let ready = Countdown(target: 1)
        let worker = try store.subscription(
            to: "bench.>",
            consumer: "bench-worker",
            handlers: MessageHandlers()
                .handling(Warmup.self) { _ in ready.tick() }
                .handling(PoisonEvent.self) { _ in throw BenchFailure() },
            configuration: configuration
        )
        // The reader of the dead letters starts before the clock, as the Python program's
        // subscription does, and the clock stops when a dead letter reaches it (not when the
        // reader has finished with its consumer). With --n above 1 (for profiling), more poison
        // messages one after the other: the median.
        try await store.ensureStream("dead")
        let (arrivals, arrived) = AsyncStream.makeStream(of: ContinuousClock.Instant.self)
        let reader = Task {
            for try await _ in store.messages(on: "dead.>", follow: true) {
                arrived.yield(clock.now)
            }
        }
        defer { reader.cancel() }
        result.seconds = try await withWorker(worker) {
            try await warmUp(store, ready)
            var times: [Double] = []
            var iterator = arrivals.makeAsyncIterator()
            for index in 1...max(n, 1) {
                let start = clock.now
                try await store.publish(PoisonEvent(id: index), to: "bench.poison.1")
                guard let at = await iterator.next() else { throw BenchFailure() }
                times.append(seconds(at - start))
            }
            return times.sorted()[times.count / 2]
        }
        result.n = 1

    case "replay":
        let projection = Projection(initial: (count: 0, total: 0))
            .reducing(BenchEvent.self) { state, event in (state.count + 1, state.total + event.data.amount) }
        let start = clock.now
        let state = try await store.fetch(subject, projection: projection)
        result.seconds = seconds(clock.now - start)
        if state.count != n { fail("replay folded \(state.count) of \(n) messages") }

    case "latency":
        let ready = Countdown(target: 1)
        let (handled, handledContinuation) = AsyncStream.makeStream(of: ContinuousClock.Instant.self)
        let worker = try store.subscription(
            to: "bench.>",
            consumer: "bench-worker",
            handlers: MessageHandlers()
                .handling(Warmup.self) { _ in ready.tick() }
                .handling(BenchEvent.self) { _ in handledContinuation.yield(ContinuousClock.now) }
        )
        var latencies: [Double] = []
        result.seconds = try await withWorker(worker) {
            try await warmUp(store, ready)
            let start = clock.now
            var iterator = handled.makeAsyncIterator()
            for index in 0..<n {
                let sent = clock.now
                try await store.publish(BenchEvent(index), to: subject)
                guard let seenAt = await iterator.next() else { throw BenchFailure() }
                latencies.append(seconds(seenAt - sent) * 1_000)
            }
            return seconds(clock.now - start)
        }
        latencies.sort()
        result.p50_ms = latencies[min(latencies.count - 1, latencies.count / 2)]
        result.p99_ms = latencies[min(latencies.count - 1, Int(Double(latencies.count) * 0.99))]

    default:
        fail("unknown scenario \(options.scenario)")
    }
    result.per_second = result.seconds > 0 ? Double(result.n) / result.seconds : 0
    await connection.close()
    return result
}

/// Handles the first stored message with a new worker, then prints a line and returns.
func runColdStart(_ store: MessageStore) async throws {
    let seen = Countdown(target: 1)
    let worker = try store.subscription(
        to: "bench.>",
        consumer: "bench-worker",
        handlers: MessageHandlers().handling(BenchEvent.self) { _ in seen.tick() }
    )
    try await withWorker(worker) {
        await seen.wait()
        print(#"{"impl":"swift","n":1,"per_second":0,"scenario":"cold_start","seconds":0}"#)
        fflush(nil)  // every stream: stdout is a pipe, fully buffered
    }
}

let options = Options(CommandLine.arguments)
switch options.tracer {
case "none": break
case "noop": InstrumentationSystem.bootstrap(DiscardingTracer())
default: fail("unknown tracer \(options.tracer): none or noop")
}
do {
    let result = try await run(options)
    let encoder = JSONEncoder()
    encoder.outputFormatting = .sortedKeys
    print(String(decoding: try encoder.encode(result), as: UTF8.self))
} catch {
    fail("\(options.scenario): \(error)")
}

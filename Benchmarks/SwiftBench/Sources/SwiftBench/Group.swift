// group_scaling: a partitioned consumer group of --members worker processes (this program run as
// group_member), each handling with --handlers handlers that await 2 ms of simulated I/O, over --keys
// subjects. Once every member holds its share of the 16 partitions, N messages are published
// (pipelined) and timed until the last is handled. Members report to a file each: the partitions
// they hold, and how many messages they handled, how many of those came before an earlier one of
// their subject, and when they handled the last (CLOCK_MONOTONIC, shared by the processes).

import MessageStore
import Synchronization

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

let groupPartitions = 16

func monotonicNanoseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}

/// One member: handles until killed, writing its state to `options.out` every 20 ms.
func runGroupMember(_ store: MessageStore, _ options: Options) async throws -> Never {
    var configuration = PartitionedGroup.Configuration(partitions: groupPartitions, memberID: "m\(options.index)")
    configuration.heartbeatInterval = .milliseconds(200)
    configuration.worker.maxConcurrentHandlers = options.handlers
    configuration.worker.idlePollInterval = .milliseconds(500)
    let state = Mutex((handled: 0, violations: 0, lastNs: Int64(0), last: [String: Int]()))
    let member = try store.partitionedGroup(
        options.group,
        to: "bench.events.*",
        handlers: MessageHandlers().handling(BenchEvent.self) { message in
            try await Task.sleep(for: .milliseconds(2))
            let now = monotonicNanoseconds()
            state.withLock { state in
                if let previous = state.last[message.subject], previous > message.data.id { state.violations += 1 }
                state.last[message.subject] = message.data.id
                state.handled += 1
                state.lastNs = now
            }
        },
        configuration: configuration
    )
    let descriptor = open(options.out, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    guard descriptor >= 0 else { fail("cannot open \(options.out)") }
    let reporter = Task {
        var written = ""
        while !Task.isCancelled {
            let now = state.withLock { "\($0.handled) \($0.violations) \($0.lastNs)" }
            let line = "partitions \(member.partitions.count) progress \(now)\n"
            if line != written {
                let bytes = Array(line.utf8)
                _ = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
                written = line
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }
    do {
        try await member.run()
    } catch {
        fail("member m\(options.index): \(error)")
    }
    reporter.cancel()
    fail("member m\(options.index) stopped")
}

/// A member process's last report.
struct MemberReport {
    var partitions = 0
    var handled = 0
    var violations = 0
    var lastNs: Int64 = 0

    init(file: String) {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8),
            let line = text.split(separator: "\n").last
        else { return }
        let words = line.split(separator: " ")
        guard words.count == 6 else { return }
        partitions = Int(words[1]) ?? 0
        handled = Int(words[3]) ?? 0
        violations = Int(words[4]) ?? 0
        lastNs = Int64(words[5]) ?? 0
    }
}

/// Runs `members` member processes, publishes `n` messages once they share the partitions, and
/// times them until every one is handled.
func runGroupScaling(_ store: MessageStore, _ options: Options, result: inout BenchResult) async throws {
    let members = options.members
    guard members >= 1, groupPartitions % members == 0 else { fail("--members must divide \(groupPartitions)") }
    let group = "g\(options.prefix)"
    let directory = "/tmp/swiftbench-\(options.prefix)-\(getpid())"
    mkdir(directory, 0o755)
    var pids: [pid_t] = []
    defer {
        for pid in pids {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
        for index in 0..<members { unlink("\(directory)/m\(index)") }
        rmdir(directory)
    }
    let files = (0..<members).map { "\(directory)/m\($0)" }
    for (index, file) in files.enumerated() {
        let arguments = [
            CommandLine.arguments[0], "group_member", "--url", options.url, "--prefix", options.prefix,
            "--group", group, "--index", "\(index)", "--out", file, "--handlers", "\(options.handlers)",
        ]
        pids.append(try spawn(arguments))
    }
    // Ready: every member holds its share.
    let share = groupPartitions / members
    let deadline = ContinuousClock.now + .seconds(60)
    while !files.allSatisfy({ MemberReport(file: $0).partitions == share }) {
        guard ContinuousClock.now < deadline else { fail("the members did not share the partitions within 60 s") }
        try await Task.sleep(for: .milliseconds(20))
    }
    let keys = max(options.keys, 1)
    let n = options.n
    let messages = (0..<n).map { OutgoingMessage(BenchEvent($0), to: "bench.events.\($0 % keys)") }
    let start = monotonicNanoseconds()
    for published in await store.publish(contentsOf: messages) { _ = try published.get() }
    var reports = files.map(MemberReport.init(file:))
    let end = ContinuousClock.now + .seconds(600)
    while reports.reduce(0, { $0 + $1.handled }) < n {
        guard ContinuousClock.now < end else { fail("not every message was handled within 600 s") }
        try await Task.sleep(for: .milliseconds(20))
        reports = files.map(MemberReport.init(file:))
    }
    // Late duplicates would show in a last look.
    try await Task.sleep(for: .milliseconds(100))
    reports = files.map(MemberReport.init(file:))
    let last = reports.map(\.lastNs).max() ?? start
    result.seconds = Double(last - start) / 1e9
    result.members = members
    result.order_violations = reports.reduce(0) { $0 + $1.violations }
    result.handled_twice = reports.reduce(0) { $0 + $1.handled } - n
    for pid in pids { kill(pid, SIGKILL) }
    for name in ["GROUP_\(options.prefix)-\(group)", "KV_GROUP_\(options.prefix)-\(group)"] {
        try? await store.deleteStream(named: name)
    }
}

/// Starts `arguments` as a child process, its output to this one's stderr.
func spawn(_ arguments: [String]) throws -> pid_t {
    var pid: pid_t = 0
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, 2, 1)
    let argv = arguments.map { strdup($0) } + [nil]
    defer { for pointer in argv { free(pointer) } }
    let status = posix_spawn(&pid, arguments[0], &actions, nil, argv, environ)
    guard status == 0 else { fail("cannot start \(arguments[0]): error \(status)") }
    return pid
}

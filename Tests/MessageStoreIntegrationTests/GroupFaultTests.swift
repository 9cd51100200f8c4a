import Foundation
import MessageStoreTestSupport
import MessageStoreTesting
import Testing

@testable import MessageStore

/// What the members of a partitioned group did, from their output (`gstart`/`ghandled` lines of
/// `FaultWorker` with GROUP set), checked per key across processes by wall-clock time.
struct GroupLog {
    struct Event {
        var time: Int64
        var member: Int
        var started: Bool
        var value: Int
        var attempt: Int
    }

    var events: [String: [Event]] = [:]

    mutating func read(_ lines: [String], member: Int) {
        for line in lines {
            let parts = line.split(separator: " ")
            switch parts.first {
            case "gstart":
                guard parts.count == 5, let value = Int(parts[2]), let attempt = Int(parts[3]),
                    let time = Int64(parts[4])
                else { continue }
                events[String(parts[1]), default: []].append(
                    Event(time: time, member: member, started: true, value: value, attempt: attempt)
                )
            case "ghandled":
                guard parts.count == 4, let value = Int(parts[2]), let time = Int64(parts[3]) else { continue }
                events[String(parts[1]), default: []].append(
                    Event(time: time, member: member, started: false, value: value, attempt: 0)
                )
            default:
                continue
            }
        }
    }

    static func handledCount(_ lines: [String]) -> Int {
        lines.count { $0.hasPrefix("ghandled ") }
    }

    /// Checks every key: values handled in order (a value below the highest handled is a repeat
    /// and must be one a killed member had started), runs of a key never overlapping (a killed
    /// member's runs end at its kill).
    func check(killedAt kills: [Int: Int64]) -> (handled: Int, duplicates: Int, violations: [String]) {
        var handled = 0
        var duplicates = 0
        var violations: [String] = []
        for (key, keyEvents) in events {
            let ordered = keyEvents.sorted { $0.time < $1.time }
            var highest = -1
            var running: [(member: Int, value: Int)] = []
            var startedByKilled: Set<Int> = []
            for event in ordered {
                // A killed member's runs end when it is killed.
                running.removeAll { run in kills[run.member].map { $0 <= event.time } ?? false }
                if event.started {
                    if let other = running.first {
                        violations.append("\(key) \(event.value) started while \(other.value) ran")
                    }
                    running.append((event.member, event.value))
                    if kills[event.member] != nil { startedByKilled.insert(event.value) }
                    continue
                }
                running.removeAll { $0.member == event.member && $0.value == event.value }
                handled += 1
                if event.value == highest + 1 {
                    highest = event.value
                } else if event.value <= highest {
                    duplicates += 1
                    if !startedByKilled.contains(event.value) {
                        violations.append("\(key) \(event.value) handled again, not after a kill")
                    }
                } else {
                    violations.append("\(key) \(event.value) handled before \(highest + 1)")
                }
            }
        }
        return (handled, duplicates, violations)
    }
}

/// A partitioned group of worker processes, members killed (SIGKILL) and added mid-run.
@Suite("Partitioned groups under crashes", .serverRequired)
struct GroupFaultTests {
    static func wallNow() -> Int64 {
        Int64((Date().timeIntervalSince1970 * 1_000_000_000).rounded())
    }

    @Test(.enabled(if: testServerHasSubjectTransforms))
    func membersKilledAndAddedKeepEveryKeyInOrder() async throws {
        try await withStore { store, server in
            try await store.ensureStream("jobs")
            let keys = 500
            let perKey = 40
            let total = keys * perKey
            var messages: [OutgoingMessage] = []
            for value in 0..<perKey {
                for key in 0..<keys { messages.append(OutgoingMessage(FaultJob(value: value), to: "jobs.k\(key)")) }
            }
            for result in await store.publish(contentsOf: messages) { _ = try result.get() }

            let environment = [
                "NATS_URL": server.url, "PREFIX": store.prefix, "GROUP": "scale", "ACK_WAIT_MS": "2000",
                "JOB_MS": "2", "CONCURRENCY": "8",
                "LOG_LEVEL": ProcessInfo.processInfo.environment["GROUP_LOG_LEVEL"] ?? "error",
            ]
            var members: [WorkerProcess] = []
            var kills: [Int: Int64] = [:]
            func handledSoFar() -> Int {
                members.reduce(0) { $0 + GroupLog.handledCount($1.lines.events) }
            }
            func waitForHandled(_ count: Int) async throws {
                try await waitUntil("\(count) handled", timeout: .seconds(120)) { handledSoFar() >= count }
            }
            for _ in 0..<3 { members.append(try WorkerProcess(environment: environment)) }
            // Two members killed while handling, each followed by a new one.
            try await waitForHandled(4_000)
            kills[0] = Self.wallNow()
            members[0].send(SIGKILL)
            members.append(try WorkerProcess(environment: environment))
            try await waitForHandled(10_000)
            kills[1] = Self.wallNow()
            members[1].send(SIGKILL)
            members.append(try WorkerProcess(environment: environment))

            // Until every message is handled (and so acknowledged: the stream is a work queue).
            let partitioned = GroupLayout.streamName(group: "scale", naming: store.naming)
            try await waitUntil("every message handled and acknowledged", timeout: .seconds(120)) {
                var log = GroupLog()
                for (index, member) in members.enumerated() { log.read(member.lines.events, member: index) }
                let distinct = Set(log.events.flatMap { key, events in events.map { "\(key) \($0.value)" } })
                guard distinct.count == total else { return false }
                return try await store.jetStream.streamInfo(partitioned).state.messages == 0
            }
            for member in members.dropFirst(2) { member.send(SIGTERM) }
            for member in members { try await member.waitForExit() }

            var log = GroupLog()
            for (index, member) in members.enumerated() { log.read(member.lines.events, member: index) }
            Self.check(log, kills: kills, total: total, keys: keys)
        }
    }

    static func check(_ log: GroupLog, kills: [Int: Int64], total: Int, keys: Int) {
        let result = log.check(killedAt: kills)
        #expect(log.events.count == keys)
        #expect(result.violations.isEmpty, "\(result.violations.prefix(10))")
        if let first = result.violations.first, let key = first.split(separator: " ").first {
            let origin = log.events.values.flatMap { $0.map(\.time) }.min() ?? 0
            let story = (log.events[String(key)] ?? []).sorted { $0.time < $1.time }.map { event in
                "\(event.member)\(event.started ? " start" : " done") \(event.value)#\(event.attempt)"
                    + " @\((event.time - origin) / 1_000_000)"
            }
            let violatedKeys = Set(result.violations.map { $0.split(separator: " ")[0] }).count
            print(
                "group fault test: \(violatedKeys) keys out of order; \(key): \(story.joined(separator: ", ")); kills "
                    + "\(kills.mapValues { ($0 - origin) / 1_000_000 })"
            )
        }
        #expect(result.handled == total + result.duplicates)
        // A kill repeats what the member was handling (at most its 8 handlers) and what it had
        // handled but not yet acknowledged.
        #expect(result.duplicates <= kills.count * 16, "handled twice: \(result.duplicates)")
        print("group fault test: \(total) messages, \(kills.count) kills, \(result.duplicates) handled twice")
    }
}

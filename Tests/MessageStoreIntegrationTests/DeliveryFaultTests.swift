import Foundation
import MessageStoreTestSupport
import MessageStoreTesting
import Synchronization
import Testing

@testable import MessageStore

/// What a run of worker processes did, from their output.
struct WorkerLog {
    /// Per Job sequence: the attempt numbers its handler saw when it started, in order.
    var starts: [UInt64: [Int]] = [:]
    var handled: [UInt64: Int] = [:]
    var poisonRuns: [Int] = []
    /// Jobs whose handler saw an attempt above 1 more than its earlier starts explain.
    var unexplainedAttempts: [String] = []

    mutating func read(_ lines: [String]) {
        for line in lines {
            let parts = line.split(separator: " ")
            guard parts.count == 3, let sequence = UInt64(parts[1]), let attempt = Int(parts[2]) else { continue }
            switch parts[0] {
            case "start":
                let earlier = starts[sequence, default: []].count
                if attempt > earlier + 1 {
                    unexplainedAttempts.append("#\(sequence) attempt \(attempt) after \(earlier) start(s)")
                }
                starts[sequence, default: []].append(attempt)
            case "handled":
                handled[sequence, default: 0] += 1
            case "poison":
                poisonRuns.append(attempt)
            default:
                continue
            }
        }
    }

    var duplicates: Int { handled.values.reduce(0) { $0 + $1 - 1 } }
}

/// Crashes and stops of real worker processes, counted exactly with an independent reader.
@Suite("Delivery under crashes and restarts", .serverRequired)
struct DeliveryFaultTests {
    @Test func crashesDuringHandlersDeadLetterOnlyThePoisonMessage() async throws {
        try await withStore { store, server in
            try await store.ensureStream("jobs")
            let poisonIndex = 10
            let total = 1_000
            let batch = (1...total).map { index in
                index == poisonIndex
                    ? OutgoingMessage(PoisonJob(value: index), to: "jobs.poison")
                    : OutgoingMessage(FaultJob(value: index), to: "jobs.\(index)")
            }
            for result in await store.publish(contentsOf: batch) { _ = try result.get() }

            let environment = [
                "NATS_URL": server.url, "PREFIX": store.prefix, "CONSUMER": "crashy", "ACK_WAIT_MS": "2000",
                "JOB_MS": "3",
            ]
            var log = WorkerLog()
            var externalKills = 0
            var selfKills = 0
            let deadline = ContinuousClock.now + .seconds(150)
            // Until every job is handled and the poison message is dead-lettered: five SIGKILLs
            // from outside while jobs run, and as many starts as the poison message's own kills need.
            while ContinuousClock.now < deadline {
                let worker = try WorkerProcess(environment: environment)
                let killAt = externalKills < 5 ? (externalKills + 1) * 150 : Int.max
                let before = log
                @Sendable func progress(_ lines: [String]) -> WorkerLog {
                    var seen = before
                    seen.read(lines)
                    return seen
                }
                let outcome = try await worker.lines.wait(
                    for: "a crash, a kill point or the end",
                    timeout: .seconds(60)
                ) {
                    lines in
                    let handled = progress(lines).handled.count
                    return lines.last == "exited" || handled >= killAt || handled == total - 1
                }
                if outcome.last == "exited" {
                    selfKills += 1
                } else if progress(outcome).handled.count >= killAt {
                    worker.send(SIGKILL)
                    externalKills += 1
                } else {
                    // Every job handled: this worker runs until the poison message is dead-lettered
                    // (or it dies on it, and the next one goes on).
                    try await waitUntil("the dead letter or the worker's exit", timeout: .seconds(30)) {
                        if worker.lines.events.last == "exited" { return true }
                        return try await !store.deadLetters().isEmpty
                    }
                    if worker.lines.events.last == "exited" {
                        selfKills += 1
                    } else {
                        worker.send(SIGTERM)
                        try await worker.waitForExit()
                        log.read(worker.lines.events)
                        break
                    }
                }
                try await worker.waitForExit()
                log.read(worker.lines.events)
            }

            let letters = try await store.deadLetters()
            #expect(externalKills == 5)
            #expect(letters.count == 1, "dead letters: \(letters.map(\.subject))")
            let letter = try #require(letters.first)
            #expect(letter.subject == "dlq.jobs.poison")
            #expect(letter.headers[DeadLetterHeader.cause] == "too-many-deliveries")
            // Its first run went unrecorded (first deliveries record nothing); the three recorded
            // runs are the attempts, then it was terminated without running again. A kill of ours
            // that lands between a run's record and its start uses that attempt up unrun (as for
            // the jobs below): CI saw [1, 2, 3] once, beside "#641 attempt 2 after 0 start(s)".
            let recorded = Array(log.poisonRuns.dropFirst())
            #expect(log.poisonRuns.first == 1, "poison runs: \(log.poisonRuns)")
            #expect(
                recorded.last == 3 && recorded == recorded.sorted() && Set(recorded).count == recorded.count,
                "poison runs: \(log.poisonRuns)"
            )
            #expect(3 - recorded.count <= externalKills, "poison runs: \(log.poisonRuns)")
            if log.poisonRuns != [1, 1, 2, 3] { print("crash test: poison runs \(log.poisonRuns)") }
            // Each of its runs killed the process (a kill of ours may have met one that was dying).
            #expect(selfKills <= log.poisonRuns.count)
            let missing = (1...UInt64(total)).filter { $0 != UInt64(poisonIndex) && log.handled[$0] == nil }
            #expect(missing.isEmpty, "never handled: \(missing.prefix(20))")
            // A run is recorded before its handler starts: a kill in between counts a run that
            // never started, at most one per kill (the one message between its record and its start).
            #expect(log.unexplainedAttempts.count <= externalKills, "\(log.unexplainedAttempts.prefix(10))")
            if !log.unexplainedAttempts.isEmpty {
                print("crash test: counted but never started: \(log.unexplainedAttempts)")
            }
            // A kill can interrupt the one handler running, or land between a handler's end and
            // its acknowledgement: at most one message handled twice per kill.
            #expect(log.duplicates <= externalKills + log.poisonRuns.count, "handled twice: \(log.duplicates)")
            let info = try await store.consumerInfo("crashy", category: "jobs")
            #expect(info.numPending == 0)
            #expect(info.numAckPending == 0)
            #expect(info.ackFloor.streamSeq == UInt64(total))
        }
    }

    @Test func gracefulRestartsWithABacklogUseNoAttemptAndDeadLetterNothing() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("jobs")
            let total = 2_000
            let batch = (1...total).map { OutgoingMessage(FaultJob(value: $0), to: "jobs.\($0)") }
            for result in await store.publish(contentsOf: batch) { _ = try result.get() }

            let runs = Recorder<(sequence: UInt64, attempt: Int)>()
            var configuration = Subscription.Configuration()
            configuration.deadLetterSubject = "dlq"
            let handlers = MessageHandlers().handling(FaultJob.self) { message in
                runs.record((message.sequence, message.attempt))
                try await Task.sleep(for: .milliseconds(1))
            }
            let clock = ContinuousClock()
            let started = clock.now
            // Five stops in the middle of the backlog, each followed by a new worker.
            for round in 1...5 {
                let worker = try store.subscription(
                    to: "jobs.>",
                    consumer: "rolling",
                    handlers: handlers,
                    configuration: configuration
                )
                try await withRunning(worker) {
                    try await runs.wait(for: "round \(round)", timeout: .seconds(30)) { $0.count >= round * 300 }
                }
            }
            let worker = try store.subscription(
                to: "jobs.>",
                consumer: "rolling",
                handlers: handlers,
                configuration: configuration
            )
            try await withRunning(worker) {
                try await runs.wait(for: "every message", timeout: .seconds(30)) { events in
                    Set(events.map(\.sequence)).count == total
                }
                try await waitUntil("acknowledged") {
                    try await store.consumerInfo("rolling", category: "jobs").numAckPending == 0
                }
            }
            // Messages given back at a stop return at once: waiting for the 30-second ack wait
            // would have taken longer than this whole run.
            #expect(clock.now - started < .seconds(30))
            let events = runs.events
            #expect(
                events.filter { $0.attempt != 1 }.isEmpty,
                "attempts above 1: \(events.filter { $0.attempt != 1 }.prefix(10))"
            )
            #expect(events.count == total, "handled twice: \(events.count - total)")
            #expect(try await store.deadLetters().isEmpty)
            let info = try await store.consumerInfo("rolling", category: "jobs")
            #expect(info.numPending == 0)
            #expect(info.ackFloor.streamSeq == UInt64(total))
        }
    }

    /// A worker killed after a handler returned and before its acknowledgement: with a record of
    /// handled messages the redelivered message is acknowledged without running again; without
    /// one (the control, same kill) it runs twice.
    @Test func aRecordOfHandledMessagesKeepsAKilledWorkersLastMessageFromRunningTwice() async throws {
        try await withStore { store, server in
            try await store.ensureStream("jobs")
            let total = 20
            let killedAfter = 5
            let batch = (1...total).map { OutgoingMessage(FaultJob(value: $0), to: "jobs.\($0)", id: "job-\($0)") }
            for result in await store.publish(contentsOf: batch) { _ = try result.get() }

            /// A worker that kills itself once job `killedAfter` is handled, then one that
            /// finishes; what both did.
            func killAndRestart(consumer: String, handled: String?) async throws -> (WorkerLog, [String]) {
                var environment = [
                    "NATS_URL": server.url, "PREFIX": store.prefix, "CONSUMER": consumer, "ACK_WAIT_MS": "1000",
                    "JOB_MS": "2", "DIE_AFTER": String(killedAfter),
                ]
                environment["HANDLED"] = handled
                let first = try WorkerProcess(environment: environment)
                try await first.waitForExit()
                environment["DIE_AFTER"] = nil
                let second = try WorkerProcess(environment: environment)
                try await waitUntil("\(consumer) acknowledged everything", timeout: .seconds(20)) {
                    let info = try await store.consumerInfo(consumer, category: "jobs")
                    return info.numPending == 0 && info.numAckPending == 0 && info.ackFloor.streamSeq == UInt64(total)
                }
                second.send(SIGTERM)
                try await second.waitForExit()
                var log = WorkerLog()
                log.read(first.lines.events)
                log.read(second.lines.events)
                return (log, second.lines.events)
            }

            let (control, _) = try await killAndRestart(consumer: "control", handled: nil)
            #expect(
                control.handled[UInt64(killedAfter)] == 2,
                "without a record the killed worker's last job runs again"
            )

            let (recorded, secondLines) = try await killAndRestart(consumer: "recorded", handled: "jobs")
            #expect(secondLines.contains { $0.hasPrefix("delivered \(killedAfter) ") }, "it was delivered again")
            let counts = (1...UInt64(total)).map { recorded.handled[$0] ?? 0 }
            #expect(counts == Array(repeating: 1, count: total), "handled per job: \(counts)")
            #expect(try await store.deadLetters().isEmpty)
        }
    }

    @Test func messagesWaitingBehindSlowHandlersAreNotRedelivered() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("jobs")
            let total = 300
            let batch = (1...total).map { OutgoingMessage(FaultJob(value: $0), to: "jobs.\($0)") }
            for result in await store.publish(contentsOf: batch) { _ = try result.get() }
            let handled = Recorder<UInt64>()
            // The default configuration but for a 6-second ack wait (progress reports every
            // 2 s, a third of it, as by default): batches of 256, one handler at a time. 300
            // handlers of 80 ms take 24 seconds, four ack waits, so most messages wait in the
            // worker's hands longer than the ack wait.
            var configuration = Subscription.Configuration()
            configuration.ackWait = .seconds(6)
            let worker = try store.subscription(
                to: "jobs.>",
                consumer: "slow",
                handlers: MessageHandlers().handling(FaultJob.self) { message in
                    try await Task.sleep(for: .milliseconds(80))
                    handled.record(message.sequence)
                },
                configuration: configuration
            )
            try await withRunning(worker) {
                try await handled.wait(forCount: total, timeout: .seconds(90))
                try await waitUntil("acknowledged") {
                    try await store.consumerInfo("slow", category: "jobs").numAckPending == 0
                }
            }
            let sequences = handled.events
            #expect(Set(sequences).count == total)
            #expect(sequences.count == total, "handled twice: \(sequences.count - Set(sequences).count)")
            let info = try await store.consumerInfo("slow", category: "jobs")
            // Every delivery counted once: no message went out twice.
            #expect(info.delivered.consumerSeq == info.delivered.streamSeq)
            #expect(info.numPending == 0)
        }
    }

    @Test func settledMessagesAreNotKeptForProgressReports() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("jobs")
            let total = 5_000
            for result in await store.publish(
                contentsOf: (1...total).map { OutgoingMessage(FaultJob(value: $0), to: "jobs.\($0)") }
            ) {
                _ = try result.get()
            }
            let handled = Recorder<Int>()
            let worker = try store.subscription(
                to: "jobs.>",
                consumer: "light",
                handlers: MessageHandlers().handling(FaultJob.self) { handled.record($0.data.value) }
            )
            try await withRunning(worker) {
                try await handled.wait(forCount: total, timeout: .seconds(60))
                // Long before the first progress report (ten seconds): at most the batches still
                // in flight (two of 256) and the one being forgotten are kept, not every batch.
                let kept = try #require(worker.keptMessageCount)
                #expect(kept <= 3 * 256, "kept \(kept) messages of \(total)")
            }
        }
    }

    @Test func aHandlerStillRunningAfterTheGracePeriodIsCancelledAndItsMessageGivenBack() async throws {
        try await withStore { store, _ in
            try await store.ensureStream("jobs")
            try await store.publish(FaultJob(value: 1), to: "jobs.1")
            let runs = Recorder<(attempt: Int, cancelled: Bool)>()
            let started = Recorder<Int>()
            var configuration = Subscription.Configuration()
            configuration.shutdownGracePeriod = .milliseconds(200)
            let stuck = try store.subscription(
                to: "jobs.>",
                consumer: "graceful",
                handlers: MessageHandlers().handling(FaultJob.self) { message in
                    started.record(message.attempt)
                    do {
                        try await Task.sleep(for: .seconds(60))
                        runs.record((message.attempt, false))
                    } catch {
                        runs.record((message.attempt, true))
                        throw error
                    }
                },
                configuration: configuration
            )
            let task = Task { try await stuck.run() }
            await stuck.untilStarted()
            // The handler itself has started (a delivered message not yet started would be given
            // back unstarted, which is another test).
            try await started.wait(forCount: 1)
            let stopping = try await elapsed {
                stuck.stop()
                try await task.value
            }
            #expect(stopping < .seconds(3), "stopping took \(stopping)")
            #expect(runs.events.map(\.cancelled) == [true])

            // Given back, not acknowledged, and that run not counted.
            let next = Recorder<Int>()
            let worker = try store.subscription(
                to: "jobs.>",
                consumer: "graceful",
                handlers: MessageHandlers().handling(FaultJob.self) { next.record($0.attempt) }
            )
            try await withRunning(worker) {
                try await next.wait(forCount: 1, timeout: .seconds(10))
            }
            #expect(next.events == [1])
        }
    }
}

struct FaultJob: MessagePayload {
    static let messageType = "Job"
    var value: Int
}

struct PoisonJob: MessagePayload {
    static let messageType = "Poison"
    var value: Int
}

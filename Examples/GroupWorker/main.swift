// GroupWorker: a partitioned consumer group of two processes, in order per account.
//
//   swift run GroupWorker          (needs NATS server 2.10 or later)
//
// It starts itself twice more as the members "alice" and "bob" of the group "bank-workers", then
// publishes 48 transfers over 8 accounts to bank.transfer.<account>. The accounts are divided
// between the members: each line shows which member handled which transfer. Halfway, alice is
// stopped (SIGTERM, as a rolling deploy would): she finishes what she holds and gives her
// partitions up, and bob takes them over, so every account's transfers are still handled in
// order, once. The example deletes its streams when it is done.

import ExampleSupport
import Foundation
import Logging
import MessageStore
import ServiceLifecycle
import Synchronization
import UnixSignals

struct Transfer: MessagePayload {
    var account: String
    var number: Int
}

let accounts = ["A", "B", "C", "D", "E", "F", "G", "H"]
let perAccount = 6
let group = "bank-workers"

func memberConfiguration(_ name: String) -> PartitionedGroup.Configuration {
    var configuration = PartitionedGroup.Configuration(partitions: 4, memberID: name)
    configuration.heartbeatInterval = .milliseconds(200)
    configuration.worker.maxConcurrentHandlers = 4
    configuration.worker.ackWait = .seconds(2)
    configuration.worker.idlePollInterval = .milliseconds(300)
    return configuration
}

/// One member: handles transfers until SIGTERM, printing each and the partitions it holds.
func runMember(_ name: String) async throws {
    try await runExample(name) { store in
        let member = try store.partitionedGroup(
            group,
            to: "bank.transfer.*",
            handlers: MessageHandlers().handling(Transfer.self) { message in
                try await Task.sleep(for: .milliseconds(Int.random(in: 20...60)))
                say("handled \(message.data.account)\(message.data.number)")
            },
            configuration: memberConfiguration(name)
        )
        let watcher = Task {
            var shown: [Int] = []
            while !Task.isCancelled {
                let now = member.partitions
                if now != shown {
                    say("holds partitions \(now)")
                    shown = now
                }
                try? await Task.sleep(for: .milliseconds(50))
            }
        }
        let services = ServiceGroup(
            services: [member],
            gracefulShutdownSignals: [.sigterm],
            logger: Logger(label: name)
        )
        try await services.run()
        watcher.cancel()
        say("left the group")
    }
}

/// A member process, its lines printed with its name as they come.
final class MemberProcess: Sendable {
    let name: String
    /// The transfers it handled, in order.
    let handled = Lines()
    /// The partitions it said it holds, last.
    let holds = Holdings()
    private let process: Process

    init(name: String) throws {
        self.name = name
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        process.arguments = ["member", name]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        self.process = process
        let handled = handled
        let holds = holds
        Thread.detachNewThread {
            var pending = Data()
            while true {
                let data = output.fileHandleForReading.availableData
                if data.isEmpty { break }
                pending.append(data)
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
                    pending.removeSubrange(pending.startIndex...newline)
                    say("  \(name.padding(toLength: 6, withPad: " ", startingAt: 0)) \(line)")
                    if line.hasPrefix("handled ") { handled.append(String(line.dropFirst(8))) }
                    if line.hasPrefix("holds partitions ") {
                        let list = line.dropFirst(17).filter { $0.isNumber || $0 == "," }
                        holds.set(list.split(separator: ",").compactMap { Int($0) })
                    }
                }
            }
        }
    }

    var count: Int { handled.all.count }

    var partitions: [Int] { holds.partitions }

    func terminate() { process.terminate() }

    func waitForExit() { process.waitUntilExit() }
}

final class Holdings: Sendable {
    private let held = Mutex<[Int]>([])

    func set(_ partitions: [Int]) { held.withLock { $0 = partitions } }

    var partitions: [Int] { held.withLock { $0 } }
}

final class Lines: Sendable {
    private let lines = Mutex<[String]>([])

    func append(_ line: String) { lines.withLock { $0.append(line) } }

    var all: [String] { lines.withLock { $0 } }
}

func waitUntil(_ condition: @Sendable () -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(60)
    while !condition() {
        guard ContinuousClock.now < deadline else { throw CancellationError() }
        try await Task.sleep(for: .milliseconds(20))
    }
}

if CommandLine.arguments.count == 3, CommandLine.arguments[1] == "member" {
    try await runMember(CommandLine.arguments[2])
} else {
    try await runExample("GroupWorker") { store in
        try await store.ensureStream("bank")
        say("Starting members alice and bob of \(group):")
        let alice = try MemberProcess(name: "alice")
        let bob = try MemberProcess(name: "bob")
        // Both in the group before the work comes, so that the story shows them sharing it.
        try await waitUntil { !alice.partitions.isEmpty && alice.partitions.count + bob.partitions.count == 4 }
        var transfers: [OutgoingMessage] = []
        for number in 1...perAccount {
            for account in accounts {
                transfers.append(
                    OutgoingMessage(Transfer(account: account, number: number), to: "bank.transfer.\(account)")
                )
            }
        }
        for result in await store.publish(contentsOf: transfers) { _ = try result.get() }
        say("Published \(transfers.count) transfers over accounts \(accounts.joined(separator: " ")), interleaved.")
        let total = transfers.count
        try await waitUntil { alice.count + bob.count >= total / 2 }
        say("Stopping alice (SIGTERM): she finishes and hands her partitions to bob.")
        alice.terminate()
        alice.waitForExit()
        try await waitUntil { Set(alice.handled.all + bob.handled.all).count >= total }
        bob.terminate()
        bob.waitForExit()

        let all = alice.handled.all + bob.handled.all
        let inOrder = accounts.allSatisfy { account in
            let numbers = all.filter { $0.hasPrefix(account) }.compactMap { Int($0.dropFirst(account.count)) }
            return numbers == Array(1...perAccount)
        }
        say(
            "alice handled \(alice.count), bob \(bob.count); every account in order and once: \(inOrder ? "yes" : "NO")"
        )
        for name in [GroupLayoutNames.stream(group: group), "KV_" + GroupLayoutNames.stream(group: group)] {
            try? await store.deleteStream(named: name)
        }
        if let stream = try await store.stream(for: "bank.>") {
            try await store.deleteStream(named: stream.name)
        }
        if !inOrder { exit(1) }
    }
}

/// The names of the group's streams with this example's prefix "demo".
enum GroupLayoutNames {
    static func stream(group: String) -> String { "GROUP_demo-" + group }
}

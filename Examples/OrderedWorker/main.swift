// OrderedWorker: handlers in parallel, in order per key.
//
//   swift run OrderedWorker
//
// Three accounts get five deposits each, published interleaved to ledger.deposit.<account>.
// The worker runs up to three handlers at once with `ordering = .perSubjectToken(2)`: the
// deposits of one account are handled one at a time in the order they were stored, different
// accounts in parallel. One deposit fails once: it is retried in place after 300 ms, and the
// later deposits of its account wait for it while the other accounts go on. Each line shows
// when a handler starts and ends; the example deletes its stream when it is done.

import ExampleSupport
import MessageStore
import Synchronization

struct Deposit: MessagePayload {
    var account: String
    var number: Int
    var amount: Int
}

struct LedgerUnavailable: Error, CustomStringConvertible {
    var description: String { "the ledger database timed out" }
}

/// Says when every deposit has been booked.
final class Bookings: Sendable {
    private let booked = Atomic<Int>(0)
    private let failedOnce = Mutex(false)
    let done: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    init() {
        (done, continuation) = AsyncStream.makeStream()
    }

    /// Whether this run of account B's second deposit fails (the first time only).
    func failsNow(_ deposit: Deposit) -> Bool {
        deposit.account == "B" && deposit.number == 2
            && failedOnce.withLock { failed in
                defer { failed = true }
                return !failed
            }
    }

    func bookedOne(of total: Int) {
        if booked.add(1, ordering: .relaxed).newValue == total { continuation.yield() }
    }
}

try await runExample("OrderedWorker") { store in
    try await store.ensureStream("ledger")
    let accounts = ["A", "B", "C"]
    let perAccount = 5
    let started = ContinuousClock.now
    let elapsed: @Sendable () -> String = {
        let milliseconds =
            (ContinuousClock.now - started).components.attoseconds / 1_000_000_000_000_000
            + (ContinuousClock.now - started).components.seconds * 1_000
        return "\(milliseconds) ms".padding(toLength: 8)
    }
    let bookings = Bookings()

    var configuration = Subscription.Configuration()
    configuration.maxConcurrentHandlers = 3
    configuration.ordering = .perSubjectToken(2)  // ledger.deposit.<account>: order per account
    configuration.retrySchedule = .fixed(.milliseconds(300))
    let worker = try store.subscription(
        to: "ledger.deposit.>",
        consumer: "ordered-worker",
        handlers: MessageHandlers().handling(Deposit.self) { message in
            let deposit = message.data
            let name = "\(deposit.account)\(deposit.number)"
            say(
                "  \(elapsed()) \(String(repeating: "          ", count: accounts.firstIndex(of: deposit.account) ?? 0))start \(name) (attempt \(message.attempt))"
            )
            try await Task.sleep(for: .milliseconds(Int.random(in: 50...150)))
            if bookings.failsNow(deposit) {
                say(
                    "  \(elapsed()) \(String(repeating: "          ", count: accounts.firstIndex(of: deposit.account) ?? 0))FAIL  \(name): \(LedgerUnavailable()); B3 and later wait"
                )
                throw LedgerUnavailable()
            }
            say(
                "  \(elapsed()) \(String(repeating: "          ", count: accounts.firstIndex(of: deposit.account) ?? 0))done  \(name)"
            )
            bookings.bookedOne(of: accounts.count * perAccount)
        },
        configuration: configuration
    )

    var deposits: [OutgoingMessage] = []
    for number in 1...perAccount {
        for account in accounts {
            deposits.append(
                OutgoingMessage(
                    Deposit(account: account, number: number, amount: 10 * number),
                    to: "ledger.deposit.\(account)"
                )
            )
        }
    }
    for result in await store.publish(contentsOf: deposits) { _ = try result.get() }
    say("Published \(deposits.count) deposits, interleaved: A1 B1 C1 A2 B2 C2 …")
    say("  time     account A           account B           account C")
    try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await worker.run() }
        for await _ in bookings.done { break }
        worker.stop()
        try await tasks.waitForAll()
    }
    say("Every deposit booked, each account's in order; B2's retry held back only B.")
    if let stream = try await store.stream(for: "ledger.>") {
        try await store.deleteStream(named: stream.name)
    }
}

extension String {
    fileprivate func padding(toLength length: Int) -> String {
        count >= length ? self : self + String(repeating: " ", count: length - count)
    }
}

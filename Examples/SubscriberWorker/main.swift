// SubscriberWorker: a durable worker with a handler per message type, run under
// ServiceLifecycle. Ctrl-C (SIGINT) or SIGTERM lets the message in hand finish and be
// acknowledged, then the process exits 0.
//
//   swift run SubscriberWorker               (runs until interrupted)
//   swift run SubscriberWorker --exit-after 6  (stops gracefully after six messages; the demo uses it)
//
// Workers started with the same consumer name ("order-worker") share the messages; run two to
// see them split the work. The consumer remembers its position: a worker started later carries
// on where the last one stopped.

import ExampleSupport
import Logging
import MessageStore
import ServiceLifecycle
import Synchronization
import UnixSignals

let exitAfter = CommandLine.arguments.firstIndex(of: "--exit-after").flatMap {
    CommandLine.arguments.dropFirst($0 + 1).first.flatMap(Int.init)
}

/// Counts handled messages and says when `target` is reached.
final class Tally: Sendable {
    private let handled = Atomic<Int>(0)
    private let target: Int?
    let reached: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    init(target: Int?) {
        self.target = target
        (reached, continuation) = AsyncStream.makeStream()
    }

    func countOne() {
        if handled.add(1, ordering: .relaxed).newValue == target { continuation.yield() }
    }
}

try await runExample("SubscriberWorker") { store in
    let tally = Tally(target: exitAfter)
    let handlers = MessageHandlers()
        .handling(PlaceOrder.self) { message in
            say(
                "  [attempt \(message.attempt)] #\(message.sequence) \(message.subject): place \(message.data.quantity) x \(message.data.item)"
            )
            try await Task.sleep(for: .milliseconds(100))  // pretend to work
            tally.countOne()
        }
        .handling(CancelOrder.self) { message in
            say(
                "  [attempt \(message.attempt)] #\(message.sequence) \(message.subject): cancel (\(message.data.reason))"
            )
            tally.countOne()
        }
    let worker = try store.subscription(to: "orders.command.>", consumer: "order-worker", handlers: handlers)

    var logger = Logger(label: "worker")
    logger.logLevel = .warning
    let group = ServiceGroup(
        configuration: .init(
            services: [.init(service: worker)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        )
    )
    say("Worker \"order-worker\" waiting for orders.command.> (Ctrl-C to stop)")
    try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        if exitAfter != nil {
            tasks.addTask {
                for await _ in tally.reached { break }
                say("Handled \(exitAfter ?? 0) messages; shutting down gracefully")
                await group.triggerGracefulShutdown()
            }
        }
        try await tasks.next()
        tasks.cancelAll()
    }
    say("Worker stopped: every handled message was acknowledged")
}

// RetryAndTermination: what happens to a message whose handler keeps failing.
//
//   swift run RetryAndTermination
//
// The handler fails every time. The worker retries after a delay (0.5 s, then 1 s), marks the
// third attempt as the last, then gives up: it terminates the message (the server will not
// deliver it again) and copies it to the dead-letter subject "dead-letters.<original subject>",
// with the reason in its headers.

import ExampleSupport
import MessageStore

struct PaymentDeclined: Error, CustomStringConvertible {
    var description: String { "the payment provider declined the card" }
}

try await runExample("RetryAndTermination") { store in
    try await store.ensureStream("payments")
    try await store.ensureStream("dead-letters")

    var configuration = Subscription.Configuration()
    configuration.maxAttempts = 3
    configuration.retrySchedule = .exponential(initial: .milliseconds(500))
    configuration.deadLetterSubject = "dead-letters"

    let started = ContinuousClock.now
    let elapsed: @Sendable () -> String = {
        let duration = ContinuousClock.now - started
        return "\(duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000) ms"
    }
    let schedule = configuration.retrySchedule

    let charging = MessageHandlers().handling(ChargeCard.self) { message in
        let last = message.isLastAttempt ? " (the last attempt)" : ""
        say(
            "  attempt \(message.attempt) of \(message.maxAttempts)\(last) at \(elapsed()): charging \(message.data.amount)..."
        )
        if !message.isLastAttempt {
            let delay = schedule.delay(afterAttempt: message.attempt)
            say("    failed: \(PaymentDeclined()); the next attempt comes in \(delay)")
        } else {
            say("    failed again: no attempts left, so the message is terminated and dead-lettered")
        }
        throw PaymentDeclined()
    }
    let worker = try store.subscription(
        to: "payments.>",
        consumer: "payment-worker",
        handlers: charging,
        configuration: configuration
    )

    let orderId = "order-" + String(UInt32.random(in: 0x1000...0xFFFF), radix: 16)
    // Dead letters stored from now on are this run's.
    let deadLettersBefore = try await store.stream(for: "dead-letters.>")?.lastSequence ?? 0
    let ack = try await store.publish(ChargeCard(orderId: orderId, amount: 42), to: "payments.charge.\(orderId)")
    say("Published ChargeCard \(orderId) at sequence \(ack.sequence); the worker will try three times")
    try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await worker.run() }
        let letter = try await store.waitFor(
            "dead-letters.payments.charge.\(orderId)",
            after: deadLettersBefore,
            timeout: .seconds(30)
        )
        say("  dead letter arrived on \(letter.subject) at \(elapsed()):")
        for name in [
            DeadLetterHeader.cause, DeadLetterHeader.reason, DeadLetterHeader.attempts,
            DeadLetterHeader.originalSubject,
        ] {
            say("    \(name): \(letter.headers[name] ?? "-")")
        }
        worker.stop()
        try await tasks.waitForAll()
    }
    say("The stream kept flowing: the poison message no longer blocks the payments worker")
}

// PublishCommands: an async service that publishes typed commands to a subject hierarchy.
//
//   swift run PublishCommands            (NATS_URL, or nats://127.0.0.1:4222)
//   swift run PublishCommands 10         (how many orders; default 5)
//
// Each command goes to orders.command.<id> with a message id, so publishing it again (a retry
// after a timeout, say) does not store it twice. The store creates stream "demo-orders" for
// every subject under orders.> when it is missing.

import ExampleSupport
import MessageStore

let count = CommandLine.arguments.dropFirst().first.flatMap(Int.init) ?? 5
// Ids unique to this run, so running the example again stores new orders.
let run = String(UInt32.random(in: 0x1000...0xFFFF), radix: 16)

try await runExample("PublishCommands") { store in
    try await store.ensureStream("orders")
    say("Publishing \(count) PlaceOrder commands to orders.command.<id>")
    for index in 1...count {
        let orderId = "\(run)-\(index)"
        let command = PlaceOrder(orderId: orderId, item: ["coffee", "tea", "cake"][index % 3], quantity: index)
        let ack = try await store.publish(command, to: "orders.command.\(orderId)", id: "place-\(orderId)")
        say("  stored PlaceOrder \(orderId) in stream \(ack.stream) at sequence \(ack.sequence)")
    }
    let first = "\(run)-1"
    let cancel = CancelOrder(orderId: first, reason: "changed my mind")
    let ack = try await store.publish(cancel, to: "orders.command.\(first)", id: "cancel-\(first)")
    say("  stored CancelOrder \(first) at sequence \(ack.sequence)")

    // The same message id again: JetStream recognises it and does not store a second copy.
    let again = try await store.publish(cancel, to: "orders.command.\(first)", id: "cancel-\(first)")
    say(
        "  published CancelOrder \(first) again with the same id: duplicate=\(again.isDuplicate), still sequence \(again.sequence)"
    )
}

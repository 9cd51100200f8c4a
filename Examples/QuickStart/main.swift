// QuickStart: publishes typed messages to a subject hierarchy and reads one back.
//
// Run it with `scripts/demo.sh` (starts a throwaway server), or against your own server with
// `NATS_URL=nats://host:4222 swift run QuickStart`.

import Logging
import MessageStore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// README quick start begins
struct OrderPlaced: MessagePayload {
    var orderId: String
    var amount: Int
}

func quickStart() async throws {
    // NATS_URL, or nats://127.0.0.1:4222
    let connection = try await NATSConnection.connect()
    let store = try MessageStore(connection: connection, prefix: "dev", createMissingStreams: true)

    // Stream "dev-orders" stores every subject under orders.>
    try await store.ensureStream("orders")

    // One publish, awaited: the message id makes a retry safe (stored once).
    let ack = try await store.publish(OrderPlaced(orderId: "42", amount: 3), to: "orders.event.42", id: "order-42")
    print("stored in \(ack.stream) at sequence \(ack.sequence)")

    // Many publishes, acknowledgements in flight together.
    let batch = (1...1_000).map {
        OutgoingMessage(OrderPlaced(orderId: "\($0)", amount: $0), to: "orders.imported.\($0)")
    }
    let results = await store.publish(contentsOf: batch)
    print("\(results.filter { (try? $0.get()) != nil }.count) of \(batch.count) stored")

    // Read the last message of a subject back, typed.
    if let last = try await store.lastMessage(on: "orders.event.42") {
        let order = try last.decode(as: OrderPlaced.self)
        print("last on \(last.subject): \(last.type) #\(last.sequence), order \(order.orderId)")
    }
    await connection.close()
}
// README quick start ends

LoggingSystem.bootstrap { label in
    var handler = StreamLogHandler.standardError(label: label)
    handler.logLevel = .warning
    return handler
}

do {
    try await quickStart()
    NATSConnection.releaseClientLibrary()
} catch let error as MessageStoreError {
    print("QuickStart failed: \(error)")
    if error.code == .connectionFailed {
        print("Is a NATS server with JetStream running? Start one with `nats-server -js`, or run scripts/demo.sh.")
    }
    exit(1)
}

// Shared by the examples: the message types they exchange and a small runner that connects,
// prints errors in plain words and closes the connection.

import Logging
public import MessageStore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Asks for an order.
public struct PlaceOrder: MessagePayload {
    public var orderId: String
    public var item: String
    public var quantity: Int

    public init(orderId: String, item: String, quantity: Int) {
        self.orderId = orderId
        self.item = item
        self.quantity = quantity
    }
}

/// Asks for an order to be cancelled.
public struct CancelOrder: MessagePayload {
    public var orderId: String
    public var reason: String

    public init(orderId: String, reason: String) {
        self.orderId = orderId
        self.reason = reason
    }
}

/// Asks for a card to be charged.
public struct ChargeCard: MessagePayload {
    public var orderId: String
    public var amount: Int

    public init(orderId: String, amount: Int) {
        self.orderId = orderId
        self.amount = amount
    }
}

/// Prints a line at once, even when the output is piped.
public func say(_ line: String) {
    print(line)
    fflush(nil)  // flushes every output stream; the examples only write stdout
}

/// Connects to `NATS_URL` (or the local default) with the environment prefix "demo", runs
/// `body`, and explains a failure in plain words.
public func runExample(_ name: String, _ body: (MessageStore) async throws -> Void) async throws {
    // The library's own log lines (retries, terminations) are hidden to keep the story short;
    // LOG_LEVEL=warning (or info, debug) shows them.
    let level = getenv("LOG_LEVEL").flatMap { Logger.Level(rawValue: String(cString: $0)) } ?? .error
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
    let connection: NATSConnection
    do {
        connection = try await NATSConnection.connect()
    } catch {
        // The library's error names the servers with any password in the URL as ***.
        say("\(name): cannot reach a NATS server: \(error.message)")
        say("Start one with `nats-server --jetstream` (or run scripts/demo.sh), or set NATS_URL.")
        exit(1)
    }
    say("\(name): connected to \(connection.connectedURL ?? "NATS")")
    do {
        let store = try MessageStore(connection: connection, prefix: "demo", createMissingStreams: true)
        try await body(store)
        await connection.close()
    } catch {
        say("\(name) failed: \(error)")
        await connection.close()
        exit(1)
    }
}

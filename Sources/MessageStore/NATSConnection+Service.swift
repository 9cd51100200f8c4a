public import ServiceLifecycle

/// A connection is a ServiceLifecycle `Service` too: ``run()`` holds it open and closes it on
/// graceful shutdown, so a service no longer closes it by hand.
///
/// A `ServiceGroup` shuts its services down in the reverse of their order, each after the one
/// after it has returned: list the connection **before** the subscriptions that use it, and
/// they finish the messages in hand and stop before it closes.
///
/// ```swift
/// let connection = try await NATSConnection.connect()
/// let store = try MessageStore(connection: connection, prefix: "prod")
/// let worker = try store.subscription(to: "orders.>", consumer: "order-worker", handlers: handlers)
/// let services = ServiceGroup(
///     services: [connection, worker],  // the worker stops first, then the connection closes
///     gracefulShutdownSignals: [.sigterm, .sigint],
///     logger: logger
/// )
/// try await services.run()
/// ```
extension NATSConnection: Service {
    /// Waits for graceful shutdown (or cancellation), then closes the connection.
    public func run() async throws {
        try? await gracefulShutdown()
        await close()
    }
}

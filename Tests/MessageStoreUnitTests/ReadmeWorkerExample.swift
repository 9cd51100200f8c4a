import Logging
import MessageStore
import MessageStoreTestSupport
import ServiceLifecycle
import UnixSignals

// The README's worker example, compiled. ReadmeTests keeps the README identical to it.

private func ship(_ orderId: String) async throws {}
private func refund(_ orderId: String) throws {}
private func alertSomeone(_ subject: String) {}

enum ReadmeWorkerExample {
    static func run(store: MessageStore, logger: Logger) async throws {
        // README worker begins
        let worker = try store.subscription(
            to: "orders.>",
            consumer: "order-worker",  // workers with the same name share the messages
            handlers: MessageHandlers()
                .handling(OrderPlaced.self) { message in
                    try await ship(message.data.orderId)  // throw to retry later
                }
                .handling(OrderCancelled.self) { message in
                    if message.isLastAttempt { alertSomeone(message.subject) }
                    try refund(message.data.orderId)
                },
            configuration: {
                var configuration = Subscription.Configuration()
                configuration.deadLetterSubject = "dead-letters"  // terminated messages are copied here
                return configuration
            }()
        )
        let services = ServiceGroup(
            services: [worker],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        )
        try await services.run()
        // README worker ends
    }
}

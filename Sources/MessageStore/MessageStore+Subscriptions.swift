// Workers: durable subscriptions that dispatch each message to the handler of its type.

extension MessageStore {
    /// Creates a durable worker on `filter` that dispatches each message to the handler of its type.
    ///
    /// Nothing happens on the server until the subscription runs.
    /// - Parameters:
    ///   - filter: An application subject filter, such as `orders.>` or `orders.command.*`.
    ///   - consumer: The durable consumer's name: workers with the same name share the messages.
    ///   - handlers: One handler per message type.
    ///   - configuration: Retries, dead-lettering, batching and concurrency. Defaults to
    ///     ``Subscription/Configuration/init()``.
    /// - Throws: ``MessageStoreError/Code/invalidSubject`` for a bad filter, consumer name or
    ///   dead-letter subject; ``MessageStoreError/Code/invalidConfiguration`` for impossible options.
    public func subscription(
        to filter: String,
        consumer: String,
        handlers: MessageHandlers,
        configuration: Subscription.Configuration = Subscription.Configuration()
    ) throws(MessageStoreError) -> Subscription {
        try Subscription(
            store: self,
            filter: filter,
            consumer: consumer,
            handlers: handlers,
            configuration: configuration
        )
    }
}

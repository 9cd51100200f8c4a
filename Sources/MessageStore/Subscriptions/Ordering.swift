extension Subscription {
    /// Which messages a worker handles one at a time, in stream order.
    ///
    /// - ``unordered`` (the default): up to ``Configuration/maxConcurrentHandlers`` handlers run
    ///   at once over each fetched batch, in no particular order (with one handler, the stream's
    ///   order); a failed message is given back to the server to be delivered again after its
    ///   retry delay, and later messages go on meanwhile.
    /// - ``perSubject``, ``perSubjectToken(_:)``, ``perKey(_:)``: messages of one key are handled
    ///   one at a time in stream order, different keys in parallel up to
    ///   ``Configuration/maxConcurrentHandlers``. A slow message holds back only its own key,
    ///   never a batch. A failed message is retried in place: the worker keeps it (the server
    ///   hears it is still being worked on), waits its retry delay and runs it again, and the
    ///   later messages of its key wait for it meanwhile; when it is given up (dead-lettered),
    ///   they go on.
    ///
    /// The order holds within one worker. Workers sharing a consumer share its messages with no
    /// order between them: to scale out with order per key, give each worker its own filter.
    public struct Ordering: Sendable {
        /// The key of a message's application subject; nil: unordered.
        let key: (@Sendable (String) -> String)?

        /// Handlers run as messages come, a fetched batch at a time. The default.
        public static let unordered = Ordering(key: nil)

        /// One message at a time per subject, in stream order: for subjects that name an entity,
        /// such as `orders.event.42`, order per entity.
        public static let perSubject = Ordering(key: { $0 })

        /// One message at a time per value of the subject's token at `index` (0 is the
        /// category): `perSubjectToken(2)` keeps `orders.event.42` and `orders.command.42` in one
        /// order. A subject with fewer tokens is its own key.
        public static func perSubjectToken(_ index: Int) -> Ordering {
            Ordering { subject in
                let tokens = subject.split(separator: ".", omittingEmptySubsequences: false)
                return index >= 0 && index < tokens.count ? String(tokens[index]) : subject
            }
        }

        /// One message at a time per key that `key` computes from the application subject.
        public static func perKey(_ key: @escaping @Sendable (_ subject: String) -> String) -> Ordering {
            Ordering(key: key)
        }
    }
}

extension NATSConnection.Configuration {
    /// The longest timeout or pause the connection accepts: a day. The C client adds timeouts to
    /// the clock in milliseconds, where `Int64.max` seconds would overflow.
    static let longestWait = Duration.seconds(86_400)

    /// Checks the timeouts and pauses before anything is handed to the C client.
    /// - Throws: ``MessageStoreError/Code/invalidConfiguration`` naming the value that is out of range.
    func validate() throws(MessageStoreError) {
        func check(_ value: Duration, _ name: String, allowZero: Bool = false) throws(MessageStoreError) {
            let lowest: Duration = allowZero ? .zero : .milliseconds(1)
            guard value >= lowest, value <= Self.longestWait else {
                throw MessageStoreError(
                    code: .invalidConfiguration,
                    message: "\(name) must be between \(lowest) and \(Self.longestWait), not \(value)"
                )
            }
        }
        try check(connectTimeout, "connectTimeout")
        try check(requestTimeout, "requestTimeout")
        try check(reconnect.wait, "reconnect.wait", allowZero: true)
    }
}

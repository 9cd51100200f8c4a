/// How an environment prefix turns application subjects and categories into NATS names.
///
/// With prefix `env`: subject `orders.command.42` is sent as `env.orders.command.42`, and the
/// category `orders` is stored in stream `env-orders` covering `env.orders.>`.
struct Naming: Sendable, Hashable {
    /// The prefix without a trailing ".".
    let prefix: String
    /// `prefix + "."`, or empty.
    let subjectPrefix: String
    /// `prefix + "-"`, or empty.
    let streamPrefix: String

    init(prefix rawPrefix: String) throws(MessageStoreError) {
        let prefix = rawPrefix.hasSuffix(".") ? String(rawPrefix.dropLast()) : rawPrefix
        try SubjectRules.validatePrefix(prefix)
        self.prefix = prefix
        subjectPrefix = prefix.isEmpty ? "" : prefix + "."
        streamPrefix = prefix.isEmpty ? "" : prefix + "-"
    }

    /// The NATS subject for an application subject to publish to (validated).
    func publishSubject(_ subject: String) throws(MessageStoreError) -> String {
        try SubjectRules.validate(subject, as: .publish)
        let natsSubject = subjectPrefix + subject
        try SubjectRules.validateLength(natsSubject, subject: subject)
        return natsSubject
    }

    /// The NATS filter for an application filter (validated).
    func filterSubject(_ filter: String) throws(MessageStoreError) -> String {
        try SubjectRules.validate(filter, as: .filter)
        return subjectPrefix + filter
    }

    /// The application subject for a NATS subject, or the subject unchanged when it lacks the prefix.
    func applicationSubject(_ natsSubject: String) -> String {
        Self.cutting(subjectPrefix, from: natsSubject)
    }

    /// `natsSubject` without `prefix`, or unchanged when it does not start with it.
    static func cutting(_ prefix: String, from natsSubject: String) -> String {
        // Compared and cut as UTF-8 bytes, which is what NATS compares: `dropFirst` would count
        // characters, and a prefix such as "ü" has more bytes than characters.
        guard !prefix.isEmpty, natsSubject.utf8.starts(with: prefix.utf8) else { return natsSubject }
        return String(Substring(natsSubject.utf8.dropFirst(prefix.utf8.count)))
    }

    /// The name of the stream the store creates for `category`.
    func streamName(category: String) -> String {
        streamPrefix + category
    }

    /// The NATS filter a category's stream covers.
    func categoryFilter(_ category: String) -> String {
        subjectPrefix + category + ".>"
    }

    /// The category of an application subject: its first token.
    static func category(of subject: String) -> String {
        String(subject.prefix { $0 != "." })
    }
}

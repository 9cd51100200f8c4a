/// The one error type the message store throws.
///
/// Switch on ``code`` to react to a kind of failure; read ``message`` (or the error's
/// `description`) for words a person can act on. The failing subject, stream or consumer, the
/// NATS client status and the JetStream error code are attached when known.
///
/// ```swift
/// do {
///     try await store.publish(event, to: "account.42", expectedLastSubjectSequence: version)
/// } catch {
///     guard error.code == .wrongExpectedSequence else { throw error }
///     // someone else wrote to account.42 first: reload and try again
/// }
/// ```
public struct MessageStoreError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure happened. New codes may be added without breaking callers.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case connectionFailed
            case authenticationFailed
            case tlsFailed
            case permissionDenied
            case connectionClosed
            case streamNotFound
            case invalidSubject
            case invalidConfiguration
            case wrongExpectedSequence
            case publishTimedOut
            case timedOut
            case messageTooLarge
            case noResponders
            case serverError
            case encodingFailed
            case decodingFailed
            case clientError
            case waitTimedOut
            case streamUnavailable
            case invalidHeader
            case invalidMessageID
            case cancelled
            case unsupportedServer
        }

        private let base: Base

        private init(_ base: Base) {
            self.base = base
        }

        /// The server could not be reached, or refused the connection (address, credentials).
        public static let connectionFailed = Code(.connectionFailed)
        /// The server refused the credentials: a wrong password, token or NKey seed, or a user
        /// JWT that is expired, revoked or not signed by an account the server trusts.
        public static let authenticationFailed = Code(.authenticationFailed)
        /// TLS could not be set up: the server's certificate did not verify (the message says
        /// why), the server refused the client certificate, or one side wants TLS and the other
        /// does not offer it.
        public static let tlsFailed = Code(.tlsFailed)
        /// The server's permissions for this user do not allow publishing or subscribing to
        /// the subject; ``MessageStoreError/subject`` or the message names it.
        public static let permissionDenied = Code(.permissionDenied)
        /// The connection was closed before or while the operation ran.
        public static let connectionClosed = Code(.connectionClosed)
        /// No stream covers the subject, and the store may not create one.
        public static let streamNotFound = Code(.streamNotFound)
        /// A subject, category or prefix breaks the naming rules; nothing was sent.
        public static let invalidSubject = Code(.invalidSubject)
        /// An option has a value the store or the server cannot use.
        public static let invalidConfiguration = Code(.invalidConfiguration)
        /// Optimistic concurrency: the subject's last sequence was not the expected one.
        public static let wrongExpectedSequence = Code(.wrongExpectedSequence)
        /// The server did not acknowledge a publish in time; the message may or may not be stored.
        public static let publishTimedOut = Code(.publishTimedOut)
        /// A request other than a publish did not complete in time.
        public static let timedOut = Code(.timedOut)
        /// The message is larger than the stream or the server accepts.
        public static let messageTooLarge = Code(.messageTooLarge)
        /// Nobody answered: no stream covers the subject, or JetStream is not enabled.
        public static let noResponders = Code(.noResponders)
        /// A stream covers the subject but did not answer for as long as the store retried
        /// (``MessageStore/Configuration/publishRetry``): it is electing a leader, or too few of
        /// its servers are up. Trying again later may succeed.
        public static let streamUnavailable = Code(.streamUnavailable)
        /// The task was cancelled before the operation finished.
        public static let cancelled = Code(.cancelled)
        /// The server is too old for what was asked, such as a partitioned group (NATS 2.10 or
        /// later); the message says which version is needed.
        public static let unsupportedServer = Code(.unsupportedServer)
        /// JetStream refused the request; see ``MessageStoreError/jetStreamErrorCode``.
        public static let serverError = Code(.serverError)
        /// A payload could not be encoded as JSON.
        public static let encodingFailed = Code(.encodingFailed)
        /// A stored message is not a valid envelope, or its data does not decode to the type.
        public static let decodingFailed = Code(.decodingFailed)
        /// ``MessageStore/waitFor(_:after:timeout:where:)`` saw no matching message in time.
        public static let waitTimedOut = Code(.waitTimedOut)
        /// The NATS client library reported a failure not covered by another code.
        public static let clientError = Code(.clientError)
        /// A header name or value would not travel as given (a name with a control character,
        /// a space or `:`; a value with CR, LF or NUL); nothing was sent.
        public static let invalidHeader = Code(.invalidHeader)
        /// A de-duplication id would not travel as given (empty, or with CR, LF or NUL); nothing
        /// was sent.
        public static let invalidMessageID = Code(.invalidMessageID)

        /// The code's name, such as `streamNotFound`.
        public var description: String { base.rawValue }
    }

    /// A status reported by the NATS C client.
    public struct ClientStatus: Hashable, Sendable, CustomStringConvertible {
        /// The numeric `natsStatus` value.
        public var code: Int
        /// cnats' name for the status, such as `Timeout` or `No Responders Available for Request`.
        public var text: String

        /// Creates a client status.
        public init(code: Int, text: String) {
            self.code = code
            self.text = text
        }

        /// The status text followed by its number.
        public var description: String { "\(text) (\(code))" }
    }

    /// What kind of failure this is.
    public var code: Code
    /// A sentence that says what went wrong and, where possible, what to do.
    public var message: String
    /// The application subject involved, without the environment prefix.
    public var subject: String?
    /// The stream involved.
    public var stream: String?
    /// The consumer involved.
    public var consumer: String?
    /// The NATS client status behind the failure, if any.
    public var clientStatus: ClientStatus?
    /// The JetStream API error code (for example 10071 for a wrong last sequence), if any.
    public var jetStreamErrorCode: Int?
    /// A lower-level error that caused this one, such as a `DecodingError`.
    public var underlying: (any Error & Sendable)?

    /// Creates an error.
    public init(
        code: Code,
        message: String,
        subject: String? = nil,
        stream: String? = nil,
        consumer: String? = nil,
        clientStatus: ClientStatus? = nil,
        jetStreamErrorCode: Int? = nil,
        underlying: (any Error & Sendable)? = nil
    ) {
        self.code = code
        self.message = message
        self.subject = subject
        self.stream = stream
        self.consumer = consumer
        self.clientStatus = clientStatus
        self.jetStreamErrorCode = jetStreamErrorCode
        self.underlying = underlying
    }

    /// Whether trying the same operation again later may succeed.
    public var isRetriable: Bool {
        switch code {
        case .noResponders, .streamUnavailable, .publishTimedOut, .timedOut, .connectionFailed:
            return true
        case .serverError:
            // 503-style JetStream unavailability; everything else is a definite refusal.
            return jetStreamErrorCode == nil
        default:
            return false
        }
    }

    /// The code, the message and every known piece of context, on one line.
    public var description: String {
        var parts = ["MessageStoreError.\(code): \(message)"]
        var context: [String] = []
        if let subject { context.append("subject: \(subject)") }
        if let stream { context.append("stream: \(stream)") }
        if let consumer { context.append("consumer: \(consumer)") }
        if let jetStreamErrorCode { context.append("JetStream error \(jetStreamErrorCode)") }
        if let clientStatus { context.append("client status: \(clientStatus)") }
        if let underlying { context.append("underlying: \(underlying)") }
        if !context.isEmpty {
            parts.append("(" + context.joined(separator: ", ") + ")")
        }
        return parts.joined(separator: " ")
    }
}

extension MessageStoreError {
    static func invalidSubject(_ subject: String, _ reason: String) -> MessageStoreError {
        MessageStoreError(
            code: .invalidSubject,
            message: "invalid subject \"\(subject)\": \(reason)",
            subject: subject
        )
    }

    static func cancelled(_ operation: String, subject: String? = nil) -> MessageStoreError {
        MessageStoreError(
            code: .cancelled,
            message: "\(operation) was cancelled",
            subject: subject
        )
    }

    static func connectionClosed(subject: String? = nil) -> MessageStoreError {
        MessageStoreError(
            code: .connectionClosed,
            message: "the NATS connection is closed",
            subject: subject
        )
    }
}

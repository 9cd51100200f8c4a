import Synchronization

#if canImport(FoundationEssentials)
    public import FoundationEssentials
#else
    public import Foundation
#endif

/// A message delivered to a handler, with its typed data and where it came from.
public struct ReceivedMessage<Payload: MessagePayload>: Sendable {
    /// The typed data.
    public var data: Payload
    /// The envelope's `type`.
    public var type: String
    /// The application subject (environment prefix removed), such as `orders.command.42`.
    public var subject: String
    /// The message's sequence in its stream.
    public var sequence: UInt64
    /// When the server stored the message.
    public var timestamp: Date
    /// The envelope's metadata, if any.
    public var metadata: MessageMetadata?
    /// The message's headers.
    public var headers: MessageHeaders
    /// Which run of the handler this is: 1 the first time, 2 on the first retry, … Deliveries
    /// that never reached a handler (returned by a stopping worker, or queued in one that
    /// crashed) do not count.
    public var attempt: Int
    /// The most attempts the subscription allows.
    public var maxAttempts: Int
    /// Whether this is the last attempt: if the handler fails now, the message is terminated and
    /// dead-lettered instead of retried. True from attempt ``maxAttempts`` on, and on the server's
    /// last delivery (``Subscription/Configuration/maxDeliveries``) whatever the attempt.
    public var isLastAttempt: Bool
    /// The stream the message is stored in.
    public var stream: String
    /// The durable consumer delivering it.
    public var consumer: String
    let termination: TerminationRequest

    /// Asks for the message to be terminated (and dead-lettered) once the handler returns, even
    /// if it returns normally. Throwing ``MessageTermination`` does the same at once.
    public func terminate(reason: String) {
        termination.request(reason)
    }
}

/// Thrown by a handler to terminate its message at once: no retry, dead-lettered when a
/// dead-letter subject is configured.
///
/// ```swift
/// throw MessageTermination(reason: "order \(id) does not exist")
/// ```
public struct MessageTermination: Error, Sendable, CustomStringConvertible {
    /// Why the message is terminated; it goes into the dead-letter headers.
    public var reason: String

    /// Creates a termination request.
    public init(reason: String) {
        self.reason = reason
    }

    /// The reason.
    public var description: String { reason }
}

/// Carries a handler's request to terminate its message back to the dispatcher.
final class TerminationRequest: Sendable {
    private let reason = Mutex<String?>(nil)

    func request(_ text: String) {
        reason.withLock { $0 = text }
    }

    var requestedReason: String? {
        reason.withLock { $0 }
    }
}

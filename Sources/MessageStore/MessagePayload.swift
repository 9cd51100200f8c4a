/// A typed message: a `Codable` payload that names its message type once.
///
/// The type name is what goes into the envelope's `type` field and what handlers are chosen by.
/// It defaults to the Swift type's name; override ``messageType`` to share streams with a service
/// that uses another name.
///
/// ```swift
/// struct OrderPlaced: MessagePayload {
///     var orderId: String
/// }
///
/// struct LegacyEvent: MessagePayload {
///     static let messageType = "legacy.event.v1"
///     var value: Int
/// }
/// ```
public protocol MessagePayload: Codable, Sendable {
    /// The name written to the envelope's `type` field. Defaults to the Swift type's name.
    static var messageType: String { get }
}

extension MessagePayload {
    /// The Swift type's name, such as `OrderPlaced`.
    public static var messageType: String { String(describing: Self.self) }
}

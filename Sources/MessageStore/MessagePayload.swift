import Synchronization

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
    public static var messageType: String { TypeNameCache.name(of: Self.self) }
}

/// `String(describing:)` of a type demangles its name on every call; publishing asks once per
/// message, so the names are remembered.
enum TypeNameCache {
    private static let names = Mutex<[ObjectIdentifier: String]>([:])

    static func name(of type: any Any.Type) -> String {
        let key = ObjectIdentifier(type)
        if let name = names.withLock({ $0[key] }) { return name }
        // What String(describing:) prints for a type, without first asking whether the metatype
        // conforms to the protocols that customize printing: each such question scans every
        // conformance record of the process the first time, which a new worker pays per type.
        let name = _typeName(type, qualified: false)
        names.withLock { $0[key] = name }
        return name
    }
}

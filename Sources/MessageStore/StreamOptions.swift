#if canImport(FoundationEssentials)
    public import FoundationEssentials
#else
    public import Foundation
#endif

/// Limits for a stream the store creates. They apply only when the stream is created; an
/// existing stream keeps its own settings.
public struct StreamOptions: Sendable, Hashable {
    /// Where the stream keeps its messages.
    public struct Storage: Sendable, Hashable, CustomStringConvertible {
        let rawValue: String

        /// On disk: survives server restarts.
        public static let file = Storage(rawValue: "file")
        /// In memory: faster, lost when the server stops.
        public static let memory = Storage(rawValue: "memory")

        /// `file` or `memory`.
        public var description: String { rawValue }
    }

    /// The most bytes the stream holds; the oldest messages go first. Defaults to 1 GiB.
    public var maxBytes: Int64 = 1 << 30
    /// The largest single message the stream accepts. Defaults to 4 MiB.
    public var maxMessageSize: Int32 = 4 << 20
    /// Defaults to ``Storage/file``.
    public var storage: Storage = .file
    /// How many servers keep a copy (1 to 5; more than 1 needs a cluster). Defaults to 1.
    public var replicas: Int = 1
    /// How long messages are kept, or nil for no age limit. Defaults to nil.
    public var maxAge: Duration?
    /// How long message ids are remembered for de-duplication. Defaults to 2 minutes.
    public var duplicateWindow: Duration = .seconds(120)

    /// Creates the default options.
    public init() {}

    /// Creates options, with the defaults for anything not given.
    public init(
        maxBytes: Int64 = 1 << 30,
        maxMessageSize: Int32 = 4 << 20,
        storage: Storage = .file,
        replicas: Int = 1,
        maxAge: Duration? = nil,
        duplicateWindow: Duration = .seconds(120)
    ) {
        self.maxBytes = maxBytes
        self.maxMessageSize = maxMessageSize
        self.storage = storage
        self.replicas = replicas
        self.maxAge = maxAge
        self.duplicateWindow = duplicateWindow
    }
}

/// A stream as the server describes it.
public struct StreamDescription: Sendable, Hashable {
    /// The stream's name.
    public var name: String
    /// The subjects it stores (with the environment prefix, as the server knows them).
    public var subjects: [String]
    /// How many messages it holds.
    public var messages: UInt64
    /// How many bytes it holds.
    public var bytes: UInt64
    /// The sequence of its first stored message.
    public var firstSequence: UInt64
    /// The sequence of its last stored message (0 when empty).
    public var lastSequence: UInt64
    /// How many consumers it has.
    public var consumerCount: Int
    /// When its first stored message was stored; nil when it is empty.
    public var firstTimestamp: Date?
    /// When its last stored message was stored; nil when it is empty.
    public var lastTimestamp: Date?
    /// How many distinct subjects hold messages, when the server says.
    public var subjectCount: Int?
    /// The name of the server that leads the stream, when the server says (a cluster always
    /// does); nil while a new leader is being elected.
    public var leader: String?
}

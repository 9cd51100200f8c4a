import CNATS
import Synchronization

/// Destroys the C messages of finished publishes a batch at a time.
///
/// cnats frees every message it allocated on its garbage-collector thread, and
/// `natsMsg_Destroy` wakes that thread whenever it sleeps. Destroying the message of each
/// awaited publish as its acknowledgement arrives therefore costs a wake-up and two context
/// switches per publish, which on a small machine is a tenth of the round trip. Held here
/// until `maxCount` messages or `maxBytes` of data are waiting, they cost one wake-up a batch.
/// Whatever is still held goes with ``flush()`` or when this object goes away.
final class MessageDisposal: Sendable {
    private struct Held {
        var messages: [UInt] = []
        var bytes = 0
    }

    private let held = Mutex(Held())
    private let maxCount: Int
    private let maxBytes: Int

    static let defaultMaxCount = 32
    static let defaultMaxBytes = 256 * 1024

    init(maxCount: Int = defaultMaxCount, maxBytes: Int = defaultMaxBytes) {
        self.maxCount = maxCount
        self.maxBytes = maxBytes
    }

    deinit {
        flush()
    }

    /// How many messages are held now.
    var heldCount: Int {
        held.withLock { $0.messages.count }
    }

    /// Takes ownership of `message`: it is destroyed with the batch it completes.
    func dispose(_ message: OpaquePointer) {
        let size = Int(natsMsg_GetDataLength(message))
        let full = held.withLock { held -> [UInt]? in
            held.messages.append(UInt(bitPattern: message))
            held.bytes += size
            guard held.messages.count >= maxCount || held.bytes >= maxBytes else { return nil }
            defer { held = Held() }
            return held.messages
        }
        if let full { Self.destroy(full) }
    }

    /// Destroys every message held now.
    func flush() {
        let all = held.withLock { held in
            defer { held = Held() }
            return held.messages
        }
        Self.destroy(all)
    }

    private static func destroy(_ messages: [UInt]) {
        for address in messages {
            natsMsg_Destroy(OpaquePointer(bitPattern: address))
        }
    }
}

import Synchronization

/// Where a worker records how many times a message's handler ran, so that attempts count runs,
/// not deliveries (``DeliveryPolicy`` says when it is read and written).
///
/// It is a JetStream key-value bucket, `message-store-attempts` (with `-<prefix>` for a store
/// with a prefix), one key per message that was redelivered or failed:
/// `<stream>.<consumer>.<consumer's creation time>.<stream sequence>`, whose value is the count in
/// decimal. The creation time keeps a consumer deleted and created again (or a stream created
/// again, whose sequences start over) from reading an old count. Keys expire after a week; a
/// first delivery that succeeds, the common case, never touches the bucket.
///
/// A worker remembers the counts it wrote itself (``RecentRuns``): when the message comes back to
/// it on the very next delivery, no other worker can have run it since, and the count it wrote
/// is the one in the bucket, so the read is skipped. A retried message then costs one write per
/// attempt instead of a read and a write, and no wait for it on the way: the count is written
/// to the socket before the handler starts (or before the negative acknowledgement, on the same
/// connection, so the server has it first), and its acknowledgement is only watched: a count the
/// server does not store is logged and forgotten, and the next delivery reads the older one (one
/// more attempt, never one fewer). See ``PendingRecord``.
struct AttemptLedger: Sendable {
    let store: MessageStore
    /// The bucket's stream, `KV_<bucket>`.
    let ledgerStream: String
    /// `$KV.<bucket>.<stream>.<consumer>.<created>.`
    let keyPrefix: String
    /// The counts this ledger wrote, by sequence, with the delivery they were written in.
    let recent = RecentRuns()

    /// How long a count is kept.
    static let retention: Duration = .seconds(7 * 24 * 3_600)

    static func bucketName(prefix: String) -> String {
        prefix.isEmpty ? "message-store-attempts" : "message-store-attempts-" + escapeBucketName(prefix)
    }

    /// Makes sure the bucket exists (with `replicas`, the consumed stream's replicas, when it has
    /// to create it) and returns the ledger of one consumer.
    static func prepare(
        store: MessageStore,
        stream: String,
        consumer: String,
        consumerCreated: String?,
        replicas: Int
    ) async throws(MessageStoreError) -> AttemptLedger {
        let bucket = bucketName(prefix: store.naming.prefix)
        let ledgerStream = "KV_" + bucket
        try await store.jetStream.ensureKeyValueBucket(bucket, maxAge: retention, replicas: replicas)
        let created = escapeKeyToken(consumerCreated ?? "unknown")
        return AttemptLedger(
            store: store,
            ledgerStream: ledgerStream,
            keyPrefix: "$KV.\(bucket).\(escapeKeyToken(stream)).\(escapeKeyToken(consumer)).\(created)."
        )
    }

    /// The runs recorded for the message at `sequence`, delivered for the `deliveryCount`th
    /// time: 0 when none.
    func recordedRuns(sequence: UInt64, deliveryCount: Int) async throws(MessageStoreError) -> Int {
        if let runs = recent.runs(sequence: sequence, deliveredAgainAs: deliveryCount) {
            return runs
        }
        let subject = keyPrefix + String(sequence)
        guard
            let entry = try await store.jetStream.lastMessage(
                stream: ledgerStream,
                natsSubject: subject,
                subject: subject
            )
        else { return 0 }
        return Int(String(decoding: entry.body, as: UTF8.self)) ?? 0
    }

    /// Records that the message at `sequence`, in its `deliveryCount`th delivery, has run `runs`
    /// times, and waits until the bucket has it.
    func record(runs: Int, sequence: UInt64, deliveryCount: Int) async throws(MessageStoreError) {
        try await send(runs: runs, sequence: sequence, deliveryCount: deliveryCount).stored()
    }

    /// Starts recording that the message at `sequence`, in its `deliveryCount`th delivery, has
    /// run `runs` times: the count is written to the socket before this returns (the
    /// acknowledgement or settlement that follows goes out behind it, on the same connection),
    /// and the returned record says when the bucket has it. Without a connection that sends at
    /// once, it is stored (or has failed) before this returns.
    func send(runs: Int, sequence: UInt64, deliveryCount: Int) async -> PendingRecord {
        let subject = keyPrefix + String(sequence)
        let publication = Publication(
            subject: subject,
            natsSubject: subject,
            body: Array(String(runs).utf8),
            headers: MessageHeaders()
        )
        // Forgotten first: whatever happens to this write, an older count is not the truth.
        recent.forget(sequence: sequence)
        let written = PendingRecord.Written(runs: runs, sequence: sequence, deliveryCount: deliveryCount)
        if let sent = store.jetStream.sendAtOnce(publication, timeout: store.publisher.timeout) {
            if let error = sent.failure {
                return PendingRecord(written, recent: recent, progress: .done(error))
            }
            // Remembered as it goes out: the count is this worker's truth whether or not the bucket
            // ends up with it, and it is forgotten again if the bucket does not.
            recent.remember(runs: runs, sequence: sequence, deliveryCount: deliveryCount)
            return PendingRecord(written, recent: recent, progress: .sent(sent))
        }
        do {
            _ = try await store.publisher.publish(publication, traced: false)
        } catch {
            return PendingRecord(written, recent: recent, progress: .done(error))
        }
        recent.remember(runs: runs, sequence: sequence, deliveryCount: deliveryCount)
        return PendingRecord(written, recent: recent, progress: .done(nil))
    }

    /// Bucket names take letters, digits, `-` and `_`: every other byte, and `_` itself, is
    /// written `_xx` (its value in hex), so different prefixes never share a bucket.
    static func escapeBucketName(_ text: String) -> String {
        escape(text, marker: UInt8(ascii: "_")) { byte in
            byte == UInt8(ascii: "-") || isLetterOrDigit(byte)
        }
    }

    /// Key tokens take letters, digits, `-`, `_` and `/`: every other byte, and `=` itself, is
    /// written `=xx`, so a token never contains a `.` and different names never meet.
    static func escapeKeyToken(_ text: String) -> String {
        escape(text, marker: UInt8(ascii: "=")) { byte in
            byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "/") || isLetterOrDigit(byte)
        }
    }

    private static func isLetterOrDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    private static func escape(_ text: String, marker: UInt8, keeps: (UInt8) -> Bool) -> String {
        let hex = Array("0123456789abcdef".utf8)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            if keeps(byte) && byte != marker {
                bytes.append(byte)
            } else {
                bytes += [marker, hex[Int(byte >> 4)], hex[Int(byte & 0x0f)]]
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// A count of runs sent to the bucket (``AttemptLedger/send(runs:sequence:deliveryCount:)``),
/// whose acknowledgement is awaited by ``stored()``, or never.
struct PendingRecord: Sendable {
    struct Written: Sendable, Equatable {
        let runs: Int
        let sequence: UInt64
        let deliveryCount: Int
    }

    enum Progress: Sendable {
        case sent(SentPublish)
        /// Stored (nil) or failed.
        case done(MessageStoreError?)
    }

    let written: Written
    private let recent: RecentRuns
    private let progress: Progress

    init(_ written: Written, recent: RecentRuns, progress: Progress) {
        self.written = written
        self.recent = recent
        self.progress = progress
    }

    /// The error when the write failed before it went out: nothing was sent.
    var failedToSend: MessageStoreError? {
        switch progress {
        case .done(let error): return error
        case .sent(let sent): return sent.failure
        }
    }

    /// Calls `body` if the bucket does not store the count, once that is known (see
    /// ``SentPublish/whenSettled(_:)`` for the thread); the worker then no longer answers for it
    /// from memory either. Nothing waits for it.
    func ifNotStored(_ body: @escaping @Sendable (MessageStoreError) -> Void) {
        switch progress {
        case .done(let error):
            if let error { body(error) }
        case .sent(let sent):
            let recent = recent
            let written = written
            sent.whenSettled { outcome in
                guard case .failure(let error) = outcome else { return }
                recent.forget(written)
                body(error)
            }
        }
    }

    /// Waits until the bucket has the count; throws if it will not, and then the worker no
    /// longer answers for it from memory either (the next delivery reads the bucket).
    func stored() async throws(MessageStoreError) {
        switch progress {
        case .done(let error):
            if let error { throw error }
        case .sent(let sent):
            if case .failure(let error) = await sent.outcome() {
                recent.forget(written)
                throw error
            }
        }
    }
}

/// The attempt counts one worker wrote, so that it need not read back its own (see
/// ``AttemptLedger``). Bounded: the oldest is forgotten first, and a forgotten count is read
/// from the bucket as before.
final class RecentRuns: Sendable {
    private struct Entry {
        var runs: Int
        var deliveryCount: Int
    }

    private struct State {
        var entries: [UInt64: Entry] = [:]
        /// Sequences in the order they were written, oldest first; may hold forgotten ones.
        var order: [UInt64] = []
        var head = 0
    }

    static let capacity = 1_024
    private let state = Mutex(State())

    /// The count written during delivery `deliveryCount - 1`, if this worker wrote it then:
    /// nobody else had the message since.
    func runs(sequence: UInt64, deliveredAgainAs deliveryCount: Int) -> Int? {
        state.withLock { state in
            guard let entry = state.entries[sequence], entry.deliveryCount == deliveryCount - 1 else { return nil }
            return entry.runs
        }
    }

    func remember(runs: Int, sequence: UInt64, deliveryCount: Int) {
        state.withLock { state in
            if state.entries.updateValue(Entry(runs: runs, deliveryCount: deliveryCount), forKey: sequence) == nil {
                state.order.append(sequence)
            }
            while state.entries.count > Self.capacity, state.head < state.order.count {
                state.entries[state.order[state.head]] = nil
                state.head += 1
            }
            if state.head > Self.capacity {
                state.order.removeFirst(state.head)
                state.head = 0
            }
        }
    }

    func forget(sequence: UInt64) {
        _ = state.withLock { $0.entries.removeValue(forKey: sequence) }
    }

    /// Forgets the count of `written` if it is still the one remembered for its sequence (a
    /// later write's is kept).
    func forget(_ written: PendingRecord.Written) {
        state.withLock { state in
            guard let entry = state.entries[written.sequence], entry.runs == written.runs,
                entry.deliveryCount == written.deliveryCount
            else { return }
            state.entries[written.sequence] = nil
        }
    }
}

/// Values waiting for an answer, under ids this table hands out in increasing order.
///
/// Publishes are answered mostly in the order they were sent, so a ring indexed by id finds
/// each one without hashing, and the ring stays as large as the span of ids waiting. An id
/// that waits while the ring would have to grow past `maxRingCapacity` (one lost answer among
/// many later ones) moves to a dictionary instead, so a straggler never holds a large ring.
struct WaitingTable<Value> {
    private var ring: [Value?]
    /// The oldest id the ring may still hold; every id below it is in `stragglers` or gone.
    private var head: UInt64 = 1
    /// The id the next insert gets.
    private(set) var nextID: UInt64 = 1
    private var stragglers: [UInt64: Value] = [:]
    private let maxRingCapacity: Int
    private(set) var count = 0

    /// `initialCapacity` and `maxRingCapacity` are rounded up to powers of two.
    init(initialCapacity: Int = 256, maxRingCapacity: Int = 1 << 16) {
        let initial = Self.powerOfTwo(atLeast: initialCapacity)
        ring = Array(repeating: nil, count: initial)
        self.maxRingCapacity = max(initial, Self.powerOfTwo(atLeast: maxRingCapacity))
    }

    var isEmpty: Bool { count == 0 }

    /// How many values the ring has room for now (for tests).
    var ringCapacity: Int { ring.count }

    /// How many values wait outside the ring (for tests).
    var stragglerCount: Int { stragglers.count }

    /// Stores `value` and returns its id.
    mutating func insert(_ value: Value) -> UInt64 {
        if nextID - head == UInt64(ring.count) { makeRoom() }
        let id = nextID
        nextID += 1
        ring[slot(id)] = value
        count += 1
        return id
    }

    /// Takes the value under `id`, if it still waits.
    mutating func remove(_ id: UInt64) -> Value? {
        let value: Value?
        if id >= head && id < nextID {
            value = ring[slot(id)].take()
            if value != nil, id == head { advanceHead() }
        } else if id < head {
            value = stragglers.removeValue(forKey: id)
        } else {
            value = nil
        }
        if value != nil { count -= 1 }
        return value
    }

    /// Every (id, value) waiting, in no particular order.
    var entries: [(id: UInt64, value: Value)] {
        var all: [(id: UInt64, value: Value)] = []
        all.reserveCapacity(count)
        for (id, value) in stragglers { all.append((id, value)) }
        var id = head
        while id < nextID {
            if let value = ring[slot(id)] { all.append((id, value)) }
            id += 1
        }
        return all
    }

    /// Removes and returns every value waiting. Ids are not reused.
    mutating func removeAll() -> [Value] {
        let all = entries.map(\.value)
        stragglers.removeAll()
        for index in ring.indices { ring[index] = nil }
        head = nextID
        count = 0
        return all
    }

    private func slot(_ id: UInt64) -> Int {
        Int(truncatingIfNeeded: id) & (ring.count - 1)
    }

    private mutating func advanceHead() {
        while head < nextID, ring[slot(head)] == nil {
            head += 1
        }
    }

    /// Called when the ring is full: doubles it, or at its largest moves the oldest quarter of
    /// the span to `stragglers`.
    private mutating func makeRoom() {
        if ring.count < maxRingCapacity {
            var larger = [Value?](repeating: nil, count: ring.count * 2)
            var id = head
            while id < nextID {
                larger[Int(truncatingIfNeeded: id) & (larger.count - 1)] = ring[slot(id)].take()
                id += 1
            }
            ring = larger
            return
        }
        let end = head + UInt64(ring.count / 4)
        var id = head
        while id < end {
            if let value = ring[slot(id)].take() { stragglers[id] = value }
            id += 1
        }
        head = end
        advanceHead()
    }

    private static func powerOfTwo(atLeast value: Int) -> Int {
        var power = 1
        while power < value { power <<= 1 }
        return power
    }
}

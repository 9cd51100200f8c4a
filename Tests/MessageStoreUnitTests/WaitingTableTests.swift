import Testing

@testable import MessageStore

@Suite("Waiting table")
struct WaitingTableTests {
    @Test func answeredInOrderTheRingKeepsItsSize() {
        var table = WaitingTable<Int>(initialCapacity: 8)
        for round in 0..<1_000 {
            let id = table.insert(round)
            #expect(table.remove(id) == round)
        }
        #expect(table.isEmpty)
        #expect(table.ringCapacity == 8)
        #expect(table.nextID == 1_001)
    }

    @Test func theRingGrowsWithTheSpanWaiting() {
        var table = WaitingTable<Int>(initialCapacity: 4, maxRingCapacity: 64)
        let ids = (0..<20).map { table.insert($0) }
        #expect(table.ringCapacity == 32)
        #expect(table.count == 20)
        for (value, id) in zip(0..<20, ids).reversed() {
            #expect(table.remove(id) == value)
        }
        #expect(table.isEmpty)
    }

    @Test func anOldIdStillWaitingMovesOutOfTheRing() {
        var table = WaitingTable<Int>(initialCapacity: 4, maxRingCapacity: 8)
        let old = table.insert(-1)
        for value in 0..<100 {
            let id = table.insert(value)
            #expect(table.remove(id) == value)
        }
        #expect(table.ringCapacity == 8)
        #expect(table.stragglerCount == 1)
        #expect(table.count == 1)
        #expect(table.remove(old) == -1)
        #expect(table.remove(old) == nil)
        #expect(table.isEmpty)
    }

    @Test func unknownAndRepeatedIdsFindNothing() {
        var table = WaitingTable<String>()
        #expect(table.remove(0) == nil)
        #expect(table.remove(1) == nil)
        let id = table.insert("a")
        #expect(table.remove(id + 1) == nil)
        #expect(table.remove(.max) == nil)
        #expect(table.remove(id) == "a")
        #expect(table.remove(id) == nil)
        #expect(table.count == 0)
    }

    @Test func removeAllReturnsEveryValueAndIdsAreNotReused() {
        var table = WaitingTable<Int>(initialCapacity: 2, maxRingCapacity: 4)
        var ids: [UInt64] = []
        for value in 0..<10 { ids.append(table.insert(value)) }
        _ = table.remove(ids[9])
        #expect(table.removeAll().sorted() == Array(0..<9))
        #expect(table.isEmpty)
        #expect(ids.allSatisfy { table.remove($0) == nil })
        #expect(table.insert(42) == 11)
    }

    @Test func behavesLikeADictionaryUnderRandomOrder() {
        var generator = SystemRandomNumberGenerator()
        var table = WaitingTable<Int>(initialCapacity: 2, maxRingCapacity: 16)
        var model: [UInt64: Int] = [:]
        for step in 0..<3_000 {
            if model.isEmpty || Bool.random(using: &generator) {
                let id = table.insert(step)
                #expect(model[id] == nil)
                model[id] = step
            } else {
                // Mostly the oldest (answers come in order), sometimes any, sometimes one never given.
                let keys = model.keys.sorted()
                let id: UInt64 =
                    switch Int.random(in: 0..<10, using: &generator) {
                    case 0..<6: keys[0]
                    case 6..<9: keys.randomElement(using: &generator)!
                    default: table.nextID + 5
                    }
                #expect(table.remove(id) == model.removeValue(forKey: id))
            }
            #expect(table.count == model.count)
        }
        #expect(Dictionary(uniqueKeysWithValues: table.entries.map { ($0.id, $0.value) }) == model)
    }
}

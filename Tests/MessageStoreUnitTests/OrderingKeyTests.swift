import Testing

@testable import MessageStore

@Suite("Ordering keys and the key queues")
struct OrderingKeyTests {
    @Test func keysComeFromTheSubject() throws {
        #expect(Subscription.Ordering.unordered.key == nil)
        let perSubject = try #require(Subscription.Ordering.perSubject.key)
        #expect(perSubject("orders.event.42") == "orders.event.42")
        let byID = try #require(Subscription.Ordering.perSubjectToken(2).key)
        #expect(byID("orders.event.42") == "42")
        #expect(byID("orders.command.42") == "42")
        #expect(byID("orders.42") == "orders.42")  // too few tokens: its own key
        #expect(byID("orders..") == "")
        let negative = try #require(Subscription.Ordering.perSubjectToken(-1).key)
        #expect(negative("orders.event.42") == "orders.event.42")
        let custom = try #require(Subscription.Ordering.perKey { String($0.prefix(3)) }.key)
        #expect(custom("orders.1") == "ord")
    }

    @Test func theQueueIsFirstInFirstOutAcrossCompaction() {
        var queue = FIFO<Int>()
        #expect(queue.first == nil && queue.isEmpty && queue.removeFirst() == nil)
        var expected: [Int] = []
        var removed: [Int] = []
        for value in 0..<1_000 {
            queue.append(value)
            expected.append(value)
            if value % 3 == 0, let first = queue.removeFirst() { removed.append(first) }
        }
        while let first = queue.removeFirst() { removed.append(first) }
        #expect(removed == expected)
        #expect(queue.isEmpty)
    }
}

import Synchronization
import Testing

/// Collects events from handlers and lets a test await a condition on them, with a bound.
///
/// Waiting is event-driven: every `record` re-checks the waiting predicates, so a test resumes
/// the moment its condition holds, and fails with what it saw if the bound passes first.
package final class Recorder<Event: Sendable>: Sendable {
    package struct Timeout: Error, CustomStringConvertible {
        package var waitedFor: String
        package var seen: Int
        package var description: String { "timed out waiting for \(waitedFor); saw \(seen) event(s)" }
    }

    private struct Waiter {
        let id: Int
        let predicate: @Sendable ([Event]) -> Bool
        let continuation: CheckedContinuation<[Event], any Error>
    }

    private struct State {
        var events: [Event] = []
        var waiters: [Waiter] = []
        var nextID = 0
    }

    private let state = Mutex(State())

    package init() {}

    package var events: [Event] { state.withLock { $0.events } }

    package func record(_ event: Event) {
        let ready = state.withLock { state -> [(CheckedContinuation<[Event], any Error>, [Event])] in
            state.events.append(event)
            var ready: [(CheckedContinuation<[Event], any Error>, [Event])] = []
            state.waiters.removeAll { waiter in
                guard waiter.predicate(state.events) else { return false }
                ready.append((waiter.continuation, state.events))
                return true
            }
            return ready
        }
        for (continuation, events) in ready {
            continuation.resume(returning: events)
        }
    }

    /// Waits until `predicate` holds for the events recorded so far, at most `timeout`.
    @discardableResult
    package func wait(
        for description: String,
        timeout: Duration = .seconds(20),
        until predicate: @escaping @Sendable ([Event]) -> Bool
    ) async throws -> [Event] {
        try await withThrowingTaskGroup(of: [Event].self) { group in
            group.addTask { try await self.waitUnbounded(predicate) }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw Timeout(waitedFor: description, seen: self.events.count)
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }

    /// Waits until at least `count` events were recorded.
    @discardableResult
    package func wait(forCount count: Int, timeout: Duration = .seconds(20)) async throws -> [Event] {
        try await wait(for: "\(count) event(s)", timeout: timeout) { $0.count >= count }
    }

    private func waitUnbounded(_ predicate: @escaping @Sendable ([Event]) -> Bool) async throws -> [Event] {
        let id = state.withLock { state -> Int in
            state.nextID += 1
            return state.nextID
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let immediate = state.withLock { state -> Result<[Event], any Error>? in
                    if predicate(state.events) { return .success(state.events) }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    state.waiters.append(Waiter(id: id, predicate: predicate, continuation: continuation))
                    return nil
                }
                if let immediate { continuation.resume(with: immediate) }
            }
        } onCancel: {
            let waiter = state.withLock { state -> Waiter? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index)
            }
            waiter?.continuation.resume(throwing: CancellationError())
        }
    }
}

extension Recorder where Event: Hashable {
    /// Waits until at least `count` distinct events were recorded. It reads each event once
    /// however often it checks: a predicate that builds a `Set` of every event on each record is
    /// quadratic, and over 20,000 events it took tens of seconds of a debug build's CPU (and the
    /// recorder's lock, which every handler takes) in the fault suite.
    @discardableResult
    package func wait(forDistinct count: Int, _ description: String, timeout: Duration = .seconds(20)) async throws
        -> [Event]
    {
        let distinct = DistinctEvents<Event>()
        return try await wait(for: description, timeout: timeout) { distinct.count(in: $0) >= count }
    }
}

/// The distinct events of a growing array, taken in from where the last look stopped.
private final class DistinctEvents<Event: Hashable & Sendable>: Sendable {
    private let state = Mutex((seen: Set<Event>(), read: 0))

    package func count(in events: [Event]) -> Int {
        state.withLock { state in
            if state.read < events.count {
                state.seen.formUnion(events[state.read...])
                state.read = events.count
            }
            return state.seen.count
        }
    }
}

/// Polls an async condition every 20 ms until it holds, failing after `timeout`.
///
/// For server-side state (consumer counters), which has no event to await.
package func waitUntil(
    _ description: String,
    timeout: Duration = .seconds(20),
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    Issue.record("timed out after \(timeout) waiting for \(description)")
    throw Recorder<Int>.Timeout(waitedFor: description, seen: 0)
}

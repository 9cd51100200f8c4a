import Synchronization

/// Sends "still working" (`+WPI`) for every message whose handler has run longer than one
/// interval, once per interval, so the server does not redeliver it to another worker meanwhile.
///
/// One loop serves the whole subscription; starting and ending a handler only touches a small
/// locked table, so fast handlers cost almost nothing.
final class ProgressReporter: Sendable {
    struct Token: Hashable {
        fileprivate let id: UInt64
    }

    private struct Entry {
        var message: FetchedMessage
        var started: ContinuousClock.Instant
    }

    private struct State {
        var nextID: UInt64 = 0
        var running: [UInt64: Entry] = [:]
    }

    let interval: Duration
    private let state = Mutex(State())

    init(interval: Duration) {
        self.interval = interval
    }

    func begin(_ message: FetchedMessage) -> Token {
        state.withLock { state in
            state.nextID &+= 1
            state.running[state.nextID] = Entry(message: message, started: .now)
            return Token(id: state.nextID)
        }
    }

    func end(_ token: Token) {
        _ = state.withLock { $0.running.removeValue(forKey: token.id) }
    }

    /// Reports progress every `interval / 2` until cancelled.
    func run() async {
        let tick = interval / 2
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: tick)
            } catch {
                return
            }
            let now = ContinuousClock.now
            let due = state.withLock { state in
                state.running.values.filter { now - $0.started >= interval }.map(\.message)
            }
            for message in due {
                message.reportProgress()
            }
        }
    }
}

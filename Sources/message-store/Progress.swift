import Foundation

/// A count and a rate on stderr while a long command runs: `read 120000 message(s), 98000/s`.
///
/// Shown when stderr is a terminal and the command has run for a second, or always with
/// `--progress` (for logs: then the last line is printed even for a short run). The line is
/// rewritten in place on a terminal and ends with a newline when the command is done, so stdout
/// (the messages themselves) stays clean for pipes.
final class ProgressLine {
    private let verb: String
    private let forced: Bool
    private let enabled: Bool
    private let started = ContinuousClock.now
    private var lastShown: ContinuousClock.Instant?
    private(set) var count = 0

    /// - Parameters:
    ///   - verb: What is being counted, such as `read` or `replayed`.
    ///   - forced: `--progress`: show it even when stderr is not a terminal.
    init(_ verb: String, forced: Bool) {
        self.verb = verb
        self.forced = forced
        enabled = forced || isatty(STDERR_FILENO) == 1
    }

    /// Counts one message; redraws at most four times a second.
    func advance() {
        count += 1
        guard enabled else { return }
        let now = ContinuousClock.now
        if let lastShown {
            guard now - lastShown >= .milliseconds(250) else { return }
        } else {
            guard forced || now - started >= .seconds(1) else { return }
        }
        lastShown = now
        write(ending: "")
    }

    /// The final count, when a line was shown (or `--progress` asked for one).
    func finish() {
        guard enabled, forced || lastShown != nil else { return }
        write(ending: "\n")
    }

    private func write(ending: String) {
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let rate = seconds > 0 ? Int(Double(count) / seconds) : count
        FileHandle.standardError.write(Data("\r\(verb) \(count) message(s), \(rate)/s\(ending)".utf8))
    }
}

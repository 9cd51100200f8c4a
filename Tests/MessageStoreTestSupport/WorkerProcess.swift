import Foundation
import MessageStoreTesting

/// A worker process of the tests (by default `FaultWorker`, Tests/FaultWorker), its output lines
/// collected as they come.
package final class WorkerProcess: Sendable {
    /// Every line the process printed, then "exited" once it is gone.
    package let lines = Recorder<String>()
    package let processIdentifier: Int32
    private let process: Process

    /// Starts the built executable `executable` (next to the test executable) with `environment`
    /// added to this process's.
    package init(executable: String = "FaultWorker", environment: [String: String]) throws {
        let process = Process()
        process.executableURL = ChildProcess.builtExecutable(named: executable)
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let output = Pipe()
        process.standardOutput = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
        self.process = process
        processIdentifier = process.processIdentifier
        let lines = lines
        let thread = Thread {
            var pending = Data()
            while true {
                let data = output.fileHandleForReading.availableData
                if data.isEmpty { break }
                pending.append(data)
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    lines.record(String(decoding: pending[pending.startIndex..<newline], as: UTF8.self))
                    pending.removeSubrange(pending.startIndex...newline)
                }
            }
            process.waitUntilExit()
            lines.record("exited")
        }
        thread.name = "fault-worker-output"
        thread.start()
    }

    deinit {
        if process.isRunning { kill(processIdentifier, SIGKILL) }
    }

    package func send(_ signal: Int32) {
        kill(processIdentifier, signal)
    }

    package func waitForExit(timeout: Duration = .seconds(20)) async throws {
        try await lines.wait(for: "the worker to exit", timeout: timeout) { $0.last == "exited" }
    }
}

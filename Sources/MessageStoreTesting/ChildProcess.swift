public import Foundation
import Synchronization

/// Runs another program from an async test without blocking Swift's cooperative thread pool.
///
/// `Process.waitUntilExit()` and reading a pipe to its end block the calling thread. On a two-core
/// machine the cooperative pool has two threads, so two tests doing that at once stall every other
/// test in the run, and timing assertions elsewhere fail for no fault of their own. Here the
/// waiting happens on threads of its own, and the caller suspends.
///
/// ```swift
/// let output = try await ChildProcess.run(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-V"])
/// #expect(output.status == 0)
/// ```
public enum ChildProcess {
    /// What a finished program printed, and how it ended.
    public struct Output: Sendable {
        /// The exit status, or the signal number when it was killed by a signal.
        public var status: Int32
        /// Whether it exited normally (rather than by a signal, such as after the timeout).
        public var exitedNormally: Bool
        /// Everything written to standard output, as UTF-8.
        public var stdout: String
        /// Everything written to standard error, as UTF-8.
        public var stderr: String
        /// The lines of standard output.
        public var lines: [String] { stdout.split(separator: "\n").map(String.init) }
    }

    /// A program of the package built with the tests, such as `message-store`: found in the
    /// directory of the running test executable or one above it, where SwiftPM puts products.
    public static func builtExecutable(named name: String) -> URL {
        let executable =
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? CommandLine.arguments[0]
        var directory = URL(fileURLWithPath: executable).deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: directory.appendingPathComponent(name).path),
            directory.path != "/"
        {
            directory.deleteLastPathComponent()
        }
        return directory.appendingPathComponent(name)
    }

    /// Runs `executable` with `arguments` to its end, collecting its output.
    /// - Parameters:
    ///   - executable: The program.
    ///   - arguments: Its arguments.
    ///   - environment: Its environment. Defaults to this process's.
    ///   - timeout: After this long the program gets SIGTERM. Defaults to 30 seconds.
    /// - Throws: When the program cannot be started.
    public static func run(
        _ executable: URL,
        _ arguments: [String],
        environment: [String: String]? = nil,
        timeout: Duration = .seconds(30)
    ) async throws -> Output {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        if let environment { process.environment = environment }
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        // Starting a process blocks too (Foundation closes the child's inherited descriptors):
        // on a thread of its own, like the waits below.
        let started = await blocking { Result { try process.run() } }
        try started.get()
        let timer = DispatchSource.makeTimerSource(queue: .global())
        timer.schedule(deadline: .now() + .nanoseconds(Int(timeout / .nanoseconds(1))))
        timer.setEventHandler { if process.isRunning { process.terminate() } }
        timer.resume()
        defer { timer.cancel() }
        // Each pipe is drained on its own thread, so a program that fills one pipe while we read
        // the other cannot deadlock.
        async let stderr = blocking { err.fileHandleForReading.readDataToEndOfFile() }
        async let stdout = blocking { out.fileHandleForReading.readDataToEndOfFile() }
        let (outData, errData) = await (stdout, stderr)
        await blocking { process.waitUntilExit() }
        return Output(
            status: process.terminationStatus,
            exitedNormally: process.terminationReason == .exit,
            stdout: String(decoding: outData, as: UTF8.self),
            stderr: String(decoding: errData, as: UTF8.self)
        )
    }

    /// Runs blocking `work` on a new thread and suspends until it returns.
    ///
    /// For waits on pipes and processes; the thread exists only while `work` runs.
    public static func blocking<Value: Sendable>(_ work: @escaping @Sendable () -> Value) async -> Value {
        await withCheckedContinuation { continuation in
            let thread = Thread { continuation.resume(returning: work()) }
            thread.name = "child-process-wait"
            thread.start()
        }
    }
}

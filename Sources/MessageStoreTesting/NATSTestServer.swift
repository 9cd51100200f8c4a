public import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A real `nats-server` with JetStream, started for a test and stopped after it.
///
/// It listens on a free loopback port, keeps its store in a fresh temporary directory, and is
/// stopped by its process id. It can be stopped and started again on the same port and store, to
/// test what happens when the server goes away and comes back.
///
/// The binary is `NATS_SERVER_BIN` when set, otherwise `nats-server` from `PATH`.
///
/// ```swift
/// @Test func publishes() async throws {
///     try await NATSTestServer.withServer { server in
///         let connection = try await NATSConnection.connect(.init(url: server.url))
///         …
///     }
/// }
/// ```
public final class NATSTestServer: Sendable {
    /// Where the server listens, such as `nats://127.0.0.1:41234`.
    public var url: String { "nats://127.0.0.1:\(port)" }
    /// The client port.
    public let port: Int
    /// The JetStream store directory (removed by ``stop()`` unless ``keepStore`` is set).
    public let storeDirectory: URL
    /// The server binary in use.
    public let executable: String
    /// Extra command-line arguments given to the server.
    public let extraArguments: [String]

    private struct State {
        var process: Process?
        var logFile: URL?
        var starts = 0
    }

    private let state = Mutex(State())

    /// The running server's process id, or nil when stopped.
    public var processIdentifier: Int32? {
        state.withLock { state in state.process.flatMap { $0.isRunning ? $0.processIdentifier : nil } }
    }

    /// Whether the server process is running.
    public var isRunning: Bool {
        processIdentifier != nil
    }

    /// Prepares a server without starting it.
    /// - Parameters:
    ///   - executable: The `nats-server` binary. Defaults to `NATS_SERVER_BIN` or `nats-server`
    ///     found on `PATH`.
    ///   - port: The client port. Defaults to a free loopback port.
    ///   - extraArguments: More arguments, such as cluster options. Defaults to none.
    /// - Throws: ``NATSTestServerError`` when no binary or port can be found.
    public init(executable: String? = nil, port: Int? = nil, extraArguments: [String] = []) throws {
        self.executable = try executable ?? Self.defaultExecutable()
        self.port = try port ?? Self.freePort()
        self.extraArguments = extraArguments
        storeDirectory = FileManager.default.temporaryDirectory
            .appendingPathComponent("message-store-test-\(UUID().uuidString)", isDirectory: true)
    }

    deinit {
        // Last resort when a test forgot to stop the server: never leave it running.
        if let process = state.withLock({ $0.process }), process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    /// Starts a server, runs `body`, and stops the server, whether `body` returns or throws.
    public static func withServer<Result>(
        executable: String? = nil,
        extraArguments: [String] = [],
        _ body: (NATSTestServer) async throws -> Result
    ) async throws -> Result {
        try await NATSTestServer(executable: executable, extraArguments: extraArguments).running(body)
    }

    /// Starts this server, runs `body`, and stops the server, whether `body` returns or throws.
    func running<Result>(_ body: (NATSTestServer) async throws -> Result) async throws -> Result {
        try await start()
        do {
            let result = try await body(self)
            try await stop()
            return result
        } catch {
            try? await stop()
            throw error
        }
    }

    /// Starts the server and waits until it accepts clients with JetStream enabled.
    /// - Parameter timeout: How long to wait for readiness. Defaults to 10 seconds.
    /// - Throws: ``NATSTestServerError`` when the process exits or is not ready in time; the error
    ///   carries the end of the server's log.
    public func start(timeout: Duration = .seconds(10)) async throws {
        guard !isRunning else { return }
        try FileManager.default.createDirectory(at: storeDirectory, withIntermediateDirectories: true)
        let logFile = storeDirectory.deletingLastPathComponent()
            .appendingPathComponent(storeDirectory.lastPathComponent + ".log")
        if !FileManager.default.fileExists(atPath: logFile.path) {
            _ = FileManager.default.createFile(atPath: logFile.path, contents: nil)
        }
        // A restart appends to the log: only what this start writes says this process is ready.
        let logStart = (try? FileManager.default.attributesOfItem(atPath: logFile.path)[.size] as? Int) ?? 0
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments =
            ["--jetstream", "--store_dir", storeDirectory.path, "--addr", "127.0.0.1", "--port", String(port)]
            + extraArguments
        let handle = try FileHandle(forWritingTo: logFile)
        try handle.seekToEnd()
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        try? handle.close()
        state.withLock {
            $0.process = process
            $0.logFile = logFile
            $0.starts += 1
        }
        Self.recordProcessIdentifier(process.processIdentifier)

        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline {
            guard process.isRunning else {
                throw NATSTestServerError(
                    message: "nats-server exited with status \(process.terminationStatus) while starting",
                    log: logTail()
                )
            }
            // Another process could be listening on the port (it was only free when chosen):
            // the server must also say in its own log that it is ready.
            if Self.isReady(port: port) && Self.logSaysReady(logFile, after: logStart) { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        try? await stop()
        throw NATSTestServerError(message: "nats-server was not ready within \(timeout)", log: logTail())
    }

    /// Stops the server: SIGTERM to its pid, then SIGKILL after `timeout`.
    /// - Parameters:
    ///   - timeout: How long to wait for a clean exit. Defaults to 10 seconds.
    ///   - keepingStore: Whether to keep the store (and the port) so that ``start(timeout:)``
    ///     brings the same server back. Defaults to false: the store directory is removed.
    public func stop(timeout: Duration = .seconds(10), keepingStore: Bool = false) async throws {
        try await terminate(timeout: timeout)
        guard !keepingStore else { return }
        // Off the cooperative pool: removing a store of many files waits on the disk, and the
        // tests running alongside measure how promptly their tasks run.
        let files = [storeDirectory] + [state.withLock { $0.logFile }].compactMap { $0 }
        await ChildProcess.blocking {
            for file in files { try? FileManager.default.removeItem(at: file) }
        }
    }

    /// Stops the server but keeps its store, then starts it again on the same port.
    public func restart(timeout: Duration = .seconds(10)) async throws {
        try await terminate(timeout: timeout)
        try await start(timeout: timeout)
    }

    /// Kills the server with SIGKILL, as a crash or a pulled plug would, and waits for the
    /// process to end (off the cooperative pool). The store and the port are kept, so
    /// ``start(timeout:)`` brings the same server back.
    public func crash() async {
        guard let process = state.withLock({ $0.process }) else { return }
        if process.isRunning {
            _ = kill(process.processIdentifier, SIGKILL)
        }
        await Self.waitForExit(process)
        Self.forgetProcessIdentifier(process.processIdentifier)
        state.withLock { $0.process = nil }
    }

    /// Freezes the server with SIGSTOP: it holds its connections and answers nothing until
    /// ``thaw()``.
    ///
    /// Returns once the process is stopped (on Linux, as `/proc` shows it; at most 2 s): a
    /// signal is delivered asynchronously, and a test that probes the server right after
    /// freezing it must not be answered by a server that has not stopped yet.
    public func freeze() {
        guard let pid = processIdentifier else { return }
        _ = kill(pid, SIGSTOP)
        #if os(Linux)
            for _ in 0..<2_000 {
                guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                    let close = stat.lastIndex(of: ")")
                else { return }
                let state = stat[stat.index(after: close)...].drop { $0 == " " }.first
                if state == "T" || state == "t" { return }
                usleep(1_000)
            }
        #endif
    }

    /// Lets a frozen server go on (SIGCONT).
    public func thaw() {
        if let pid = processIdentifier { _ = kill(pid, SIGCONT) }
    }

    /// Waits for `process` to exit on a thread of its own, not the cooperative pool.
    private static func waitForExit(_ process: Process) async {
        await ChildProcess.blocking { process.waitUntilExit() }
    }

    /// The last lines of the server's log, for failure messages.
    public func logTail(lines: Int = 30) -> String {
        guard let logFile = state.withLock({ $0.logFile }),
            let text = try? String(contentsOf: logFile, encoding: .utf8)
        else { return "" }
        return text.split(separator: "\n").suffix(lines).joined(separator: "\n")
    }

    private func terminate(timeout: Duration) async throws {
        guard let process = state.withLock({ $0.process }) else { return }
        if process.isRunning {
            kill(process.processIdentifier, SIGTERM)
            let clock = ContinuousClock()
            let deadline = clock.now + timeout
            while process.isRunning && clock.now < deadline {
                try? await Task.sleep(for: .milliseconds(5))
            }
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
            }
        }
        // Bounded: a server that is gone but never reaped (seen once under ThreadSanitizer) fails
        // the test with its pid instead of hanging the run.
        let clock = ContinuousClock()
        let reapDeadline = clock.now + .seconds(10)
        while process.isRunning && clock.now < reapDeadline {
            try? await Task.sleep(for: .milliseconds(5))
        }
        if process.isRunning {
            throw NATSTestServerError(
                message: "nats-server (pid \(process.processIdentifier)) had not exited 10 s after SIGKILL",
                log: logTail()
            )
        }
        Self.forgetProcessIdentifier(process.processIdentifier)
        state.withLock { $0.process = nil }
    }

    // MARK: Helpers

    package static func defaultExecutable() throws -> String {
        if let configured = ProcessInfo.processInfo.environment["NATS_SERVER_BIN"], !configured.isEmpty {
            guard FileManager.default.isExecutableFile(atPath: configured) else {
                throw NATSTestServerError(message: "NATS_SERVER_BIN=\(configured) is not an executable file")
            }
            return configured
        }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":") + ["/usr/sbin", "/usr/local/sbin"] {
            let candidate = "\(directory)/nats-server"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw NATSTestServerError(
            message: "nats-server not found: install it (apt-get install nats-server) or set NATS_SERVER_BIN"
        )
    }

    /// A port free on 127.0.0.1 right now, below the kernel's range of ephemeral ports.
    ///
    /// The port is only reserved once the server binds it. Ports in the ephemeral range are also
    /// handed out as the source ports of outgoing connections (every client and route of the
    /// servers of tests running in parallel), so one of them could take it in between; below the
    /// range only listeners bind, and a random pick makes two tests choosing the same port
    /// unlikely. Falls back to a port the kernel picks when none below the range is free.
    ///
    /// A port is handed out once per process: two servers of one test run, chosen before either
    /// has bound its port, never get the same one.
    public static func freePort() throws -> Int {
        let upper = ephemeralRangeStart()
        if upper > 10_001 {
            for _ in 0..<100 {
                let candidate = Int.random(in: 10_000..<upper)
                guard portsHandedOut.withLock({ $0.insert(candidate).inserted }) else { continue }
                if let port = try bindAndRelease(port: candidate) { return port }
            }
        }
        guard let port = try bindAndRelease(port: 0) else {
            throw NATSTestServerError(message: "could not find a free port: errno \(errno)")
        }
        portsHandedOut.withLock { _ = $0.insert(port) }
        return port
    }

    /// Every port ``freePort()`` has returned (or tried) in this process.
    private static let portsHandedOut = Mutex<Set<Int>>([])

    /// The first port of the kernel's ephemeral range (Linux's default when it cannot be read).
    private static func ephemeralRangeStart() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8),
            let first = text.split(whereSeparator: \.isWhitespace).first.flatMap({ Int($0) })
        else { return 32_768 }
        return first
    }

    /// Binds `port` (0: any) on 127.0.0.1 and releases it; returns the port bound, or nil when
    /// it is taken.
    private static func bindAndRelease(port: Int) throws -> Int? {
        let socketDescriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socketDescriptor >= 0 else { throw NATSTestServerError(message: "socket() failed: \(errno)") }
        defer { close(socketDescriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(socketDescriptor, pointer, length) == 0 && getsockname(socketDescriptor, pointer, &length) == 0
            }
        }
        return bound ? Int(UInt16(bigEndian: address.sin_port)) : nil
    }

    /// Whether nats-server wrote "Server is ready" to `logFile` after its first `offset` bytes.
    private static func logSaysReady(_ logFile: URL, after offset: Int) -> Bool {
        guard let data = FileManager.default.contents(atPath: logFile.path), data.count > offset else { return false }
        return String(decoding: data[offset...], as: UTF8.self).contains("Server is ready")
    }

    /// Whether a client can connect and the server's INFO says JetStream is on.
    static func isReady(port: Int) -> Bool {
        let socketDescriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socketDescriptor >= 0 else { return false }
        defer { close(socketDescriptor) }
        var receiveTimeout = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(
            socketDescriptor,
            SOL_SOCKET,
            SO_RCVTIMEO,
            &receiveTimeout,
            socklen_t(MemoryLayout<timeval>.size)
        )
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(socketDescriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
        guard connected else { return false }
        var buffer = [UInt8](repeating: 0, count: 4096)
        var received = 0
        while received < buffer.count {
            let count = buffer.withUnsafeMutableBytes {
                recv(socketDescriptor, $0.baseAddress! + received, $0.count - received, 0)
            }
            guard count > 0 else { break }
            received += count
            if buffer[..<received].contains(UInt8(ascii: "\n")) { break }
        }
        let info = String(decoding: buffer[..<received], as: UTF8.self)
        return info.hasPrefix("INFO") && info.contains("\"jetstream\":true")
    }

    /// When `MESSAGE_STORE_TEST_PID_DIR` is set, each running server leaves a file named after its
    /// pid there, so a test script can stop any server a crashed test process left behind.
    private static func recordProcessIdentifier(_ pid: Int32) {
        guard let directory = ProcessInfo.processInfo.environment["MESSAGE_STORE_TEST_PID_DIR"] else { return }
        _ = FileManager.default.createFile(atPath: "\(directory)/\(pid)", contents: nil)
    }

    private static func forgetProcessIdentifier(_ pid: Int32) {
        guard let directory = ProcessInfo.processInfo.environment["MESSAGE_STORE_TEST_PID_DIR"] else { return }
        try? FileManager.default.removeItem(atPath: "\(directory)/\(pid)")
    }
}

/// Why a ``NATSTestServer`` could not start or stop.
public struct NATSTestServerError: Error, CustomStringConvertible {
    /// What went wrong.
    public var message: String
    /// The end of the server's log, when there is one.
    public var log: String

    /// Creates an error.
    public init(message: String, log: String = "") {
        self.message = message
        self.log = log
    }

    /// The message, followed by the server's log when there is one.
    public var description: String {
        log.isEmpty ? message : "\(message)\n--- nats-server log ---\n\(log)"
    }
}

import Foundation
import Logging
import MessageStoreTesting
import PostgresNIO
import Synchronization

/// A real PostgreSQL server for one test: Debian's binaries (`postgresql`, which
/// `scripts/setup.sh --interop` installs), a new cluster made with initdb in a temporary
/// directory, a free loopback port, trust authentication for the `postgres` user; run as the
/// `postgres` system user when the tests run as root (initdb refuses root), stopped by its pid.
final class PostgresTestServer: Sendable {
    let port: Int
    let directory: URL
    private let process = Mutex<Process?>(nil)

    /// The directory of `initdb` and `postgres`: `MESSAGE_STORE_POSTGRES_BIN`, else the newest
    /// `/usr/lib/postgresql/<version>/bin`.
    static let binaries: String? = {
        if let directory = ProcessInfo.processInfo.environment["MESSAGE_STORE_POSTGRES_BIN"] { return directory }
        let root = "/usr/lib/postgresql"
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return versions.compactMap(Int.init).max().map { "\(root)/\($0)/bin" }
    }()

    static var isAvailable: Bool {
        binaries.map { FileManager.default.isExecutableFile(atPath: "\($0)/initdb") } ?? false
    }

    private static var runsAsRoot: Bool { getuid() == 0 }

    init() throws {
        port = try NATSTestServer.freePort()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "ms-pg-\(UUID().uuidString.prefix(8))"
        )
    }

    /// A new server, started, for the duration of `body`; stopped and removed after it.
    static func withServer<R>(_ body: (PostgresTestServer) async throws -> R) async throws -> R {
        let server = try PostgresTestServer()
        try await server.start()
        do {
            let result = try await body(server)
            await server.stop()
            return result
        } catch {
            await server.stop()
            throw error
        }
    }

    var configuration: PostgresConnection.Configuration {
        PostgresConnection.Configuration(
            host: "127.0.0.1",
            port: port,
            username: "postgres",
            password: nil,
            database: "postgres",
            tls: .disable
        )
    }

    func connect(logger: Logger = Logger(label: "postgres-test")) async throws -> PostgresConnection {
        try await PostgresConnection.connect(configuration: configuration, id: 1, logger: logger)
    }

    /// Runs `arguments` (a binary of `binaries` and its arguments) as the server's user.
    private static func command(_ arguments: [String]) -> (String, [String]) {
        runsAsRoot
            ? ("/usr/bin/setpriv", ["--reuid=postgres", "--regid=postgres", "--init-groups", "--"] + arguments)
            : (arguments[0], Array(arguments.dropFirst()))
    }

    func start(timeout: Duration = .seconds(30)) async throws {
        guard let binaries = Self.binaries else { throw PostgresTestServerError("no PostgreSQL binaries found") }
        let data = directory.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        if Self.runsAsRoot {
            for path in [directory.path, data.path] {
                try FileManager.default.setAttributes([.ownerAccountName: "postgres"], ofItemAtPath: path)
            }
        }
        let log = directory.appendingPathComponent("log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        if Self.runsAsRoot {
            try FileManager.default.setAttributes([.ownerAccountName: "postgres"], ofItemAtPath: log.path)
        }
        let initdb = try await Self.run(
            Self.command([
                "\(binaries)/initdb", "-D", data.path, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync",
                "--no-instructions",
            ])
        )
        guard initdb.status == 0 else { throw PostgresTestServerError("initdb failed: \(initdb.output)") }
        let (executable, arguments) = Self.command([
            "\(binaries)/postgres", "-D", data.path, "-p", String(port), "-k", directory.path,
            "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off", "-c", "max_connections=100",
        ])
        let server = Process()
        server.executableURL = URL(fileURLWithPath: executable)
        server.arguments = arguments
        let handle = try FileHandle(forWritingTo: log)
        server.standardOutput = handle
        server.standardError = handle
        server.standardInput = FileHandle.nullDevice
        try server.run()
        try? handle.close()
        process.withLock { $0 = server }
        Self.record(server.processIdentifier)
        let deadline = ContinuousClock.now + timeout
        var lastError: (any Error)?
        while ContinuousClock.now < deadline {
            guard server.isRunning else { break }
            do {
                let connection = try await connect()
                try await connection.close()
                return
            } catch {
                lastError = error
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        await stop()
        throw PostgresTestServerError(
            "PostgreSQL did not start: \(lastError.map { "\($0)" } ?? "exited"); \(output.suffix(2_000))"
        )
    }

    /// Stops the server at once (SIGQUIT: no checkpoint, nothing to keep) and removes its directory.
    func stop() async {
        if let server = process.withLock({ $0 }) {
            if server.isRunning { kill(server.processIdentifier, SIGQUIT) }
            let deadline = ContinuousClock.now + .seconds(10)
            while server.isRunning && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
            if server.isRunning { kill(server.processIdentifier, SIGKILL) }
            Self.forget(server.processIdentifier)
        }
        let directory = directory
        await Task.detached { try? FileManager.default.removeItem(at: directory) }.value
    }

    private static func run(_ command: (String, [String])) async throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: command.0)
        process.arguments = command.1
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        return await Task.detached {
            let output = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: output, as: UTF8.self))
        }.value
    }

    private static func record(_ pid: Int32) {
        guard let directory = ProcessInfo.processInfo.environment["MESSAGE_STORE_TEST_PID_DIR"] else { return }
        _ = FileManager.default.createFile(atPath: "\(directory)/\(pid)", contents: nil)
    }

    private static func forget(_ pid: Int32) {
        guard let directory = ProcessInfo.processInfo.environment["MESSAGE_STORE_TEST_PID_DIR"] else { return }
        try? FileManager.default.removeItem(atPath: "\(directory)/\(pid)")
    }
}

struct PostgresTestServerError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

public import MessageStore

/// Three (or more) real `nats-server`s with JetStream, clustered over routes on free loopback
/// ports, for tests of replicated streams and failover.
///
/// Each node is a ``NATSTestServer`` named `node-1`, `node-2`, …; a node can be stopped, crashed
/// (SIGKILL) and started again on the same port and store.
///
/// ```swift
/// let cluster = try NATSTestCluster()
/// try await cluster.start()
/// let connection = try await NATSConnection.connect(.init(servers: cluster.urls))
/// …
/// let leader = try await cluster.leader(ofStream: "dev-orders", in: store)
/// await leader.crash()
/// …
/// try await cluster.stop()
/// ```
public final class NATSTestCluster: Sendable {
    /// The nodes, in the order of their names.
    public let servers: [NATSTestServer]
    /// Each node's server name, such as `node-1`, at the same index as ``servers``.
    public let names: [String]

    /// Every node's client URL.
    public var urls: [String] { servers.map(\.url) }

    /// Prepares a cluster without starting it.
    /// - Parameters:
    ///   - size: How many nodes. Defaults to 3.
    ///   - executable: The `nats-server` binary. Defaults to `NATS_SERVER_BIN` or `nats-server`
    ///     found on `PATH`.
    ///   - name: The cluster's name. Defaults to `message-store`.
    /// - Throws: ``NATSTestServerError`` when no binary or ports can be found.
    public init(size: Int = 3, executable: String? = nil, name: String = "message-store") throws {
        let clusterPorts = try (0..<size).map { _ in try NATSTestServer.freePort() }
        let routes = clusterPorts.map { "nats://127.0.0.1:\($0)" }.joined(separator: ",")
        names = (0..<size).map { "node-\($0 + 1)" }
        servers = try (0..<size).map { [names] index in
            try NATSTestServer(
                executable: executable,
                extraArguments: [
                    "--server_name", names[index],
                    "--cluster_name", name,
                    "--cluster", "nats://127.0.0.1:\(clusterPorts[index])",
                    "--routes", routes,
                ]
            )
        }
    }

    /// Starts every node at once and waits until each accepts clients.
    /// - Throws: ``NATSTestServerError`` when a node does not start; the others are stopped.
    public func start(timeout: Duration = .seconds(10)) async throws {
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for server in servers { group.addTask { try await server.start(timeout: timeout) } }
                try await group.waitForAll()
            }
        } catch {
            try? await stop()
            throw error
        }
    }

    /// Stops every node and removes their stores.
    public func stop() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for server in servers { group.addTask { try await server.stop() } }
            try await group.waitForAll()
        }
    }

    /// The node named `name`, or nil.
    public func server(named name: String) -> NATSTestServer? {
        names.firstIndex(of: name).map { servers[$0] }
    }

    /// The node that leads the stream `stream`, asked through `store`; waits while the stream
    /// has no leader, at most `timeout`.
    /// - Throws: ``NATSTestServerError`` when no node leads the stream within `timeout`.
    public func leader(
        ofStream stream: String,
        in store: MessageStore,
        timeout: Duration = .seconds(30)
    ) async throws -> NATSTestServer {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var lastError: (any Error)?
        while clock.now < deadline {
            do {
                let description = try await store.streamDescription(named: stream)
                if let leader = description.leader, let server = server(named: leader), server.isRunning {
                    return server
                }
            } catch {
                lastError = error
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw NATSTestServerError(
            message: "no node led stream \(stream) within \(timeout)" + (lastError.map { ": \($0)" } ?? "")
        )
    }
}

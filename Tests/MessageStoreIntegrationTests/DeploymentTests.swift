import Foundation
import MessageStore
import MessageStoreTestSupport
import MessageStoreTesting
import Testing
import Yams

@testable import MessageStore

@Suite("Deployment: docker-compose and a 3-node cluster", .serverRequired)
struct DeploymentTests {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The TLS services' flags, with certificates from scripts/dev-certs.sh, on a local server.
    @Test func composeTLSVariantWorksWithTheScriptsCertificates() async throws {
        let text = try String(contentsOf: Self.root.appendingPathComponent("docker-compose.yml"), encoding: .utf8)
        let document = try #require(try Yams.load(yaml: text) as? [String: Any])
        let services = try #require(document["services"] as? [String: Any])
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dev-certs-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let made = try await ChildProcess.run(
            URL(fileURLWithPath: "/bin/bash"),
            [Self.root.appendingPathComponent("scripts/dev-certs.sh").path, directory.path]
        )
        #expect(made.status == 0, "\(made.stderr)")
        for (name, mutual) in [("nats-tls", false), ("nats-mtls", true)] {
            let service = try #require(services[name] as? [String: Any])
            #expect(service["profiles"] as? [String] == ["tls"])
            #expect((service["volumes"] as? [String])?.contains("./dev-certs:/certs:ro") == true)
            let arguments = try #require(service["command"] as? [String])
                .filter { !$0.hasPrefix("--store_dir") && !$0.hasPrefix("--server_name") && $0 != "--jetstream" }
                .map { $0.replacingOccurrences(of: "/certs/", with: directory.path + "/") }
            try await NATSTestServer.withServer(extraArguments: arguments) { server in
                var configuration = NATSConnection.Configuration(url: "tls://localhost:\(server.port)")
                configuration.reconnect.maxAttempts = 0
                configuration.tls.trustedCertificates = .file(directory.appendingPathComponent("ca.pem").path)
                if mutual {
                    let refused = await #expect(throws: MessageStoreError.self) {
                        try await NATSConnection.connect(configuration, logger: testLogger)
                    }
                    #expect(refused?.code == .tlsFailed)
                    configuration.tls.clientCertificate = .file(directory.appendingPathComponent("client.pem").path)
                    configuration.tls.clientKey = .file(directory.appendingPathComponent("client-key.pem").path)
                }
                let connection = try await NATSConnection.connect(configuration, logger: testLogger)
                let store = try MessageStore(connection: connection, prefix: "dev", createMissingStreams: true)
                try await store.ensureStream("orders")
                #expect(try await store.publish(Counter(value: 1), to: "orders.1").sequence == 1)
                await connection.close()
            }
        }
    }

    @Test func threeNodeClusterKeepsAReplicatedStreamWorkingWhileANodeIsDown() async throws {
        // The compose cluster's layout on loopback: three servers, one cluster, routes to all.
        let cluster = try NATSTestCluster()
        let servers = cluster.servers
        defer { Task { try? await cluster.stop() } }
        try await cluster.start()

        var configuration = NATSConnection.Configuration(servers: servers.map(\.url))
        configuration.reconnect.wait = .milliseconds(100)
        configuration.requestTimeout = .seconds(3)
        let connection = try await NATSConnection.connect(configuration, logger: testLogger)
        let store = try MessageStore(
            connection: connection,
            prefix: uniquePrefix(),
            createMissingStreams: true,
            logger: testLogger
        )

        var options = StreamOptions()
        options.replicas = 3
        // The cluster elects its JetStream leader shortly after starting.
        try await retrying("creating a 3-replica stream") { try await store.ensureStream("orders", options: options) }
        let description = try await store.streamDescription(named: "\(store.prefix)-orders")
        #expect(description.name == "\(store.prefix)-orders")
        let config = try await store.jetStream.streamInfo("\(store.prefix)-orders").config
        #expect(config.numReplicas == 3)

        let handled = Recorder<Int>()
        let worker = try store.subscription(
            to: "orders.>",
            consumer: "cluster-worker",
            handlers: MessageHandlers().handling(Counter.self) { handled.record($0.data.value) }
        )
        try await withRunning(worker) {
            for value in 1...50 {
                try await store.publish(Counter(value: value), to: "orders.\(value)", id: "order-\(value)")
            }
            try await handled.wait(for: "the first 50") { Set($0).isSuperset(of: Set(1...50)) }

            // One node goes away: two of three keep the stream's quorum.
            let stopped = servers[2]
            try await stopped.stop(keepingStore: true)
            for value in 51...100 {
                // A publish during the leader hand-over may time out; the id makes retrying safe.
                try await retrying("publishing \(value) with a node down") {
                    try await store.publish(
                        Counter(value: value),
                        to: "orders.\(value)",
                        id: "order-\(value)",
                        timeout: .seconds(2)
                    )
                }
            }
            try await handled.wait(for: "all 100", timeout: .seconds(60)) { Set($0).isSuperset(of: Set(1...100)) }
            try await stopped.start()
        }
        let stored = try await store.streamDescription(named: "\(store.prefix)-orders")
        #expect(stored.messages == 100)
        await connection.close()
        try await cluster.stop()
    }
}

/// Retries an operation that may fail while a cluster settles, at most 30 seconds.
@discardableResult
func retrying<R>(_ what: String, _ body: () async throws -> R) async throws -> R {
    let deadline = ContinuousClock.now + .seconds(30)
    while true {
        do {
            return try await body()
        } catch {
            guard ContinuousClock.now < deadline else {
                Issue.record("\(what) kept failing: \(error)")
                throw error
            }
            try await Task.sleep(for: .milliseconds(200))
        }
    }
}

import Foundation
import Testing
import Yams

/// The docker-compose file, read as YAML: no server needed.
@Suite("Deployment: docker-compose (unit)")
struct DeploymentTests {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func composeFileDescribesASingleNodeAndAThreeNodeCluster() throws {
        let text = try String(contentsOf: Self.root.appendingPathComponent("docker-compose.yml"), encoding: .utf8)
        let document = try #require(try Yams.load(yaml: text) as? [String: Any])
        let services = try #require(document["services"] as? [String: Any])
        #expect(Set(services.keys) == ["nats", "nats-1", "nats-2", "nats-3", "nats-tls", "nats-mtls"])
        let volumes = try #require(document["volumes"] as? [String: Any?])

        func service(_ name: String) throws -> (command: String, ports: [String], volumes: [String], profiles: [String])
        {
            let service = try #require(services[name] as? [String: Any])
            let command = (service["command"] as? [String] ?? []).joined(separator: " ")
            return (
                command,
                service["ports"] as? [String] ?? [],
                service["volumes"] as? [String] ?? [],
                service["profiles"] as? [String] ?? []
            )
        }

        let single = try service("nats")
        #expect(single.command.contains("--jetstream"))
        #expect(single.command.contains("--store_dir"))
        #expect(single.ports.contains("4222:4222"))
        #expect(single.ports.contains("8222:8222"))
        #expect(single.profiles.isEmpty)
        let singleVolume = try #require(single.volumes.first?.split(separator: ":").first.map(String.init))
        #expect(volumes.keys.contains(singleVolume))

        var clientPorts: Set<String> = []
        for (index, name) in ["nats-1", "nats-2", "nats-3"].enumerated() {
            let node = try service(name)
            #expect(node.profiles == ["cluster"])
            #expect(node.command.contains("--jetstream"))
            #expect(node.command.contains("--server_name=\(name)"))
            #expect(node.command.contains("--cluster_name=message-store"))
            #expect(node.command.contains("--cluster=nats://0.0.0.0:6222"))
            #expect(node.command.contains("--routes=nats://nats-1:6222,nats://nats-2:6222,nats://nats-3:6222"))
            #expect(node.ports.contains("\(4223 + index):4222"))
            clientPorts.insert("\(4223 + index)")
            let volume = try #require(node.volumes.first?.split(separator: ":").first.map(String.init))
            #expect(volumes.keys.contains(volume))
        }
        #expect(clientPorts.count == 3)
    }

}

import Foundation
import MessageStoreTesting
import Testing

@Suite("Test server harness")
struct TestServerTests {
    @Test func aServerWhosePortIsTakenIsNotReportedReady() async throws {
        // Another nats-server with JetStream answers on the port, so a client would find a
        // ready server there; the harness must notice that its own process is not the one.
        try await NATSTestServer.withServer { first in
            let second = try NATSTestServer(port: first.port)
            let error = await #expect(throws: NATSTestServerError.self) {
                try await second.start(timeout: .seconds(5))
            }
            #expect(error?.log.contains("address already in use") == true, "\(String(describing: error))")
            #expect(!second.isRunning)
            try await second.stop()
        }
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/proc/sys/net/ipv4/ip_local_port_range")))
    func freePortsAreBelowTheEphemeralRange() throws {
        // Outgoing connections take their source ports from the ephemeral range, so a port
        // chosen there could be taken before the server binds it.
        let range = try String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)
        let start = try #require(range.split(whereSeparator: \.isWhitespace).first.flatMap { Int($0) })
        for _ in 0..<20 {
            let port = try NATSTestServer.freePort()
            #expect(port >= 10_000 && port < start)
        }
    }
}

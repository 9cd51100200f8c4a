import Foundation
import MessageStoreTesting
import Testing

/// The harness's choice of ports, without starting a server.
@Suite("Test server harness (unit)")
struct TestServerTests {
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

import Foundation
import MessageStoreTestSupport
import MessageStoreTesting
import Testing

@Suite("Test server harness", .serverRequired)
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
}

import MessageStoreTestSupport
import MessageStoreTesting
import Testing

@testable import MessageStore

/// A connection to a port where nothing listens: no server needed.
@Suite("Connection (unit)")
struct ConnectionTests {
    @Test func unreachableServerIsAConnectionError() async throws {
        let port = try NATSTestServer.freePort()
        var configuration = NATSConnection.Configuration(url: "nats://127.0.0.1:\(port)")
        configuration.connectTimeout = .milliseconds(500)
        var caught: MessageStoreError?
        let duration = await elapsed {
            do {
                _ = try await NATSConnection.connect(configuration, logger: testLogger)
            } catch {
                caught = error as? MessageStoreError
            }
        }
        let error = try #require(caught)
        #expect(error.code == .connectionFailed)
        #expect(error.message.contains("127.0.0.1:\(port)"))
        #expect(error.clientStatus != nil)
        #expect(duration < .seconds(5))
    }
}

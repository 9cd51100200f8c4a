import Foundation
import MessageStoreTestSupport
import MessageStoreTesting
import Testing

@testable import MessageStore

/// A key the server does not know is refused at once. (Signing when cnats would drop the
/// signature, against a scripted server, and the credentials file parts are in the unit tests.)
@Suite("Signing for NKey and JWT users", .serverRequired)
struct DroppedSignatureTests {
    @Test func aWrongKeyIsRefusedAtOnce() async throws {
        let user = NKeyPair.generate(.user)
        let other = NKeyPair.generate(.user)
        try await NATSTestServer.withServer(
            configuration: """
                authorization { users: [ { nkey: "\(user.publicKey)" } ] }
                """
        ) { server in
            var configuration = NATSConnection.Configuration(servers: [server.url], environment: .values([:]))
            configuration.authentication = .nkey(seed: other.seed)
            configuration.reconnect.maxAttempts = 0
            let error = await #expect(throws: MessageStoreError.self) {
                try await NATSConnection.connect(configuration, logger: testLogger)
            }
            #expect(error?.code == .authenticationFailed)
            // One refusal in the server's log: a refused signature that was sent is not retried.
            let log = server.logTail(lines: 500)
            #expect(log.components(separatedBy: "authentication error").count - 1 == 1, "\(log)")
        }
    }
}

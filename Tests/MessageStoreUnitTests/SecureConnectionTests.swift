import MessageStoreTesting
import Testing

@testable import MessageStore

/// What needs no server: configuration from the environment, redaction, NKey seeds.
@Suite("Secure connections (unit)")
struct SecureConnectionTests {
    // MARK: Environment

    @Test func environmentDefaultsAsTheNATSCLIReadsThem() {
        let empty = NATSConnection.Configuration(servers: ["nats://h:1"], environment: .values([:]))
        #expect(empty.authentication.description == "none")
        #expect(empty.tls.description == "default")

        let full = NATSConnection.Configuration(
            servers: ["nats://h:1"],
            environment: .values([
                "NATS_CREDS": "/c/user.creds", "NATS_NKEY": "/c/user.nk", "NATS_USER": "u", "NATS_PASSWORD": "p",
                "NATS_TOKEN": "t", "NATS_CA": "/c/ca.pem", "NATS_CERT": "/c/cert.pem", "NATS_KEY": "/c/key.pem",
            ])
        )
        #expect(full.authentication.description == "a credentials file (/c/user.creds)")
        #expect(full.tls.trustedCertificates == .file("/c/ca.pem"))
        #expect(full.tls.clientCertificate == .file("/c/cert.pem"))
        #expect(full.tls.clientKey == .file("/c/key.pem"))

        let nkey = NATSConnection.Configuration(servers: [], environment: .values(["NATS_NKEY": "/c/user.nk"]))
        #expect(nkey.authentication.description == "an NKey seed file (/c/user.nk)")
        let user = NATSConnection.Configuration(
            servers: [],
            environment: .values(["NATS_USER": "u", "NATS_PASSWORD": "p", "NATS_TOKEN": "t"])
        )
        #expect(user.authentication.description == "user u with a password")
        let token = NATSConnection.Configuration(servers: [], environment: .values(["NATS_TOKEN": "t"]))
        #expect(token.authentication.description == "a token")

        // Explicit settings win.
        var explicit = full
        explicit.authentication = .token("mine")
        explicit.tls.trustedCertificates = nil
        #expect(explicit.authentication.description == "a token")
        #expect(explicit.tls.trustedCertificates == nil)
    }

    @Test func redactionOfURLs() {
        #expect(Redaction.url("nats://alice:pw@host:4222") == "nats://***@host:4222")
        #expect(Redaction.url("tls://tok@host:4222/x@y") == "tls://***@host:4222/x@y")
        #expect(Redaction.url("nats://host:4222") == "nats://host:4222")
        #expect(Redaction.url("a:b@host") == "***@host")
        #expect(Redaction.userInfoSecrets(in: ["nats://alice:pw@h"]) == ["alice:pw", "pw"])
    }

    @Test func nkeySeedDecoding() throws {
        let pair = NKeyPair.generate(.user)
        #expect(try NKeySeed(pair.seed).publicKey == pair.publicKey)
        #expect(try NKeySeed("  \(pair.seed)\n").publicKey == pair.publicKey)
        var corrupted = Array(pair.seed)
        corrupted[10] = corrupted[10] == "A" ? "B" : "A"
        #expect(throws: MessageStoreError.self) { try NKeySeed(String(corrupted)) }
        #expect(throws: MessageStoreError.self) { try NKeySeed(pair.publicKey) }
    }
}

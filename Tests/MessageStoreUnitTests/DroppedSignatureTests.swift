import Foundation
import MessageStoreTestSupport
import MessageStoreTesting
import Synchronization
import Testing

@testable import MessageStore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// cnats 3.4 sends no signature when the Ed25519 signature of the server's nonce starts with a
/// zero byte (once in 256 connections), and the server refuses a valid user. A scripted server
/// offers such a nonce first, so the test shows the client connecting again rather than failing.
@Suite("Signing for NKey and JWT users (unit)")
struct DroppedSignatureTests {
    @Test func aSignatureCNATSWouldDropIsRetriedWithANewNonce() async throws {
        let user = NKeyPair.generate(.user)
        // A nonce whose signature starts with zero, then ordinary ones.
        let dropped = try #require((0..<100_000).lazy.map { "nonce\($0)" }.first { user.sign(Array($0.utf8))[0] == 0 })
        let fresh = (0..<100_000).lazy.map { "fresh\($0)" }.filter { user.sign(Array($0.utf8))[0] != 0 }
        let server = try ScriptedAuthServer(nonces: [dropped] + fresh.prefix(8))
        let accepting = Task.detached { server.serve(connections: 3) }

        var configuration = NATSConnection.Configuration(
            servers: ["nats://127.0.0.1:\(server.port)"],
            environment: .values([:])
        )
        configuration.authentication = .nkey(seed: user.seed)
        configuration.reconnect.maxAttempts = 0
        configuration.connectTimeout = .seconds(2)
        let connection = try await NATSConnection.connect(configuration, logger: testLogger)
        await connection.close()
        let seen = await accepting.value

        // The first CONNECT came without a signature, as cnats drops it; then the client
        // connected again (a new nonce) for its main connection, and once for its second one.
        #expect(seen.count == 3)
        #expect(seen.first?.signature == nil)
        for connect in seen.dropFirst() {
            let signature = try #require(connect.signature, "\(connect)")
            #expect(signature == base64URL(user.sign(Array(connect.nonce.utf8))))
        }
    }

    @Test func credentialsFileParts() throws {
        func parts(_ text: String) -> [String?] {
            let bytes = Array(text.utf8)
            return [0, 1].map { CredentialsFile.item($0, in: bytes).map { String(decoding: bytes[$0], as: UTF8.self) } }
        }
        let nsc = """
            -----BEGIN NATS USER JWT-----
            eyJhbGciOi.payload.signature
            ------END NATS USER JWT------

            ************************* IMPORTANT *************************
            NKEY Seed printed below can be used to sign and prove identity.

            -----BEGIN USER NKEY SEED-----
            SUAMSEED
            ------END USER NKEY SEED------
            """
        #expect(parts(nsc) == ["eyJhbGciOi.payload.signature", "SUAMSEED"])
        #expect(
            parts(nsc.replacingOccurrences(of: "\n", with: "\r\n")) == ["eyJhbGciOi.payload.signature", "SUAMSEED"]
        )
        #expect(parts("-----BEGIN NATS USER JWT-----\njwt\n------END NATS USER JWT------\n") == ["jwt", nil])
        #expect(parts("just text") == [nil, nil])
        #expect(parts("") == [nil, nil])
        let seedFile = Array("# a comment\n  SUAMSEED  \n".utf8)
        #expect(
            CredentialsFile.seedLine(in: seedFile).map { String(decoding: seedFile[$0], as: UTF8.self) } == "SUAMSEED"
        )
        #expect(CredentialsFile.seedLine(in: []) == nil)
    }
}

private func base64URL(_ bytes: [UInt8]) -> String {
    Data(bytes).base64EncodedString()
        .replacingOccurrences(of: "+", with: "-")
        .replacingOccurrences(of: "/", with: "_")
        .replacingOccurrences(of: "=", with: "")
}

/// A NATS server just far enough for a client's connect: INFO with the next nonce, reads
/// CONNECT, refuses one without a signature as nats-server does, answers PING with PONG.
private final class ScriptedAuthServer: Sendable {
    struct Connect: Sendable {
        let nonce: String
        let signature: String?
    }

    let port: Int
    private let listener: Int32
    private let nonces: [String]

    init(nonces: [String]) throws {
        self.nonces = nonces
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.listener = listener
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, length) == 0 && listen(listener, 8) == 0 && getsockname(listener, $0, &length) == 0
            }
        }
        guard bound else {
            close(listener)
            throw RawNATSPeer.Failure(description: "cannot listen: \(errno)")
        }
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit {
        close(listener)
    }

    /// Serves `connections` connections, each on a thread of its own until the client closes
    /// it, and returns what each CONNECT carried, in the order they were accepted.
    func serve(connections: Int) -> [Connect] {
        let seen = Mutex<[Int: Connect]>([:])
        let handlers = DispatchGroup()
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(listener, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        for index in 0..<connections {
            let client = accept(listener, nil, nil)
            guard client >= 0 else { break }
            setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            let nonce = nonces[index]
            handlers.enter()
            Thread.detachNewThread {
                defer { handlers.leave() }
                defer { close(client) }
                if let connect = self.handle(client, nonce: nonce) {
                    seen.withLock { $0[index] = connect }
                }
            }
        }
        handlers.wait()
        return seen.withLock { seen in seen.keys.sorted().compactMap { seen[$0] } }
    }

    private func handle(_ client: Int32, nonce: String) -> Connect? {
        write(
            client,
            """
            INFO {"server_id":"scripted","version":"2.9.10","proto":1,"headers":true,"max_payload":1048576,\
            "auth_required":true,"nonce":"\(nonce)"}\r\n
            """
        )
        guard let line = readLine(client), line.hasPrefix("CONNECT ") else { return nil }
        let connect = Connect(nonce: nonce, signature: Self.field("sig", in: line))
        guard connect.signature != nil else {
            write(client, "-ERR 'Authorization Violation'\r\n")
            return connect
        }
        // PING → PONG until the client goes away.
        while let line = readLine(client) {
            if line.hasPrefix("PING") { write(client, "PONG\r\n") }
        }
        return connect
    }

    private static func field(_ name: String, in connect: String) -> String? {
        guard let start = connect.range(of: "\"\(name)\":\"") else { return nil }
        let rest = connect[start.upperBound...]
        guard let end = rest.firstIndex(of: "\"") else { return nil }
        return String(rest[..<end])
    }

    private func write(_ descriptor: Int32, _ text: String) {
        let bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let written = bytes[sent...].withUnsafeBytes {
                send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            guard written > 0 else { return }
            sent += written
        }
    }

    private func readLine(_ descriptor: Int32) -> String? {
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while true {
            guard read(descriptor, &byte, 1) == 1 else { return nil }
            if byte == 10 { return String(decoding: line, as: UTF8.self) }
            if byte != 13 { line.append(byte) }
        }
    }
}

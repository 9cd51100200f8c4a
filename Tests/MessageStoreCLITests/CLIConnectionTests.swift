import Foundation
import MessageStore
import MessageStoreTestSupport
import MessageStoreTesting
import Testing

private func run(_ arguments: [String], environment: [String: String] = [:]) async throws -> ChildProcess.Output {
    // Only what the test gives: no NATS_* variables of the machine running the tests.
    var base = ProcessInfo.processInfo.environment.filter {
        !$0.key.hasPrefix("NATS_") && $0.key != "MESSAGE_STORE_PREFIX"
    }
    base.merge(environment) { $1 }
    return try await ChildProcess.run(CLI.binary, arguments, environment: base)
}

private func lines(_ output: ChildProcess.Output) throws -> [[String: JSONValue]] {
    try output.lines.map(json)
}

@Suite("message-store CLI connections", .serverRequired, .serialized)
struct CLIConnectionTests {
    @Test func connectionOptionsBeforeOrAfterTheSubcommand() async throws {
        try await NATSTestServer.withServer { server in
            let prefix = "cli" + String(UUID().uuidString.prefix(6)).lowercased()
            let added = try await run([
                "--server", server.url, "--prefix", prefix, "stream", "add", "orders", "--replicas", "1", "--json",
            ])
            #expect(added.status == 0, "\(added.stderr)")
            let stream = try #require(try lines(added).first)
            #expect(stream["name"] == .string("\(prefix)-orders"))
            #expect(stream["subjects"] == .array([.string("\(prefix).orders.>")]))

            let published = try await run(
                [
                    "publish", "orders.event.1", "OrderPlaced", #"{"orderId":"1","amount":5}"#, "-s", server.url,
                    "--prefix=\(prefix)",
                ]
            )
            #expect(published.status == 0, "\(published.stderr)")
            #expect(published.stdout.contains("at sequence 1"))

            let mixed = try await run([
                "-s", server.url, "read", "orders.>", "--json", "--prefix", prefix, "--timeout", "3s",
            ])
            #expect(mixed.status == 0, "\(mixed.stderr)")
            #expect(try lines(mixed).first?["type"] == .string("OrderPlaced"))

            let streams = try await run(
                ["--prefix", prefix, "streams", "--json"],
                environment: ["NATS_URL": server.url]
            )
            #expect(streams.status == 0, "\(streams.stderr)")
            let listed = try lines(streams)
            #expect(listed.count == 1)
            #expect(listed.first?["messages"] == .int(1))
            #expect(listed.first?["lastSeq"] == .int(1))

            let consumers = try await run(
                ["consumers", "orders", "--json"],
                environment: ["NATS_URL": server.url, "MESSAGE_STORE_PREFIX": prefix]
            )
            #expect(consumers.status == 0, "\(consumers.stderr)")
            #expect(consumers.stdout.isEmpty)  // no consumers yet: no lines

            let badTimeout = try await run(["--timeout", "soon", "streams", "-s", server.url])
            #expect(badTimeout.status != 0)
            #expect(badTimeout.stderr.contains("--timeout"))
        }
    }

    @Test func versionAndTLSFirst() async throws {
        let version = try await run(["--version"])
        #expect(version.status == 0)
        #expect(!version.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)

        let first = try await run(["--tlsfirst", "streams", "-s", "tls://127.0.0.1:1"])
        #expect(first.status == 1)
        #expect(first.stderr.contains("TLS-first"), "\(first.stderr)")
        #expect(first.stderr.split(separator: "\n").count == 1)
    }

    @Test func credentialsAndMutualTLSFromFlagsAndEnvironment() async throws {
        let certificates = try await TestCertificates.make()
        defer { certificates.remove() }
        let trust = TestOperator()
        let user = trust.user()
        let creds = try TestOperator.writeCredentials(user, in: certificates.directory)
        let configuration = trust.serverConfiguration + "\n" + certificates.serverConfiguration(verifyClients: true)
        try await NATSTestServer.withServer(configuration: configuration) { server in
            let prefix = "cli" + String(UUID().uuidString.prefix(6)).lowercased()
            let flags = [
                "--creds", creds.path, "--tlsca", certificates.caFile, "--tlscert", certificates.clientCertificateFile,
                "--tlskey", certificates.clientKeyFile, "-s", server.url, "--prefix", prefix,
            ]
            let added = try await run(flags + ["stream", "add", "orders"])
            #expect(added.status == 0, "\(added.stderr)")
            let published = try await run(
                ["publish", "orders.event.1", "OrderPlaced", #"{"orderId":"1","amount":5}"#] + flags
            )
            #expect(published.status == 0, "\(published.stderr)")

            // The same from the environment, as the nats CLI reads it.
            let environment = [
                "NATS_URL": server.url, "NATS_CREDS": creds.path, "NATS_CA": certificates.caFile,
                "NATS_CERT": certificates.clientCertificateFile, "NATS_KEY": certificates.clientKeyFile,
                "MESSAGE_STORE_PREFIX": prefix,
            ]
            let last = try await run(["last", "orders.event.1", "--json"], environment: environment)
            #expect(last.status == 0, "\(last.stderr)")
            #expect(try lines(last).first?["seq"] == .int(1))

            // Explicit flags win over the environment: a foreign user's credentials are refused.
            let foreign = try TestOperator.writeCredentials(
                trust.user(signer: NKeyPair.generate(.account)),
                in: certificates.directory,
                name: "foreign.creds"
            )
            let refused = try await run(["streams", "--creds", foreign.path], environment: environment)
            #expect(refused.status == 1)
            #expect(refused.stderr.contains("authenticationFailed"), "\(refused.stderr)")
            #expect(refused.stderr.split(separator: "\n").count == 1)

            var noClientCertificate = environment
            noClientCertificate["NATS_CERT"] = nil
            noClientCertificate["NATS_KEY"] = nil
            let tlsRefused = try await run(["streams"], environment: noClientCertificate)
            #expect(tlsRefused.status == 1)
            #expect(tlsRefused.stderr.contains("tlsFailed"), "\(tlsRefused.stderr)")

            for output in [added, published, last, refused, tlsRefused] {
                #expect(!output.stdout.contains(user.key.seed) && !output.stderr.contains(user.key.seed))
                #expect(!output.stdout.contains(user.jwt) && !output.stderr.contains(user.jwt))
            }
        }
    }

    @Test func passwordsStayOutOfErrors() async throws {
        let password = "pw-\(UUID().uuidString)"
        try await NATSTestServer.withServer(extraArguments: ["--user", "alice", "--pass", password]) { server in
            let wrong = try await run(["streams", "--user", "alice", "--password", password + "x", "-s", server.url])
            #expect(wrong.status == 1)
            #expect(wrong.stderr.contains("authenticationFailed"), "\(wrong.stderr)")
            let inURL = try await run(["streams", "-s", "nats://alice:\(password)x@127.0.0.1:\(server.port)"])
            #expect(inURL.status == 1)
            #expect(inURL.stderr.contains("***@127.0.0.1"), "\(inURL.stderr)")
            for output in [wrong, inURL] {
                #expect(!output.stderr.contains(password), "\(output.stderr)")
            }
            let right = try await run([
                "streams", "--json", "-s", server.url, "--user", "alice", "--password", password,
            ])
            #expect(right.status == 0, "\(right.stderr)")
        }
    }
}

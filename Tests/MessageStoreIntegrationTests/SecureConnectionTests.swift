import Foundation
import Logging
import MessageStoreTestSupport
import MessageStoreTesting
import Synchronization
import Testing

@testable import MessageStore

/// Connects with `configuration`, then publishes, consumes with a durable subscription and
/// reads back, so that every kind of traffic is shown to work under the connection's security.
private func exercise(_ configuration: NATSConnection.Configuration, logger: Logger = testLogger) async throws {
    let connection = try await NATSConnection.connect(configuration, logger: logger)
    do {
        let store = try MessageStore(connection: connection, prefix: uniquePrefix(), createMissingStreams: true)
        try await store.ensureStream("orders")
        #expect(try await store.publish(Counter(value: 1), to: "orders.1").sequence == 1)
        let pipelined = await store.publish(contentsOf: [OutgoingMessage(Counter(value: 2), to: "orders.2")])
        #expect(pipelined.first?.failure == nil)
        let consumed = Recorder<Counter>()
        let worker = try store.subscription(
            to: "orders.>",
            consumer: "worker",
            handlers: MessageHandlers().handling(Counter.self) { consumed.record($0.data) }
        )
        try await withRunning(worker) {
            try await consumed.wait(forCount: 2)
        }
        #expect(consumed.events.map(\.value).sorted() == [1, 2])
        var read: [Int] = []
        for try await message in store.messages(on: "orders.>") {
            read.append(try message.decode(as: Counter.self).value)
        }
        #expect(read == [1, 2])
        #expect(try await store.lastMessage(on: "orders.2")?.sequence == 2)
        await connection.close()
    } catch {
        await connection.close()
        throw error
    }
}

/// Connects with `configuration` and returns the error, failing the test when it connects.
private func refusal(_ configuration: NATSConnection.Configuration, logger: Logger = testLogger) async throws
    -> MessageStoreError
{
    do {
        let connection = try await NATSConnection.connect(configuration, logger: logger)
        await connection.close()
    } catch {
        return error
    }
    Issue.record("connected, but should have been refused")
    throw CancellationError()
}

private func configuration(_ server: NATSTestServer) -> NATSConnection.Configuration {
    var configuration = NATSConnection.Configuration(servers: [server.url], environment: .values([:]))
    configuration.connectTimeout = .seconds(2)
    configuration.reconnect.maxAttempts = 0
    return configuration
}

/// Starts a server whose one user, an NKey, has `permissions` (the server configuration's
/// `permissions` block), and runs `body` with a connection configuration that signs in as it.
private func withLimitedUser<R>(
    permissions: String,
    _ body: (NATSTestServer, NATSConnection.Configuration) async throws -> R
) async throws -> R {
    let user = NKeyPair.generate(.user)
    let serverConfiguration = """
        authorization { users: [ {
          nkey: "\(user.publicKey)"
          permissions: \(permissions)
        } ] }
        """
    return try await NATSTestServer.withServer(configuration: serverConfiguration) { server in
        var limited = configuration(server)
        limited.authentication = .nkey(seed: user.seed)
        return try await body(server, limited)
    }
}

/// A store whose publishes wait 20 seconds, so that a quick failure cannot be a timeout.
private func slowPublishing(prefix: String) -> MessageStore.Configuration {
    var configuration = MessageStore.Configuration(prefix: prefix, createMissingStreams: true)
    configuration.publishTimeout = .seconds(20)
    return configuration
}

private func temporaryDirectory() throws -> URL {
    let directory = FileManager.default.temporaryDirectory
        .appendingPathComponent("message-store-secure-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    return directory
}

@Suite("Secure connections", .serverRequired, .serialized)
struct SecureConnectionTests {
    // MARK: TLS

    @Test func tlsWithAPrivateAuthority() async throws {
        let certificates = try await TestCertificates.make()
        defer { certificates.remove() }
        try await NATSTestServer.withServer(configuration: certificates.serverConfiguration()) { server in
            var secure = configuration(server)
            secure.tls.trustedCertificates = .file(certificates.caFile)
            try await exercise(secure)

            // The same authority as PEM text, and a tls:// URL.
            secure.servers = ["tls://127.0.0.1:\(server.port)"]
            secure.tls.trustedCertificates = .contents(try String(contentsOfFile: certificates.caFile, encoding: .utf8))
            let connection = try await NATSConnection.connect(secure, logger: testLogger)
            #expect(connection.connectedURL == "tls://127.0.0.1:\(server.port)")
            await connection.close()

            // Without the authority: the system's do not know it.
            var untrusted = configuration(server)
            untrusted.tls.required = true
            let unknown = try await refusal(untrusted)
            #expect(unknown.code == .tlsFailed)
            #expect(unknown.message.contains("not signed by a trusted authority"), "\(unknown)")

            // Another authority.
            untrusted.tls.trustedCertificates = .file(certificates.foreignCAFile)
            let foreign = try await refusal(untrusted)
            #expect(foreign.code == .tlsFailed)
            #expect(foreign.message.contains("not signed by a trusted authority"), "\(foreign)")

            // No TLS asked for, but the server requires it.
            let plain = try await refusal(configuration(server))
            // cnats upgrades to TLS when the server requires it, then verifies with the system's
            // authorities, which do not know this one.
            #expect(plain.code == .tlsFailed, "\(plain)")

            // A certificate for another name.
            var elsewhere = secure
            elsewhere.tls.expectedHostname = "elsewhere.example"
            let mismatch = try await refusal(elsewhere)
            #expect(mismatch.code == .tlsFailed)
            #expect(mismatch.message.contains("not for this host name"), "\(mismatch)")

            // Verification off, only when asked for, and then a warning.
            let logs = LogCapture()
            var unverified = configuration(server)
            unverified.tls.skipsVerification = true
            let connectionUnverified = try await NATSConnection.connect(unverified, logger: logs.logger)
            await connectionUnverified.close()
            #expect(logs.lines.contains { $0.level == .warning && $0.message.contains("verification") })
        }
    }

    @Test func tlsWantedButNotOffered() async throws {
        try await NATSTestServer.withServer { server in
            var wanting = configuration(server)
            wanting.tls.required = true
            let error = try await refusal(wanting)
            #expect(error.code == .tlsFailed, "\(error)")
            #expect(error.message.contains("does not offer it"), "\(error)")
        }
    }

    @Test func mutualTLS() async throws {
        let certificates = try await TestCertificates.make()
        defer { certificates.remove() }
        try await NATSTestServer.withServer(configuration: certificates.serverConfiguration(verifyClients: true)) {
            server in
            var secure = configuration(server)
            secure.tls.trustedCertificates = .file(certificates.caFile)
            secure.tls.clientCertificate = .file(certificates.clientCertificateFile)
            secure.tls.clientKey = .file(certificates.clientKeyFile)
            try await exercise(secure)

            // As PEM text.
            var inMemory = secure
            inMemory.tls.clientCertificate = .contents(
                try String(contentsOfFile: certificates.clientCertificateFile, encoding: .utf8)
            )
            inMemory.tls.clientKey = .contents(try String(contentsOfFile: certificates.clientKeyFile, encoding: .utf8))
            let connection = try await NATSConnection.connect(inMemory, logger: testLogger)
            await connection.close()

            var without = secure
            without.tls.clientCertificate = nil
            without.tls.clientKey = nil
            let missing = try await refusal(without)
            #expect(missing.code == .tlsFailed, "\(missing)")

            var foreign = secure
            foreign.tls.clientCertificate = .file(certificates.foreignClientCertificateFile)
            foreign.tls.clientKey = .file(certificates.foreignClientKeyFile)
            let refused = try await refusal(foreign)
            #expect(refused.code == .tlsFailed, "\(refused)")
            #expect(refused.message.contains("client certificate"), "\(refused)")

            var half = secure
            half.tls.clientKey = nil
            #expect(try await refusal(half).code == .invalidConfiguration)

            var absent = secure
            absent.tls.clientKey = .file("/nonexistent/client-key.pem")
            let unreadable = try await refusal(absent)
            #expect(unreadable.code == .invalidConfiguration)
            #expect(unreadable.message.contains("/nonexistent/client-key.pem"))
        }
    }

    @Test func tlsFirstIsRefusedClearly() async throws {
        var configuration = NATSConnection.Configuration(servers: ["tls://127.0.0.1:1"], environment: .values([:]))
        configuration.tls.handshakeFirst = true
        let error = try await refusal(configuration)
        #expect(error.code == .invalidConfiguration)
        #expect(error.message.contains("TLS-first"))
    }

    // MARK: NKeys

    @Test func nkeyUsers() async throws {
        let user = NKeyPair.generate(.user)
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let seedFile = directory.appendingPathComponent("user.nk")
        try (user.seed + "\n").write(to: seedFile, atomically: true, encoding: .utf8)
        let serverConfiguration = """
            authorization { users: [ { nkey: "\(user.publicKey)" } ] }
            """
        try await NATSTestServer.withServer(configuration: serverConfiguration) { server in
            var byFile = configuration(server)
            byFile.authentication = .nkey(seedFile: seedFile.path)
            try await exercise(byFile)

            var byValue = configuration(server)
            byValue.authentication = .nkey(seed: user.seed)
            try await exercise(byValue)

            var wrong = configuration(server)
            wrong.authentication = .nkey(seed: NKeyPair.generate(.user).seed)
            let refused = try await refusal(wrong)
            #expect(refused.code == .authenticationFailed, "\(refused)")
            #expect(refused.message.contains("refused the credentials"))

            var malformed = configuration(server)
            malformed.authentication = .nkey(seed: "SUNOTASEED")
            let invalid = try await refusal(malformed)
            #expect(invalid.code == .invalidConfiguration)
            #expect(!invalid.message.contains("SUNOTASEED"))

            var notUser = configuration(server)
            notUser.authentication = .nkey(seed: NKeyPair.generate(.account).seed)
            #expect(try await refusal(notUser).message.contains("not a user seed"))

            var none = configuration(server)
            none.authentication = .none
            #expect(try await refusal(none).code == .authenticationFailed)
        }
    }

    @Test func deniedPublishFailsAtOnceNamingTheSubject() async throws {
        let prefix = uniquePrefix()
        try await withLimitedUser(permissions: #"{ publish: { deny: ["\#(prefix).orders.secret.>"] } }"#) {
            _,
            allowed in
            let logs = LogCapture()
            let connection = try await NATSConnection.connect(allowed, logger: logs.logger)
            let store = try MessageStore(
                connection: connection,
                configuration: slowPublishing(prefix: prefix),
                logger: testLogger
            )
            try await store.ensureStream("orders")
            var caught: MessageStoreError?
            let duration = await elapsed {
                do {
                    try await store.publish(Counter(value: 1), to: "orders.secret.1")
                } catch {
                    caught = error as? MessageStoreError
                }
            }
            let error = try #require(caught)
            #expect(error.code == .permissionDenied, "\(error)")
            #expect(error.subject == "orders.secret.1")
            #expect(error.message.contains("\(prefix).orders.secret.1"))
            #expect(duration < .seconds(10), "a denied publish waited for its timeout")

            let batch = await store.publish(contentsOf: [
                OutgoingMessage(Counter(value: 2), to: "orders.open.1"),
                OutgoingMessage(Counter(value: 3), to: "orders.secret.2"),
            ])
            #expect(batch[0].failure == nil)
            #expect(batch[1].failure?.code == .permissionDenied)
            #expect(batch[1].failure?.subject == "orders.secret.2")
            // The connection goes on.
            #expect(try await store.publish(Counter(value: 4), to: "orders.open.2").sequence == 2)
            #expect(logs.lines.contains { $0.level == .error && $0.message.contains("\(prefix).orders.secret.1") })
            await connection.close()
        }
    }

    @Test func deniedJetStreamRequestSaysSo() async throws {
        try await withLimitedUser(permissions: #"{ publish: { deny: ["$JS.API.STREAM.CREATE.>"] } }"#) { _, user in
            var limited = user
            limited.requestTimeout = .seconds(20)
            let connection = try await NATSConnection.connect(limited, logger: testLogger)
            let store = try MessageStore(connection: connection, prefix: uniquePrefix(), createMissingStreams: true)
            var caught: (any Error)?
            let duration = await elapsed {
                do { try await store.ensureStream("orders") } catch { caught = error }
            }
            let error = caught as? MessageStoreError
            #expect(error?.code == .permissionDenied, "\(String(describing: caught))")
            #expect(error?.message.contains("$JS.API.STREAM.CREATE.") == true)
            #expect(duration < .seconds(10), "a denied request waited for its timeout")
            // The connection goes on: a request the user may make still works.
            #expect(try await store.streams().isEmpty)
            await connection.close()
        }
    }

    /// The counts of runs are sent without waiting for the server: when it refuses them, the
    /// worker still runs, retries and acknowledges its messages, and says what it could not record.
    @Test func aWorkerWhoseAttemptCountsAreRefusedStillRetriesAndHandles() async throws {
        try await withLimitedUser(permissions: #"{ publish: { deny: ["$KV.>"] } }"#) { _, limited in
            let logs = LogCapture()
            let connection = try await NATSConnection.connect(limited, logger: testLogger)
            let store = try MessageStore(
                connection: connection,
                configuration: MessageStore.Configuration(prefix: uniquePrefix(), createMissingStreams: true),
                logger: logs.logger
            )
            try await store.ensureStream("jobs")
            let runs = Recorder<Int>()
            var subscription = Subscription.Configuration()
            subscription.retrySchedule = .fixed(.milliseconds(50))
            subscription.deadLetterSubject = "dlq"
            let worker = try store.subscription(
                to: "jobs.>",
                consumer: "unrecorded",
                handlers: MessageHandlers().handling(Counter.self) { message in
                    runs.record(message.attempt)
                    if runs.events.count < 3 { throw HandlerFailure() }
                },
                configuration: subscription
            )
            try await store.publish(Counter(value: 1), to: "jobs.1")
            try await withRunning(worker) {
                try await runs.wait(forCount: 3)
                try await waitUntil("acknowledged") {
                    try await store.consumerInfo("unrecorded", category: "jobs").numAckPending == 0
                }
            }
            // Never more attempts counted than runs: a count that did not reach the bucket is lost.
            #expect(runs.events.count == 3)
            #expect(zip(runs.events, 1...).allSatisfy { $0 <= $1 }, "attempts: \(runs.events)")
            #expect(try await store.lastMessageRaw(on: "dlq.jobs.1") == nil)
            let info = try await store.consumerInfo("unrecorded", category: "jobs")
            #expect(info.numPending == 0)
            #expect(logs.lines.contains { $0.level == .warning && $0.message.contains("could not record") })
            await connection.close()
        }
    }

    // MARK: Inbox prefix and JetStream domain

    @Test func customInboxPrefixForEveryInbox() async throws {
        try await withLimitedUser(permissions: #"{ subscribe: { allow: ["_APP_INBOX.>"] } }"#) { server, user in
            var prefixed = user
            prefixed.inboxPrefix = "_APP_INBOX"
            let connection = try await NATSConnection.connect(prefixed, logger: testLogger)
            let store = try MessageStore(connection: connection, prefix: uniquePrefix(), createMissingStreams: true)
            try await store.ensureStream("orders")
            #expect(try await store.publish(Counter(value: 1), to: "orders.1").sequence == 1)
            let batch = await store.publish(contentsOf: [OutgoingMessage(Counter(value: 2), to: "orders.2")])
            #expect(batch.first?.failure == nil)
            #expect(try await store.lastMessage(on: "orders.2")?.sequence == 2)
            await connection.close()

            // With NATS's _INBOX the server refuses the acknowledgement inbox: a clear error, soon.
            var plain = prefixed
            plain.inboxPrefix = nil
            plain.requestTimeout = .seconds(2)
            let plainConnection = try await NATSConnection.connect(plain, logger: testLogger)
            let plainStore = try MessageStore(
                connection: plainConnection,
                configuration: slowPublishing(prefix: uniquePrefix()),
                logger: testLogger
            )
            var caught: MessageStoreError?
            let duration = await elapsed {
                do {
                    try await plainStore.publish(Counter(value: 1), to: "orders.1")
                } catch {
                    caught = error as? MessageStoreError
                }
            }
            #expect(caught?.code == .permissionDenied, "\(String(describing: caught))")
            #expect(caught?.message.contains("inbox prefix") == true)
            #expect(duration < .seconds(10))
            await plainConnection.close()

            var invalid = prefixed
            invalid.inboxPrefix = "bad.>"
            #expect(try await refusal(invalid).code == .invalidConfiguration)
        }
    }

    @Test func jetStreamDomain() async throws {
        try await NATSTestServer.withServer(configuration: "jetstream { domain: hub }") { server in
            var inDomain = configuration(server)
            inDomain.jetStream.domain = "hub"
            try await exercise(inDomain)

            var elsewhere = configuration(server)
            elsewhere.jetStream.domain = "nowhere"
            elsewhere.requestTimeout = .seconds(2)
            let connection = try await NATSConnection.connect(elsewhere, logger: testLogger)
            let store = try MessageStore(connection: connection, prefix: uniquePrefix(), createMissingStreams: true)
            let error = await #expect(throws: MessageStoreError.self) { try await store.ensureStream("orders") }
            #expect(error?.code == .noResponders || error?.code == .timedOut)
            await connection.close()

            var both = configuration(server)
            both.jetStream = .init(domain: "hub", apiPrefix: "$JS.hub.API")
            #expect(try await refusal(both).code == .invalidConfiguration)
        }
    }

    // MARK: Operator mode

    @Test func jwtCredentials() async throws {
        let trust = TestOperator()
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try await NATSTestServer.withServer(configuration: trust.serverConfiguration) { server in
            let creds = try TestOperator.writeCredentials(trust.user(), in: directory)
            var valid = configuration(server)
            valid.authentication = .credentials(file: creds.path)
            do {
                try await exercise(valid)
            } catch {
                Issue.record("\(error)\n--- server log ---\n\(server.logTail())")
                throw error
            }

            let expired = try TestOperator.writeCredentials(
                trust.user(expires: Date().addingTimeInterval(-60)),
                in: directory,
                name: "expired.creds"
            )
            var late = configuration(server)
            late.authentication = .credentials(file: expired.path)
            let expiredError = try await refusal(late)
            #expect(expiredError.code == .authenticationFailed, "\(expiredError)")

            let foreignAccount = NKeyPair.generate(.account)
            let foreign = try TestOperator.writeCredentials(
                trust.user(signer: foreignAccount),
                in: directory,
                name: "foreign.creds"
            )
            var stranger = configuration(server)
            stranger.authentication = .credentials(file: foreign.path)
            let foreignError = try await refusal(stranger)
            #expect(foreignError.code == .authenticationFailed, "\(foreignError)")

            var missing = configuration(server)
            missing.authentication = .credentials(file: directory.appendingPathComponent("none.creds").path)
            let missingError = try await refusal(missing)
            #expect(missingError.code == .invalidConfiguration)
            #expect(missingError.message.contains("none.creds"))
        }
    }

    // MARK: Secrets

    @Test func secretsNeverAppearInWhatTheLibraryPrintsOrThrows() async throws {
        let user = NKeyPair.generate(.user)
        let trust = TestOperator()
        let credsUser = trust.user()
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let creds = try TestOperator.writeCredentials(credsUser, in: directory)
        let password = "pw-\(UUID().uuidString)"
        let token = "tok-\(UUID().uuidString)"
        let secrets = [password, token, user.seed, credsUser.key.seed, credsUser.jwt]
        var seen: [String] = []
        let logs = LogCapture()

        func attempt(_ configuration: NATSConnection.Configuration) async {
            seen.append(configuration.description)
            var dumped = ""
            dump(configuration, to: &dumped)
            seen.append(dumped)
            do {
                let connection = try await NATSConnection.connect(configuration, logger: logs.logger)
                seen.append(connection.connectedURL ?? "")
                let store = try MessageStore(connection: connection, prefix: uniquePrefix(), createMissingStreams: true)
                do {
                    try await store.ensureStream("orders")
                    try await store.publish(Counter(value: 1), to: "orders.1")
                } catch {
                    seen.append("\(error)")
                }
                await connection.close()
            } catch {
                seen.append("\(error)")
                seen.append(error.message)
            }
        }

        let passwordServer = try NATSTestServer(extraArguments: ["--user", "alice", "--pass", password])
        try await passwordServer.start()
        for url in [
            "nats://alice:\(password)@127.0.0.1:\(passwordServer.port)",
            "nats://alice:\(password)x@127.0.0.1:\(passwordServer.port)",
        ] {
            var configuration = NATSConnection.Configuration(servers: [url], environment: .values([:]))
            configuration.reconnect.maxAttempts = 0
            await attempt(configuration)
        }
        var explicit = configuration(passwordServer)
        explicit.authentication = .userPassword(user: "alice", password: password)
        await attempt(explicit)
        explicit.authentication = .userPassword(user: "alice", password: password + "x")
        await attempt(explicit)
        // The server goes away while connected: the disconnect is logged.
        var reconnecting = NATSConnection.Configuration(
            servers: ["nats://alice:\(password)@127.0.0.1:\(passwordServer.port)"],
            environment: .values([:])
        )
        reconnecting.reconnect.wait = .milliseconds(50)
        let connection = try await NATSConnection.connect(reconnecting, logger: logs.logger)
        try await passwordServer.restart()
        try await waitUntil("reconnected") { logs.lines.contains { $0.message.contains("reconnected") } }
        seen.append(connection.connectedURL ?? "")
        await connection.close()
        try await passwordServer.stop()

        try await NATSTestServer.withServer(extraArguments: ["--auth", token]) { server in
            var configuration = NATSConnection.Configuration(
                servers: ["nats://\(token)@127.0.0.1:\(server.port)"],
                environment: .values([:])
            )
            configuration.reconnect.maxAttempts = 0
            await attempt(configuration)
            var explicit = NATSConnection.Configuration(servers: [server.url], environment: .values([:]))
            explicit.authentication = .token(token + "x")
            explicit.reconnect.maxAttempts = 0
            await attempt(explicit)
        }

        let nkeyServer = """
            authorization { users: [ { nkey: "\(user.publicKey)" } ] }
            """
        try await NATSTestServer.withServer(configuration: nkeyServer) { server in
            var good = configuration(server)
            good.authentication = .nkey(seed: user.seed)
            await attempt(good)
            var wrong = configuration(server)
            wrong.authentication = .nkey(seed: "  \(user.seed)x")
            await attempt(wrong)
        }

        try await NATSTestServer.withServer(configuration: trust.serverConfiguration) { server in
            var good = configuration(server)
            good.authentication = .credentials(file: creds.path)
            await attempt(good)
        }

        seen += logs.lines.map { "\($0.level) \($0.message) \($0.metadata)" }
        #expect(seen.contains { $0.contains("***@127.0.0.1") }, "user info is shown redacted")
        #expect(logs.lines.contains { $0.message.contains("disconnected") })
        for secret in secrets {
            let leaks = seen.filter { $0.contains(secret) }
            #expect(leaks.isEmpty, "a secret appeared: \(leaks)")
        }
    }

    @Test func connectionNamesCannotForgeTheConnectMessage() async throws {
        try await NATSTestServer.withServer(extraArguments: ["--user", "alice", "--pass", "s3cret"]) { server in
            var forged = configuration(server)
            forged.name = #"x","user":"alice","pass":"s3cret"#
            let error = try await refusal(forged)
            #expect(error.code == .invalidConfiguration)
            #expect(error.message.contains("quote"))
            #expect(!error.message.contains("s3cret"))

            var named = configuration(server)
            named.name = "billing worker #1 (ünïcode)"
            named.authentication = .userPassword(user: "alice", password: "s3cret")
            let connection = try await NATSConnection.connect(named, logger: testLogger)
            await connection.close()
        }
    }
}

/// Collects what a logger was told, for assertions on log lines.
final class LogCapture: Sendable {
    struct Line: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: String
    }

    private let storage = Mutex<[Line]>([])

    var lines: [Line] { storage.withLock { $0 } }

    var logger: Logger {
        var logger = Logger(label: "capture") { _ in Handler(capture: self) }
        logger.logLevel = .trace
        return logger
    }

    func append(_ line: Line) {
        storage.withLock { $0.append(line) }
    }

    struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let all = self.metadata.merging(event.metadata ?? [:]) { $1 }
            let error = event.error.map { " error: \($0)" } ?? ""
            capture.append(Line(level: event.level, message: "\(event.message)", metadata: "\(all)\(error)"))
        }
    }
}

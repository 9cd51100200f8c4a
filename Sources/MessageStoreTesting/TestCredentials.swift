public import Foundation
import MessageStore

/// An NKey pair made for a test: an Ed25519 key with NATS's encoding (`SU…` seed, `U…` public key).
///
/// ```swift
/// let user = NKeyPair.generate(.user)
/// let server = try NATSTestServer(configuration: """
///     authorization { users: [ { nkey: "\(user.publicKey)" } ] }
///     """)
/// ```
public struct NKeyPair: Sendable {
    /// What the key is for; the first letter of its public key.
    public enum Kind: UInt8, Sendable {
        /// `O…`: signs account JWTs.
        case `operator` = 112  // 14 << 3
        /// `A…`: signs user JWTs.
        case account = 0
        /// `U…`: a user.
        case user = 160  // 20 << 3
    }

    /// The seed, such as `SUAM…`; a secret.
    public let seed: String
    /// The public key, such as `UDXU…`.
    public let publicKey: String
    /// The Ed25519 private key: 32 random bytes.
    private let privateKey: [UInt8]

    /// A new random key of `kind`.
    public static func generate(_ kind: Kind) -> NKeyPair {
        // The system's generator is cryptographically secure on every platform Swift runs on.
        var random = SystemRandomNumberGenerator()
        return NKeyPair(kind: kind, privateKey: (0..<Ed25519.keyLength).map { _ in random.next() })
    }

    private init(kind: Kind, privateKey: [UInt8]) {
        self.privateKey = privateKey
        let prefix = kind.rawValue
        seed = Self.encode([18 << 3 | prefix >> 5, (prefix & 31) << 3] + privateKey)
        // Any 32 bytes are an Ed25519 private key, so this always has a public key.
        publicKey = Self.encode([prefix] + (Ed25519.publicKey(of: privateKey[...]) ?? []))
    }

    /// The Ed25519 signature of `bytes`.
    public func sign(_ bytes: [UInt8]) -> [UInt8] {
        // Only fails for a key of the wrong length, which a generated key never has.
        Ed25519.sign(bytes, with: privateKey[...]) ?? []
    }

    /// Base32 (no padding) of `bytes` followed by their CRC-16/XMODEM, little-endian.
    private static func encode(_ bytes: [UInt8]) -> String {
        Base32.encodeWithChecksum(bytes)
    }
}

/// An operator, an account with JetStream and the means to issue user credentials, for a
/// server in operator mode (decentralised JWT authentication), all made at test time.
///
/// ```swift
/// let trust = TestOperator()
/// try await NATSTestServer.withServer(configuration: trust.serverConfiguration) { server in
///     let creds = try trust.writeCredentials(for: trust.user(), in: directory)
///     var configuration = NATSConnection.Configuration(url: server.url)
///     configuration.authentication = .credentials(file: creds.path)
///     …
/// }
/// ```
public struct TestOperator: Sendable {
    /// The operator's key.
    public let operatorKey = NKeyPair.generate(.operator)
    /// The account's key.
    public let accountKey = NKeyPair.generate(.account)
    /// The system account's key (JetStream in operator mode needs a system account).
    public let systemAccountKey = NKeyPair.generate(.account)

    /// Creates an operator and an account.
    public init() {}

    /// The operator JWT, signed by itself.
    public var operatorJWT: String {
        Self.jwt(
            issuer: operatorKey,
            subject: operatorKey.publicKey,
            name: "message-store-test-operator",
            nats: ["type": "operator", "version": 2]
        )
    }

    /// The account JWT, signed by the operator, with JetStream and no other limits.
    public var accountJWT: String {
        Self.jwt(
            issuer: operatorKey,
            subject: accountKey.publicKey,
            name: "message-store-test-account",
            nats: [
                "type": "account", "version": 2,
                "limits": [
                    "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1, "wildcards": true,
                    "conn": -1, "leaf": -1, "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1,
                ] as [String: any Sendable],
            ]
        )
    }

    /// The system account JWT, signed by the operator.
    public var systemAccountJWT: String {
        Self.jwt(
            issuer: operatorKey,
            subject: systemAccountKey.publicKey,
            name: "SYS",
            nats: ["type": "account", "version": 2]
        )
    }

    /// The server configuration: this operator, the account and the system account preloaded
    /// in a memory resolver.
    public var serverConfiguration: String {
        """
        operator: "\(operatorJWT)"
        system_account: \(systemAccountKey.publicKey)
        resolver: MEMORY
        resolver_preload: {
          \(accountKey.publicKey): "\(accountJWT)"
          \(systemAccountKey.publicKey): "\(systemAccountJWT)"
        }
        """
    }

    /// A user JWT and its key, signed by this operator's account (or by `signer`, to make one
    /// that the server must refuse).
    /// - Parameters:
    ///   - name: The user's name. Defaults to `test-user`.
    ///   - expires: When the JWT expires. Defaults to never.
    ///   - deniedPublish: Subjects the user may not publish to. Defaults to none.
    ///   - signer: The account key that signs. Defaults to this operator's account.
    public func user(
        name: String = "test-user",
        expires: Date? = nil,
        deniedPublish: [String] = [],
        signer: NKeyPair? = nil
    ) -> (jwt: String, key: NKeyPair) {
        let key = NKeyPair.generate(.user)
        var nats: [String: any Sendable] = ["type": "user", "version": 2, "subs": -1, "data": -1, "payload": -1]
        if !deniedPublish.isEmpty {
            nats["pub"] = ["deny": deniedPublish] as [String: any Sendable]
        }
        let jwt = Self.jwt(
            issuer: signer ?? accountKey,
            subject: key.publicKey,
            name: name,
            expires: expires,
            nats: nats
        )
        return (jwt, key)
    }

    /// The text of a `.creds` file for `user`, as `nsc` writes it.
    public static func credentials(_ user: (jwt: String, key: NKeyPair)) -> String {
        """
        -----BEGIN NATS USER JWT-----
        \(user.jwt)
        ------END NATS USER JWT------

        ************************* IMPORTANT *************************
        NKEY Seed printed below can be used to sign and prove identity.
        NKEYs are sensitive and should be treated as secrets.

        -----BEGIN USER NKEY SEED-----
        \(user.key.seed)
        ------END USER NKEY SEED------

        *************************************************************

        """
    }

    /// Writes the `.creds` file of `user` into `directory` and returns its URL.
    public static func writeCredentials(
        _ user: (jwt: String, key: NKeyPair),
        in directory: URL,
        name: String = "user.creds"
    ) throws -> URL {
        let url = directory.appendingPathComponent(name)
        try credentials(user).write(to: url, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: url.path)
        return url
    }

    private static func jwt(
        issuer: NKeyPair,
        subject: String,
        name: String,
        expires: Date? = nil,
        nats: [String: any Sendable]
    ) -> String {
        var claims: [String: Any] = [
            "jti": UUID().uuidString.replacingOccurrences(of: "-", with: ""),
            "iat": Int(Date().timeIntervalSince1970) - 60,
            "iss": issuer.publicKey,
            "sub": subject,
            "name": name,
            "nats": nats,
        ]
        if let expires { claims["exp"] = Int(expires.timeIntervalSince1970) }
        let header = base64URL(Data(#"{"typ":"JWT","alg":"ed25519-nkey"}"#.utf8))
        // Only fails for values JSONSerialization cannot hold, and these are strings and numbers.
        let body = base64URL((try? JSONSerialization.data(withJSONObject: claims, options: [.sortedKeys])) ?? Data())
        let signature = base64URL(Data(issuer.sign(Array("\(header).\(body)".utf8))))
        return "\(header).\(body).\(signature)"
    }

    private static func base64URL(_ data: Data) -> String {
        data.base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}

/// A certificate authority and certificates signed by it, made with `openssl` at test time, for
/// servers with TLS and mutual TLS. Nothing is committed: each test run makes its own.
///
/// ```swift
/// let certificates = try await TestCertificates.make()
/// try await NATSTestServer.withServer(configuration: certificates.serverConfiguration(verifyClients: true)) { … }
/// ```
public struct TestCertificates: Sendable {
    /// Where the files are.
    public let directory: URL
    /// The authority's certificate (PEM), to trust.
    public var caFile: String { path("ca.pem") }
    /// The server's certificate, for `localhost` and `127.0.0.1`.
    public var serverCertificateFile: String { path("server.pem") }
    /// The server's private key.
    public var serverKeyFile: String { path("server-key.pem") }
    /// A client certificate signed by the authority.
    public var clientCertificateFile: String { path("client.pem") }
    /// Its private key.
    public var clientKeyFile: String { path("client-key.pem") }
    /// Another authority's certificate, which signed neither the server's nor the client's.
    public var foreignCAFile: String { path("foreign-ca.pem") }
    /// A client certificate signed by the other authority, which the server must refuse.
    public var foreignClientCertificateFile: String { path("foreign-client.pem") }
    /// Its private key.
    public var foreignClientKeyFile: String { path("foreign-client-key.pem") }

    private func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// The `tls { … }` block of a server with these certificates; `verifyClients` turns on
    /// mutual TLS (`verify: true`).
    public func serverConfiguration(verifyClients: Bool = false) -> String {
        """
        tls {
          cert_file: "\(serverCertificateFile)"
          key_file: "\(serverKeyFile)"
          ca_file: "\(caFile)"
          verify: \(verifyClients)
          timeout: 2
        }
        """
    }

    /// Makes the authorities, keys and certificates with `openssl` in `directory` (a new
    /// temporary directory by default).
    /// - Parameter openssl: The `openssl` binary. Defaults to `/usr/bin/openssl`, else the first on `PATH`.
    public static func make(in directory: URL? = nil, openssl: String? = nil) async throws -> TestCertificates {
        let directory =
            directory
            ?? FileManager.default.temporaryDirectory.appendingPathComponent(
                "message-store-certs-\(UUID().uuidString)",
                isDirectory: true
            )
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let certificates = TestCertificates(directory: directory)
        let tool = URL(fileURLWithPath: try openssl ?? findOpenSSL())
        func write(_ name: String, _ text: String) throws {
            try text.write(to: directory.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        func run(_ arguments: [String]) async throws {
            let output = try await ChildProcess.run(tool, arguments)
            guard output.status == 0 else {
                throw NATSTestServerError(
                    message: "openssl \(arguments.joined(separator: " ")) failed: \(output.stderr)"
                )
            }
        }
        let key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        for authority in ["ca", "foreign-ca"] {
            try write(
                "\(authority).cnf",
                """
                [req]
                distinguished_name = dn
                prompt = no
                [dn]
                CN = message-store test \(authority)
                [ext]
                basicConstraints = critical,CA:TRUE
                keyUsage = critical,keyCertSign,cRLSign
                subjectKeyIdentifier = hash

                """
            )
            try await run(
                ["req", "-x509", "-new"] + key + [
                    "-keyout", certificates.path("\(authority)-key.pem"), "-out", certificates.path("\(authority).pem"),
                    "-days", "2", "-config", certificates.path("\(authority).cnf"), "-extensions", "ext",
                ]
            )
        }
        let leaves = [
            ("server", "ca", "serverAuth", "subjectAltName = DNS:localhost,IP:127.0.0.1\n"),
            ("client", "ca", "clientAuth", ""),
            ("foreign-client", "foreign-ca", "clientAuth", ""),
        ]
        for (name, authority, usage, alternativeNames) in leaves {
            try write(
                "\(name).ext",
                """
                basicConstraints = CA:FALSE
                keyUsage = critical,digitalSignature,keyEncipherment
                extendedKeyUsage = \(usage)
                \(alternativeNames)
                """
            )
            try await run(
                ["req", "-new"] + key + [
                    "-keyout", certificates.path("\(name)-key.pem"), "-out", certificates.path("\(name).csr"),
                    "-subj", "/CN=\(name == "server" ? "localhost" : "message-store-\(name)")",
                ]
            )
            try await run([
                "x509", "-req", "-in", certificates.path("\(name).csr"), "-CA", certificates.path("\(authority).pem"),
                "-CAkey", certificates.path("\(authority)-key.pem"), "-CAcreateserial", "-days", "2",
                "-out", certificates.path("\(name).pem"), "-extfile", certificates.path("\(name).ext"),
            ])
        }
        return certificates
    }

    private static func findOpenSSL() throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in ["/usr/bin"] + path.split(separator: ":").map(String.init) {
            let candidate = "\(directory)/openssl"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw NATSTestServerError(message: "openssl not found: install it (apt-get install openssl)")
    }

    /// Removes the files.
    public func remove() {
        try? FileManager.default.removeItem(at: directory)
    }
}

extension NATSTestServer {
    /// Prepares a server that also reads `configuration` (nats-server's configuration
    /// syntax: `tls { … }`, `authorization { … }`, operator mode), written to a file beside its store.
    public convenience init(configuration: String, executable: String? = nil, extraArguments: [String] = []) throws {
        let file = FileManager.default.temporaryDirectory
            .appendingPathComponent("message-store-server-\(UUID().uuidString).conf")
        try configuration.write(to: file, atomically: true, encoding: .utf8)
        try self.init(executable: executable, extraArguments: ["--config", file.path] + extraArguments)
    }

    /// Starts a server that also reads `configuration`, runs `body`, and stops the server.
    public static func withServer<Result>(
        configuration: String,
        executable: String? = nil,
        extraArguments: [String] = [],
        _ body: (NATSTestServer) async throws -> Result
    ) async throws -> Result {
        try await NATSTestServer(configuration: configuration, executable: executable, extraArguments: extraArguments)
            .running(body)
    }
}

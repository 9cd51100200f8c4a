#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

extension NATSConnection.Configuration {
    /// Credentials to present to the server.
    ///
    /// Its description names the method and never the secret: `print(configuration)` and
    /// `dump(configuration)` are safe to log.
    public struct Authentication: Sendable, CustomStringConvertible, CustomReflectable {
        enum Method: Sendable {
            case none
            case userPassword(String, String)
            case token(String)
            case nkeySeedFile(String)
            case nkeySeed(String)
            case credentialsFile(String)
        }

        let method: Method

        /// No credentials beyond any in the server URL.
        public static let none = Authentication(method: .none)

        /// A user name and password.
        public static func userPassword(user: String, password: String) -> Authentication {
            Authentication(method: .userPassword(user, password))
        }

        /// An authentication token.
        public static func token(_ token: String) -> Authentication {
            Authentication(method: .token(token))
        }

        /// An NKey user: the file holding the user's seed (`SU…`), as `nsc` or `nk -gen user`
        /// writes it. The public key is derived from the seed; the seed signs the server's nonce.
        public static func nkey(seedFile path: String) -> Authentication {
            Authentication(method: .nkeySeedFile(path))
        }

        /// An NKey user, by the seed itself (`SU…`), say from a secret store.
        public static func nkey(seed: String) -> Authentication {
            Authentication(method: .nkeySeed(seed))
        }

        /// A user JWT and its NKey seed in one credentials file (`.creds`), as `nsc` and hosted
        /// NATS services issue them (operator mode, decentralised authentication).
        public static func credentials(file path: String) -> Authentication {
            Authentication(method: .credentialsFile(path))
        }

        /// The credentials the environment names, as the `nats` CLI reads them: `NATS_CREDS` (a
        /// credentials file), else `NATS_NKEY` (a seed file), else `NATS_USER` with
        /// `NATS_PASSWORD`, else `NATS_TOKEN`; ``none`` when none is set.
        public static var fromEnvironment: Authentication {
            from(Environment.process)
        }

        static func from(_ environment: Environment) -> Authentication {
            if let path = environment["NATS_CREDS"] { return .credentials(file: path) }
            if let path = environment["NATS_NKEY"] { return .nkey(seedFile: path) }
            if let user = environment["NATS_USER"] {
                return .userPassword(user: user, password: environment["NATS_PASSWORD"] ?? "")
            }
            if let token = environment["NATS_TOKEN"] { return .token(token) }
            return .none
        }

        /// The method, and the user name or file path where there is one; never a secret.
        public var description: String {
            switch method {
            case .none: "none"
            case .userPassword(let user, _): "user \(user) with a password"
            case .token: "a token"
            case .nkeySeedFile(let path): "an NKey seed file (\(path))"
            case .nkeySeed: "an NKey seed"
            case .credentialsFile(let path): "a credentials file (\(path))"
            }
        }

        /// Shows the description only, so that `dump` does not reveal the secret.
        public var customMirror: Mirror {
            Mirror(self, children: ["method": description], displayStyle: .struct)
        }

        /// The secrets in this method, to scrub from texts that come back from the C client.
        var secrets: [String] {
            switch method {
            case .none, .nkeySeedFile, .credentialsFile: []
            case .userPassword(_, let password): [password]
            case .token(let token): [token]
            case .nkeySeed(let seed): [seed]
            }
        }
    }

    /// How to secure the connection with TLS.
    ///
    /// TLS is on when a URL says `tls://`, when any setting here is given, or when the server
    /// requires it. The server's certificate is verified against ``trustedCertificates`` (or the
    /// system's authorities) and its name against the URL's host (or ``expectedHostname``).
    public struct TLS: Sendable, CustomStringConvertible {
        /// A PEM document: a file, or the text itself.
        public enum PEM: Sendable, Hashable, CustomStringConvertible, CustomReflectable {
            /// A file holding PEM text.
            case file(String)
            /// PEM text, such as `-----BEGIN CERTIFICATE-----…`.
            case contents(String)

            /// The file path, or the size of the text (a key's text is a secret).
            public var description: String {
                switch self {
                case .file(let path): "file \(path)"
                case .contents(let text): "PEM text (\(text.utf8.count) bytes)"
                }
            }

            /// Shows the description only, so that `dump` does not reveal a key.
            public var customMirror: Mirror {
                Mirror(self, children: ["pem": description], displayStyle: .enum)
            }
        }

        /// Whether to use TLS even when no URL says `tls://` and nothing else here is set.
        /// Defaults to false.
        public var required = false
        /// The certificate authorities that sign the server's certificate (`--tlsca`). Defaults
        /// to nil: the system's.
        public var trustedCertificates: PEM?
        /// The client certificate (chain) for mutual TLS (`--tlscert`). Defaults to nil.
        public var clientCertificate: PEM?
        /// The private key of ``clientCertificate`` (`--tlskey`). Defaults to nil.
        public var clientKey: PEM?
        /// The name the server's certificate must carry, when it differs from the URL's host
        /// (say, connecting by IP address). Defaults to nil: the URL's host.
        public var expectedHostname: String?
        /// Whether to start TLS before the server's INFO (servers 2.10.4+ with
        /// `handshake_first`). Defaults to false. The NATS C client this library is built on
        /// (cnats 3.4.1) has no such option: `true` makes connecting fail with
        /// ``MessageStoreError/Code/invalidConfiguration``.
        public var handshakeFirst = false
        /// Whether to accept any server certificate, unverified. Defaults to false. Only for a
        /// test set-up: anyone between client and server can read and change the traffic. Each
        /// connect logs a warning while it is on.
        public var skipsVerification = false

        /// Creates settings with nothing set: TLS only when a URL or the server asks for it.
        public init() {}

        /// The settings the environment names, as the `nats` CLI reads them: `NATS_CA` (trusted
        /// certificates file), `NATS_CERT` and `NATS_KEY` (client certificate and key files).
        public static var fromEnvironment: TLS {
            from(Environment.process)
        }

        static func from(_ environment: Environment) -> TLS {
            var tls = TLS()
            tls.trustedCertificates = environment["NATS_CA"].map(PEM.file)
            tls.clientCertificate = environment["NATS_CERT"].map(PEM.file)
            tls.clientKey = environment["NATS_KEY"].map(PEM.file)
            return tls
        }

        /// Whether any setting asks for TLS.
        var isRequested: Bool {
            required || trustedCertificates != nil || clientCertificate != nil || clientKey != nil
                || expectedHostname != nil || handshakeFirst || skipsVerification
        }

        /// The settings given, with file paths but never a key's text.
        public var description: String {
            var parts: [String] = []
            if required { parts.append("required") }
            if let trustedCertificates { parts.append("trusted certificates: \(trustedCertificates)") }
            if let clientCertificate { parts.append("client certificate: \(clientCertificate)") }
            if let clientKey { parts.append("client key: \(clientKey)") }
            if let expectedHostname { parts.append("expected hostname: \(expectedHostname)") }
            if handshakeFirst { parts.append("handshake first") }
            if skipsVerification { parts.append("verification skipped") }
            return parts.isEmpty ? "default" : parts.joined(separator: ", ")
        }
    }

    /// Where the JetStream API is, when not at the local account's `$JS.API`.
    public struct JetStream: Sendable, Hashable {
        /// The JetStream domain (`--js-domain`), as leaf nodes and hubs name theirs; the API is
        /// then at `$JS.<domain>.API`. Defaults to nil.
        public var domain: String?
        /// The API prefix, for JetStream imported from another account. Defaults to nil.
        /// Give a domain or a prefix, not both.
        public var apiPrefix: String?

        /// Creates JetStream settings.
        public init(domain: String? = nil, apiPrefix: String? = nil) {
            self.domain = domain
            self.apiPrefix = apiPrefix
        }
    }
}

extension NATSConnection.Configuration: CustomStringConvertible, CustomReflectable {
    /// The servers (user info in URLs shown as `***`), the name and each setting; never a secret.
    public var description: String {
        var parts = ["servers: \(servers.map(Redaction.url).joined(separator: ","))"]
        if let name { parts.append("name: \(name)") }
        parts.append("authentication: \(authentication)")
        parts.append("tls: \(tls)")
        if let domain = jetStream.domain { parts.append("JetStream domain: \(domain)") }
        if let apiPrefix = jetStream.apiPrefix { parts.append("JetStream API prefix: \(apiPrefix)") }
        if let inboxPrefix { parts.append("inbox prefix: \(inboxPrefix)") }
        return parts.joined(separator: "; ")
    }

    /// Shows the description only, so that `dump` does not reveal URL user info.
    public var customMirror: Mirror {
        Mirror(self, children: ["configuration": description], displayStyle: .struct)
    }
}

extension NATSConnection.Configuration {
    /// Whether the settings or a URL ask for TLS.
    var usesTLS: Bool {
        tls.isRequested || servers.contains { $0.lowercased().hasPrefix("tls://") }
    }
}

/// Environment variables, read through a function so that tests can give their own.
struct Environment: Sendable {
    private let lookup: @Sendable (String) -> String?

    init(_ lookup: @escaping @Sendable (String) -> String?) {
        self.lookup = lookup
    }

    /// The variable's value; nil when unset or empty.
    subscript(name: String) -> String? {
        guard let value = lookup(name), !value.isEmpty else { return nil }
        return value
    }

    /// The process's environment.
    static let process = Environment { name in getenv(name).map { String(cString: $0) } }

    /// Fixed values, for tests.
    static func values(_ values: [String: String]) -> Environment {
        Environment { values[$0] }
    }
}

/// Hides secrets in texts meant for people.
enum Redaction {
    /// `url` with its user info (`user:password@`, `token@`) replaced by `***`.
    static func url(_ url: String) -> String {
        let authorityStart = url.firstRange(of: "://")?.upperBound ?? url.startIndex
        let rest = url[authorityStart...]
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? url.endIndex
        guard let at = url[authorityStart..<authorityEnd].lastIndex(of: "@") else { return url }
        return String(url[..<authorityStart]) + "***" + String(url[at...])
    }

    /// `text` with each of `secrets` (those at least 3 characters long) replaced by `***`.
    static func scrub(_ text: String, secrets: [String]) -> String {
        var text = text
        for secret in secrets where secret.count >= 3 {
            text = text.replacing(secret, with: "***")
        }
        return text
    }

    /// The user info of each URL (what is before the `@`, and each part around a `:`), to scrub.
    static func userInfoSecrets(in urls: [String]) -> [String] {
        urls.flatMap { url -> [String] in
            let authorityStart = url.firstRange(of: "://")?.upperBound ?? url.startIndex
            let rest = url[authorityStart...]
            let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? url.endIndex
            guard let at = url[authorityStart..<authorityEnd].lastIndex(of: "@") else { return [] }
            let userInfo = url[authorityStart..<at]
            var secrets = [String(userInfo)]
            if let colon = userInfo.firstIndex(of: ":") {
                secrets.append(String(userInfo[userInfo.index(after: colon)...]))
            }
            return secrets
        }
    }
}

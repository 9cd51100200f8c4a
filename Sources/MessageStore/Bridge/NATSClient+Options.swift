import CNATS
import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Applies a configuration's security settings (authentication, TLS, inbox prefix) to cnats options.
enum ConnectionOptions {
    /// Sets what `configuration` asks for on `options`; returns the signer of NKey and JWT
    /// authentication, which must outlive every connection made with `options`.
    static func apply(
        _ configuration: NATSConnection.Configuration,
        to options: OpaquePointer,
        logger: Logger,
        check: (natsStatus, String) throws(MessageStoreError) -> Void
    ) throws(MessageStoreError) -> ConnectionSigner? {
        if let name = configuration.name {
            try validateName(name)
            try check(natsOptions_SetName(options, name), "setting the connection name")
        }
        if let prefix = configuration.inboxPrefix {
            try validateSubjectPrefix(prefix, what: "inbox prefix")
            try check(natsOptions_SetCustomInboxPrefix(options, prefix), "setting the inbox prefix")
        }
        if configuration.jetStream.domain != nil && configuration.jetStream.apiPrefix != nil {
            throw MessageStoreError(
                code: .invalidConfiguration,
                message: "give a JetStream domain or an API prefix, not both"
            )
        }
        if let domain = configuration.jetStream.domain {
            try validateSubjectPrefix(domain, what: "JetStream domain")
        }
        if let apiPrefix = configuration.jetStream.apiPrefix {
            try validateSubjectPrefix(
                apiPrefix.hasSuffix(".") ? String(apiPrefix.dropLast()) : apiPrefix,
                what: "JetStream API prefix"
            )
        }
        try applyTLS(configuration.tls, wanted: configuration.usesTLS, to: options, logger: logger, check: check)

        switch configuration.authentication.method {
        case .none:
            return nil
        case .userPassword(let user, let password):
            try check(natsOptions_SetUserInfo(options, user, password), "setting the user and password")
            return nil
        case .token(let token):
            try check(natsOptions_SetToken(options, token), "setting the token")
            return nil
        case .nkeySeedFile(let path):
            let contents = try readBytes(path, what: "NKey seed file")
            guard let line = CredentialsFile.seedLine(in: contents) else {
                throw MessageStoreError(
                    code: .invalidConfiguration,
                    message: "the NKey seed file \(path) holds no seed (a line starting with S)"
                )
            }
            let publicKey = try NKeySeed(String(decoding: contents[line], as: UTF8.self)).publicKey
            let signer = ConnectionSigner(.seedFile(path))
            try setNKey(signer, publicKey: publicKey, on: options, check: check)
            return signer
        case .nkeySeed(let seed):
            let publicKey = try NKeySeed(seed).publicKey
            let signer = ConnectionSigner(.seed(Substring(seed).trimmingWhitespace()))
            try setNKey(signer, publicKey: publicKey, on: options, check: check)
            return signer
        case .credentialsFile(let path):
            // Read here to give a clear error now for a missing, unreadable or malformed file;
            // the signer reads it again at each connect.
            let contents = try readBytes(path, what: "credentials file")
            guard CredentialsFile.item(0, in: contents) != nil, let seed = CredentialsFile.item(1, in: contents) else {
                throw MessageStoreError(
                    code: .invalidConfiguration,
                    message:
                        "the credentials file \(path) does not hold a user JWT and a seed between BEGIN and END lines"
                )
            }
            _ = try NKeySeed(String(decoding: contents[seed], as: UTF8.self))
            let signer = ConnectionSigner(.credentialsFile(path))
            try check(
                natsOptions_SetUserCredentialsCallbacks(
                    options,
                    { jwt, errorText, closure in
                        guard let closure else { return NATS_ERR }
                        return Unmanaged<ConnectionSigner>.fromOpaque(closure).takeUnretainedValue()
                            .userJWT(into: jwt, errorText: errorText)
                    },
                    Unmanaged.passUnretained(signer).toOpaque(),
                    signatureCallback,
                    Unmanaged.passUnretained(signer).toOpaque()
                ),
                "setting the credentials file \(path)"
            )
            return signer
        }
    }

    /// cnats' signature callback for NKey and JWT users: the closure is the ``ConnectionSigner``
    /// (not retained: each connection's events keep it alive). nats_Sign allocates the signature
    /// with malloc; cnats frees it.
    private static let signatureCallback: natsSignatureHandler = { error, signature, length, nonce, closure in
        guard let closure, let nonce else { return NATS_ERR }
        return Unmanaged<ConnectionSigner>.fromOpaque(closure).takeUnretainedValue()
            .sign(nonce, into: signature, length: length, errorText: error)
    }

    private static func setNKey(
        _ signer: ConnectionSigner,
        publicKey: String,
        on options: OpaquePointer,
        check: (natsStatus, String) throws(MessageStoreError) -> Void
    ) throws(MessageStoreError) {
        try check(
            natsOptions_SetNKey(
                options,
                publicKey,
                signatureCallback,
                Unmanaged.passUnretained(signer).toOpaque()
            ),
            "setting the NKey"
        )
    }

    private static func applyTLS(
        _ tls: NATSConnection.Configuration.TLS,
        wanted: Bool,
        to options: OpaquePointer,
        logger: Logger,
        check: (natsStatus, String) throws(MessageStoreError) -> Void
    ) throws(MessageStoreError) {
        if tls.handshakeFirst {
            throw MessageStoreError(
                code: .invalidConfiguration,
                message: """
                    a TLS-first handshake is not available: the NATS C client this library is built on \
                    (cnats \(NATSClient.libraryVersion)) has no option for it; connect to a listener that \
                    starts TLS after the server's INFO (the default, without handshake_first)
                    """
            )
        }
        guard wanted else { return }
        try check(natsOptions_SetSecure(options, true), "enabling TLS")
        switch tls.trustedCertificates {
        case .file(let path)?:
            _ = try readFile(path, what: "trusted certificates file")
            try check(natsOptions_LoadCATrustedCertificates(options, path), "loading the trusted certificates \(path)")
        case .contents(let pem)?:
            try check(natsOptions_SetCATrustedCertificates(options, pem), "loading the trusted certificates")
        case nil:
            break
        }
        switch (tls.clientCertificate, tls.clientKey) {
        case (nil, nil):
            break
        case (.file(let certificate)?, .file(let key)?):
            _ = try readFile(certificate, what: "client certificate file")
            _ = try readFile(key, what: "client key file")
            try check(
                natsOptions_LoadCertificatesChain(options, certificate, key),
                "loading the client certificate \(certificate) and key \(key)"
            )
        case (let certificate?, let key?):
            let certificateText = try text(of: certificate, what: "client certificate file")
            let keyText = try text(of: key, what: "client key file")
            try check(
                natsOptions_SetCertificatesChain(options, certificateText, keyText),
                "loading the client certificate and key"
            )
        case (nil, _?), (_?, nil):
            throw MessageStoreError(
                code: .invalidConfiguration,
                message: "mutual TLS needs both a client certificate and its key; only one was given"
            )
        }
        if let hostname = tls.expectedHostname {
            try check(natsOptions_SetExpectedHostname(options, hostname), "setting the expected TLS host name")
        }
        if tls.skipsVerification {
            logger.warning(
                "TLS verification of the server's certificate is off: anyone between client and server can read and change the traffic"
            )
            try check(natsOptions_SkipServerVerification(options, true), "turning TLS verification off")
        }
    }

    /// Refuses an inbox prefix, JetStream domain or API prefix that is not a plain subject:
    /// `_INBOX_app`, `app.inbox`.
    static func validateSubjectPrefix(_ prefix: String, what: String) throws(MessageStoreError) {
        let tokens = prefix.split(separator: ".", omittingEmptySubsequences: false)
        let reason: String? =
            if prefix.isEmpty { "it is empty" } else if tokens.contains(where: \.isEmpty) {
                "it has an empty token (a leading, trailing or double dot)"
            } else if prefix.contains(where: { $0 == "*" || $0 == ">" }) {
                "it contains a wildcard (* or >)"
            } else if prefix.unicodeScalars.contains(where: {
                $0.properties.isWhitespace || $0.value < 0x20 || $0.value == 0x7F
            }) {
                "it contains white space or a control character"
            } else { nil }
        if let reason {
            throw MessageStoreError(
                code: .invalidConfiguration,
                message: "the \(what) \"\(prefix)\" cannot be used: \(reason)"
            )
        }
    }

    /// Refuses names the C client would write into its CONNECT JSON unescaped.
    static func validateName(_ name: String) throws(MessageStoreError) {
        if let bad = name.unicodeScalars.first(where: {
            $0 == "\"" || $0 == "\\" || $0.value < 0x20 || $0.value == 0x7F
        }) {
            let what = bad == "\"" ? "a quote" : bad == "\\" ? "a backslash" : "a control character"
            throw MessageStoreError(
                code: .invalidConfiguration,
                message:
                    "the connection name contains \(what); use letters, digits and punctuation other than \" and \\"
            )
        }
    }

    private static func text(of pem: NATSConnection.Configuration.TLS.PEM, what: String) throws(MessageStoreError)
        -> String
    {
        switch pem {
        case .file(let path): try readFile(path, what: what)
        case .contents(let text): text
        }
    }

    /// The file's text, or an error that names the file (never its contents).
    static func readFile(_ path: String, what: String) throws(MessageStoreError) -> String {
        String(decoding: try readBytes(path, what: what), as: UTF8.self)
    }

    /// The file's bytes (at most 1 MiB), or an error that names the file (never its contents).
    static func readBytes(_ path: String, what: String) throws(MessageStoreError) -> [UInt8] {
        guard let file = fopen(path, "rb") else {
            let reason = String(cString: strerror(errno))
            throw MessageStoreError(code: .invalidConfiguration, message: "cannot read the \(what) \(path): \(reason)")
        }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = fread(&buffer, 1, buffer.count, file)
            if count > 0 { bytes += buffer[..<count] }
            if count < buffer.count { break }
            if bytes.count > 1 << 20 {
                throw MessageStoreError(
                    code: .invalidConfiguration,
                    message: "the \(what) \(path) is larger than 1 MiB"
                )
            }
        }
        return bytes
    }
}

extension NATSClient {
    /// The version of the linked cnats library, such as `3.4.1`.
    static var libraryVersion: String {
        String(cString: nats_GetVersion())
    }
}

/// How to make a connection's JetStream context: its API domain or prefix and its request timeout.
struct JetStreamSettings: Sendable {
    let domain: String?
    let apiPrefix: String?
    let requestTimeout: Duration

    init(_ jetStream: NATSConnection.Configuration.JetStream, requestTimeout: Duration) {
        domain = jetStream.domain
        apiPrefix = jetStream.apiPrefix
        self.requestTimeout = requestTimeout
    }

    /// The subject prefix of API requests, as cnats makes it: `$JS.<domain>.API.`, the prefix
    /// with a dot, or `$JS.API.`.
    var apiSubjectPrefix: String {
        if let domain { return "$JS.\(domain).API." }
        if let apiPrefix { return apiPrefix.hasSuffix(".") ? apiPrefix : apiPrefix + "." }
        return "$JS.API."
    }

    /// Creates the JetStream context of `connection` (`jsOptions.Domain` or `jsOptions.Prefix`).
    func makeContext(_ context: inout OpaquePointer?, on connection: OpaquePointer) -> natsStatus {
        var options = jsOptions()
        jsOptions_Init(&options)
        options.Wait = requestTimeout.milliseconds
        return withOptionalCString(domain) { domain in
            withOptionalCString(apiPrefix) { prefix in
                options.Domain = domain
                options.Prefix = prefix
                return natsConnection_JetStream(&context, connection, &options)
            }
        }
    }

    private func withOptionalCString<R>(_ string: String?, _ body: (UnsafePointer<CChar>?) -> R) -> R {
        guard let string else { return body(nil) }
        return string.withCString { body($0) }
    }
}

/// A permission violation the server reported: `Permissions Violation for Publish to "orders.1"`.
struct PermissionViolation: Sendable, Equatable {
    /// Whether a publish was refused (otherwise a subscription).
    let isPublish: Bool
    /// The NATS subject refused.
    let subject: String

    init?(_ text: String) {
        let lowered = text.lowercased()
        guard lowered.contains("permissions violation") else { return nil }
        if lowered.contains("for publish") {
            isPublish = true
        } else if lowered.contains("for subscription") {
            isPublish = false
        } else {
            return nil
        }
        // The subject is quoted; a queue group may follow it in a second pair of quotes.
        guard let open = text.firstIndex(of: "\"") else { return nil }
        let rest = text[text.index(after: open)...]
        guard let close = rest.firstIndex(of: "\"") else { return nil }
        subject = String(rest[..<close])
    }

    init(isPublish: Bool, subject: String) {
        self.isPublish = isPublish
        self.subject = subject
    }
}

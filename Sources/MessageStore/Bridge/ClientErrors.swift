import CNATS

/// Turns cnats statuses into typed errors. Call on the thread that saw the failure:
/// `nats_GetLastError` is per thread.
enum ClientErrors {
    struct Context {
        var operation: String
        var subject: String? = nil
        var stream: String? = nil
        var consumer: String? = nil
        /// Whether a timeout means an unacknowledged publish rather than a slow request.
        var isPublish = false

        /// Publishing a message to the application subject `subject`.
        static func publishing(_ subject: String?) -> Context {
            Context(operation: "publishing", subject: subject, isPublish: true)
        }
    }

    static func make(
        _ status: natsStatus,
        jetStreamCode: jsErrCode = jsErrCode(rawValue: 0),
        text explicitText: String? = nil,
        _ context: Context
    ) -> MessageStoreError {
        let clientStatus = MessageStoreError.ClientStatus(
            code: Int(status.rawValue),
            text: String(cString: natsStatus_GetText(status))
        )
        let detail = explicitText ?? lastErrorText(status) ?? clientStatus.text
        let jsCode = Int(jetStreamCode.rawValue)
        let code: MessageStoreError.Code
        let sentence: String
        switch (status, JetStreamErrorCode(jsCode)?.errorCode) {
        case (_, .wrongExpectedSequence?):
            code = .wrongExpectedSequence
            sentence = "\(context.operation) failed: the subject's last sequence is not the expected one (\(detail))"
        case (_, .messageTooLarge?), (NATS_MAX_PAYLOAD, _):
            code = .messageTooLarge
            sentence =
                "\(context.operation) failed: the message is larger than the stream or server accepts (\(detail))"
        case (_, .streamNotFound?):
            code = .streamNotFound
            sentence = "\(context.operation) failed: stream not found (\(detail))"
        case (NATS_NO_RESPONDERS, _):
            code = .noResponders
            sentence =
                "\(context.operation) failed: no responders; no stream covers the subject or JetStream is not enabled"
        case (NATS_TIMEOUT, _):
            code = context.isPublish ? .publishTimedOut : .timedOut
            sentence =
                context.isPublish
                ? "\(context.operation) was not acknowledged in time; the message may or may not be stored"
                : "\(context.operation) timed out"
        case (NATS_CONNECTION_CLOSED, _):
            code = .connectionClosed
            sentence = "\(context.operation) failed: the NATS connection is closed"
        case (NATS_CONNECTION_AUTH_FAILED, _):
            code = .authenticationFailed
            sentence = "\(context.operation) failed: the server refused the credentials (\(detail))"
        case (NATS_SSL_ERROR, _):
            code = .tlsFailed
            sentence = "\(context.operation) failed: TLS: \(TLSReason.words(for: detail))"
        case (NATS_SECURE_CONNECTION_WANTED, _):
            code = .tlsFailed
            sentence = "\(context.operation) failed: TLS was asked for but the server does not offer it (\(detail))"
        case (NATS_SECURE_CONNECTION_REQUIRED, _):
            code = .tlsFailed
            sentence =
                "\(context.operation) failed: the server requires TLS; use a tls:// URL or TLS settings (\(detail))"
        case (NATS_NOT_PERMITTED, _):
            code = .permissionDenied
            sentence = "\(context.operation) failed: permission denied (\(detail))"
        case (NATS_NO_SERVER, _), (NATS_CONNECTION_DISCONNECTED, _), (NATS_IO_ERROR, _),
            (NATS_STALE_CONNECTION, _), (NATS_NOT_YET_CONNECTED, _):
            code = .connectionFailed
            sentence = "\(context.operation) failed: \(detail)"
        case (NATS_INVALID_SUBJECT, _):
            code = .invalidSubject
            sentence = "\(context.operation) failed: invalid subject (\(detail))"
        case _ where jsCode != 0:
            code = .serverError
            sentence = "\(context.operation) failed: JetStream error \(jsCode): \(detail)"
        default:
            code = .clientError
            sentence = "\(context.operation) failed: \(detail)"
        }
        return MessageStoreError(
            code: code,
            message: sentence,
            subject: context.subject,
            stream: context.stream,
            consumer: context.consumer,
            clientStatus: clientStatus,
            jetStreamErrorCode: jsCode == 0 ? nil : jsCode
        )
    }

    private static func lastErrorText(_ status: natsStatus) -> String? {
        var lastStatus = NATS_OK
        guard let text = nats_GetLastError(&lastStatus), lastStatus == status else { return nil }
        let string = String(cString: text)
        return string.isEmpty ? nil : string
    }
}

/// Says in words why a TLS handshake failed, from OpenSSL's text as cnats reports it.
enum TLSReason {
    static func words(for detail: String) -> String {
        let lowered = detail.lowercased()
        let reasons: [(String, String)] = [
            ("unable to get local issuer certificate", "the server's certificate is not signed by a trusted authority"),
            ("self-signed certificate", "the server's certificate is self-signed and not trusted"),
            ("self signed certificate", "the server's certificate is self-signed and not trusted"),
            ("certificate has expired", "the server's certificate has expired"),
            ("hostname mismatch", "the server's certificate is not for this host name"),
            ("ip address mismatch", "the server's certificate is not for this IP address"),
            ("certificate required", "the server requires a client certificate and none was given"),
            ("unknown ca", "the server does not trust the client certificate's authority"),
            ("bad certificate", "the server refused the client certificate"),
            ("certificate verify failed", "the server's certificate could not be verified"),
            ("wrong version number", "the server did not answer with TLS"),
        ]
        for (needle, words) in reasons where lowered.contains(needle) {
            return "\(words) (\(detail))"
        }
        return "the handshake failed (\(detail))"
    }
}

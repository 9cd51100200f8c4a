import CNATS

extension NATSClient {
    /// The last message stored on exactly `natsSubject` in `stream`, or nil when there is none.
    func lastMessage(stream: String, natsSubject: String, subject: String) async throws(MessageStoreError)
        -> RawStoredMessage?
    {
        try await pool.run { () throws(MessageStoreError) -> RawStoredMessage? in
            var message: OpaquePointer?
            var errorCode = jsErrCode(rawValue: 0)
            let status = self.withJetStream { jetStream in
                js_GetLastMsg(&message, jetStream, stream, natsSubject, nil, &errorCode)
            }
            defer { natsMsg_Destroy(message) }
            if errorCode.rawValue == 10037 || (status == NATS_NOT_FOUND && errorCode.rawValue == 0) {
                return nil
            }
            guard status == NATS_OK, let message else {
                throw ClientErrors.make(
                    status,
                    jetStreamCode: errorCode,
                    .init(operation: "reading the last message", subject: subject, stream: stream)
                )
            }
            return RawStoredMessage(
                natsSubject: CMessage.subject(of: message),
                body: CMessage.data(of: message),
                headers: CMessage.headers(of: message),
                sequence: natsMsg_GetSequence(message),
                timestamp: natsMsg_GetTime(message)
            )
        }
    }
}

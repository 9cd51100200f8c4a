import CNATS

extension JetStream {
    // Stored messages, read by stream and sequence or as a subject's last.

    /// The last message stored on exactly `natsSubject` in `stream`, or nil when there is none.
    func lastMessage(stream: String, natsSubject: String, subject: String) async throws(MessageStoreError)
        -> RawStoredMessage?
    {
        try await storedMessage(.init(operation: "reading the last message", subject: subject, stream: stream)) {
            jetStream,
            message,
            errorCode in
            js_GetLastMsg(&message, jetStream, stream, natsSubject, nil, &errorCode)
        }
    }

    /// The message stored at `sequence` in `stream`, or nil when there is none (deleted, or never
    /// stored).
    func message(stream: String, sequence: UInt64) async throws(MessageStoreError) -> RawStoredMessage? {
        try await storedMessage(.init(operation: "reading message \(sequence)", stream: stream)) {
            jetStream,
            message,
            errorCode in
            js_GetMsg(&message, jetStream, stream, sequence, nil, &errorCode)
        }
    }

    /// Runs one of cnats' get-message calls on a library thread and copies the message out.
    private func storedMessage(
        _ context: ClientErrors.Context,
        _ get: @escaping @Sendable (OpaquePointer, inout OpaquePointer?, inout jsErrCode) -> natsStatus
    ) async throws(MessageStoreError) -> RawStoredMessage? {
        try await client.pool.run { () throws(MessageStoreError) -> RawStoredMessage? in
            var message: OpaquePointer?
            var errorCode = jsErrCode(rawValue: 0)
            // On the connection that sends at once: a worker reads its attempt counts here, between
            // a redelivery and the handler's next run.
            let status = client.withPromptJetStream { jetStream in get(jetStream, &message, &errorCode) }
            defer { natsMsg_Destroy(message) }
            if JetStreamErrorCode(Int(errorCode.rawValue)) == .noMessageFound
                || (status == NATS_NOT_FOUND && errorCode.rawValue == 0)
            {
                return nil
            }
            guard status == NATS_OK, let message else {
                throw ClientErrors.make(status, jetStreamCode: errorCode, context)
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

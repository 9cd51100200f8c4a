import Logging

// Publishing: typed messages one at a time or pipelined, untyped and raw bodies for tools; each
// goes through the store's one ``Publisher``.

extension MessageStore {
    /// Publishes a typed message and waits for JetStream to store it.
    ///
    /// A publish that nothing stored (no responders, or a stream electing its leader) is sent
    /// again until ``Configuration/publishRetry``'s deadline; so is one whose acknowledgement
    /// did not come, when it has an `id`. Any other failure is thrown at once.
    /// - Parameters:
    ///   - payload: The message's data; its ``MessagePayload/messageType`` becomes the envelope type.
    ///   - subject: The application subject, such as `orders.command.42`. No wildcards.
    ///   - metadata: Envelope metadata. Defaults to none.
    ///   - id: A de-duplication id (`Nats-Msg-Id`): the stream stores a given id once within its
    ///     duplicate window. Defaults to none.
    ///   - headers: Extra NATS headers. Defaults to none.
    ///   - expectedLastSubjectSequence: Optimistic concurrency: store the message only if the
    ///     subject's last message has this stream sequence (0: the subject has no message yet).
    ///     Defaults to none.
    ///   - timeout: How long to wait for the acknowledgement. Defaults to
    ///     ``Configuration/publishTimeout``.
    /// - Returns: The stream, the sequence and whether the id was a duplicate.
    /// - Throws: ``MessageStoreError`` — ``MessageStoreError/Code/invalidSubject``,
    ///   ``MessageStoreError/Code/wrongExpectedSequence``, ``MessageStoreError/Code/messageTooLarge``,
    ///   ``MessageStoreError/Code/noResponders`` (no stream covers the subject),
    ///   ``MessageStoreError/Code/streamUnavailable`` (its stream did not answer until the
    ///   deadline), ``MessageStoreError/Code/publishTimedOut``,
    ///   ``MessageStoreError/Code/cancelled``, and others.
    @discardableResult
    public func publish(
        _ payload: some MessagePayload,
        to subject: String,
        metadata: MessageMetadata? = nil,
        id: String? = nil,
        headers: MessageHeaders = [:],
        expectedLastSubjectSequence: UInt64? = nil,
        timeout: Duration? = nil
    ) async throws(MessageStoreError) -> PublishAck {
        let publication = try publisher.makePublication(
            OutgoingMessage(
                payload,
                to: subject,
                metadata: metadata,
                id: id,
                headers: headers,
                expectedLastSubjectSequence: expectedLastSubjectSequence
            )
        )
        return try await publisher.publish(publication, timeout: timeout, messageType: type(of: payload).messageType)
    }

    /// Publishes many messages with their acknowledgements in flight together, far faster than
    /// awaiting each one.
    ///
    /// Every message gets its own result, in the order given: an acknowledgement or the error for
    /// that message. Messages that failed for a reason ``Configuration/publishRetry`` retries are
    /// sent again together, in order, until its deadline; check the results. Messages to the same
    /// subject are stored in the order given, except that a message sent again is stored after
    /// those of the batch that did not need to be.
    /// - Parameters:
    ///   - messages: The messages to publish.
    ///   - timeout: How long each message may wait for its acknowledgement. Defaults to
    ///     ``Configuration/publishTimeout``.
    /// - Returns: One result per message, in order.
    public func publish(
        contentsOf messages: some Sequence<OutgoingMessage>,
        timeout: Duration? = nil
    ) async -> [Result<PublishAck, MessageStoreError>] {
        await publisher.publish(contentsOf: Array(messages), timeout: timeout)
    }
}

extension MessageStore {
    /// Publishes a message whose type is given as a string and whose data is untyped JSON, for
    /// tools and bridges that do not have the Swift type.
    /// - Throws: ``MessageStoreError/Code/encodingFailed`` when `data` is not a JSON object; otherwise
    ///   as ``publish(_:to:metadata:id:headers:expectedLastSubjectSequence:timeout:)``.
    @discardableResult
    public func publish(
        type: String,
        data: JSONValue,
        to subject: String,
        metadata: MessageMetadata? = nil,
        id: String? = nil,
        headers: MessageHeaders = [:],
        timeout: Duration? = nil
    ) async throws(MessageStoreError) -> PublishAck {
        let body = try Envelope.encode(
            type: type,
            data: data,
            metadata: metadata,
            subject: subject,
            coding: configuration.bodyCoding
        )
        return try await publish(
            rawBody: body,
            to: subject,
            id: id,
            headers: headers,
            timeout: timeout,
            messageType: type
        )
    }

    /// Publishes a body exactly as given, such as a dead-lettered message going back to its
    /// original subject. No envelope is checked or added.
    @discardableResult
    public func publish(
        rawBody body: [UInt8],
        to subject: String,
        id: String? = nil,
        headers: MessageHeaders = [:],
        timeout: Duration? = nil
    ) async throws(MessageStoreError) -> PublishAck {
        try await publish(rawBody: body, to: subject, id: id, headers: headers, timeout: timeout, messageType: nil)
    }

    private func publish(
        rawBody body: [UInt8],
        to subject: String,
        id: String?,
        headers: MessageHeaders,
        timeout: Duration?,
        messageType: String?
    ) async throws(MessageStoreError) -> PublishAck {
        var headers = headers
        if let id {
            headers[MessageHeaderName.messageID] = id
        }
        let publication = Publication(
            subject: subject,
            natsSubject: try naming.publishSubject(subject),
            body: body,
            headers: headers
        )
        return try await publisher.publish(publication, timeout: timeout, messageType: messageType)
    }
}

/// The rules header names, header values and message ids follow before they are sent.
///
/// A NATS header block is text lines: a name, `:`, a value, CRLF. A name with a space, a colon
/// or a control character, or a value with CR or LF, would end its line early and let the rest
/// be read as headers of its own (a caller could slip `Nats-Expected-Last-Sequence` onto the
/// wire); a NUL cuts a C string short, so two different ids would reach the server as one.
/// Nothing is rewritten: anything of that kind is a typed error and nothing is sent.
enum HeaderRules {
    /// Whether `name` can be sent as a header name as is: printable ASCII without space or `:`.
    static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ":") }
    }

    /// Whether `value` can be sent as a header value as is: no CR, LF or NUL.
    static func isValidValue(_ value: String) -> Bool {
        !value.utf8.contains { $0 == 0x0D || $0 == 0x0A || $0 == 0 }
    }

    /// Checks every field of `headers`; a `Nats-Msg-Id` field is checked as a message id.
    /// - Throws: ``MessageStoreError/Code/invalidHeader`` or
    ///   ``MessageStoreError/Code/invalidMessageID``, naming `subject`.
    static func validate(_ headers: MessageHeaders, subject: String?) throws(MessageStoreError) {
        for field in headers {
            guard isValidName(field.name) else {
                throw MessageStoreError(
                    code: .invalidHeader,
                    message: "invalid header name \(quoted(field.name)): a name is printable ASCII "
                        + "without spaces or \":\"; nothing was sent",
                    subject: subject
                )
            }
            if field.name == MessageHeaderName.messageID {
                try validateMessageID(field.value, subject: subject)
            } else if !isValidValue(field.value) {
                throw MessageStoreError(
                    code: .invalidHeader,
                    message: "invalid value for header \(field.name): a value may not contain CR, LF or NUL; "
                        + "nothing was sent",
                    subject: subject
                )
            }
        }
    }

    /// Checks a de-duplication id.
    /// - Throws: ``MessageStoreError/Code/invalidMessageID`` for an empty id or one with CR, LF or NUL.
    static func validateMessageID(_ id: String, subject: String?) throws(MessageStoreError) {
        guard !id.isEmpty else {
            throw MessageStoreError(
                code: .invalidMessageID,
                message: "the message id is empty; pass nil for no id; nothing was sent",
                subject: subject
            )
        }
        guard isValidValue(id) else {
            throw MessageStoreError(
                code: .invalidMessageID,
                message: "invalid message id \(quoted(id)): an id may not contain CR, LF or NUL; nothing was sent",
                subject: subject
            )
        }
    }

    /// `text` quoted, with what cannot be shown escaped and cut to a readable length.
    private static func quoted(_ text: String) -> String {
        "\"" + LogText.peer(text, limit: 128) + "\""
    }
}

import ArgumentParser
import Foundation
import Logging
import MessageStore

/// `message-store`: inspect and operate a message store from the shell.
@main
struct MessageStoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "message-store",
        abstract: "Inspect and operate a swift-message-store on NATS JetStream.",
        discussion: """
            Subjects are application subjects: the --prefix is added on the way out and removed on \
            the way in, as the library does. The connection options (--server, --creds, --tlsca, …) \
            may come before or after the subcommand, as with the nats CLI, and default to the same \
            environment variables (NATS_URL, NATS_CREDS, NATS_NKEY, NATS_USER, NATS_PASSWORD, \
            NATS_TOKEN, NATS_CA, NATS_CERT, NATS_KEY).
            """,
        version: messageStoreCLIVersion,
        subcommands: [
            Streams.self, StreamCommand.self, Publish.self, Read.self, Last.self, Tail.self, Consumers.self,
            DeadLetters.self, Replay.self, Stats.self, Trace.self, HealthCommand.self, OutboxCommand.self,
        ]
    )

    /// Parses with the connection options moved after the subcommand, then runs it.
    static func main() async {
        let arguments = StoreOptions.movingLeadingOptionsToTheEnd(Array(CommandLine.arguments.dropFirst()))
        do {
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}

/// The version `--version` prints.
let messageStoreCLIVersion = "0.1.0"

/// Where the store is and how to connect: options every subcommand takes, before or after it.
struct StoreOptions: ParsableArguments {
    @Option(
        name: [.short, .long],
        help: "NATS server URL(s), comma-separated. Defaults to NATS_URL or nats://127.0.0.1:4222."
    )
    var server: String?

    @Option(help: "The environment prefix, such as dev or staging. Defaults to MESSAGE_STORE_PREFIX or none.")
    var prefix: String = ProcessInfo.processInfo.environment["MESSAGE_STORE_PREFIX"] ?? ""

    @Option(help: "User name (NATS_USER).")
    var user: String?

    @Option(help: "Password (NATS_PASSWORD).")
    var password: String?

    @Option(help: "Token (NATS_TOKEN).")
    var token: String?

    @Option(help: "User credentials file, JWT and NKey seed (NATS_CREDS).")
    var creds: String?

    @Option(help: "User NKey seed file (NATS_NKEY).")
    var nkey: String?

    @Option(help: "TLS client certificate file (NATS_CERT).")
    var tlscert: String?

    @Option(help: "TLS client private key file (NATS_KEY).")
    var tlskey: String?

    @Option(help: "TLS certificate authority file to trust (NATS_CA).")
    var tlsca: String?

    @Flag(help: "Start TLS before the server's INFO (not available with cnats 3.4.1: refused).")
    var tlsfirst = false

    @Option(name: .customLong("js-domain"), help: "The JetStream domain.")
    var jsDomain: String?

    @Option(name: .customLong("inbox-prefix"), help: "A custom inbox prefix, such as _INBOX_app.")
    var inboxPrefix: String?

    @Option(help: "Time-out for connecting and for each request: 5s, 500ms, 2m or seconds. Defaults to 5s.")
    var timeout: String?

    /// The options that take a value, and the flags, that may come before the subcommand.
    static let valueOptions: Set<String> = [
        "-s", "--server", "--prefix", "--user", "--password", "--token", "--creds", "--nkey", "--tlscert",
        "--tlskey", "--tlsca", "--js-domain", "--inbox-prefix", "--timeout",
    ]
    static let flagOptions: Set<String> = ["--tlsfirst"]

    /// `arguments` with the connection options before the subcommand moved to the end (before a
    /// `--`), where the subcommand's parser reads them: the nats CLI takes them anywhere.
    static func movingLeadingOptionsToTheEnd(_ arguments: [String]) -> [String] {
        var leading: [String] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            let name = argument.split(separator: "=", maxSplits: 1).first.map(String.init) ?? argument
            if flagOptions.contains(argument) || (valueOptions.contains(name) && argument.contains("=")) {
                leading.append(argument)
                index += 1
            } else if valueOptions.contains(argument), index + 1 < arguments.count {
                leading += arguments[index...(index + 1)]
                index += 2
            } else {
                break
            }
        }
        guard !leading.isEmpty, index < arguments.count else { return arguments }
        var rest = Array(arguments[index...])
        let end = rest.firstIndex(of: "--") ?? rest.endIndex
        rest.insert(contentsOf: leading, at: end)
        return rest
    }

    /// The connection configuration: the environment's defaults, then these options.
    func connectionConfiguration() throws -> NATSConnection.Configuration {
        var configuration = NATSConnection.Configuration()
        if let server {
            configuration.servers = server.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        }
        if let creds {
            configuration.authentication = .credentials(file: creds)
        } else if let nkey {
            configuration.authentication = .nkey(seedFile: nkey)
        } else if let user {
            configuration.authentication = .userPassword(user: user, password: password ?? "")
        } else if let token {
            configuration.authentication = .token(token)
        }
        if let tlsca { configuration.tls.trustedCertificates = .file(tlsca) }
        if let tlscert { configuration.tls.clientCertificate = .file(tlscert) }
        if let tlskey { configuration.tls.clientKey = .file(tlskey) }
        configuration.tls.handshakeFirst = tlsfirst
        if let jsDomain { configuration.jetStream.domain = jsDomain }
        if let inboxPrefix { configuration.inboxPrefix = inboxPrefix }
        if let timeout {
            guard let duration = Self.duration(timeout), duration > .zero else {
                throw ValidationError("--timeout \(timeout) is not a duration such as 5s, 500ms or 2m")
            }
            configuration.connectTimeout = duration
            configuration.requestTimeout = duration
        }
        configuration.reconnect.maxAttempts = 0
        return configuration
    }

    /// `5s`, `500ms`, `2m`, `1h` or a number of seconds.
    static func duration(_ text: String) -> Duration? {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        for (suffix, seconds) in units where text.hasSuffix(suffix) {
            guard let value = Double(text.dropLast(suffix.count)) else { continue }
            return .milliseconds(Int64(value * seconds * 1000))
        }
        return Double(text).map { .milliseconds(Int64($0 * 1000)) }
    }

    /// The command speaks for itself: the library logs only what is critical, on stderr.
    static func silenceTheLibrarysLogs() {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .critical
            return handler
        }
    }

    /// Connects, runs `body`, and closes; any failure becomes one line on stderr and exit status 1.
    func withStore(createMissingStreams: Bool = false, _ body: (MessageStore) async throws -> Void) async throws {
        Self.silenceTheLibrarysLogs()
        let configuration = try connectionConfiguration()
        let connection: NATSConnection
        do {
            connection = try await NATSConnection.connect(configuration)
        } catch {
            // The error names the servers, user info redacted.
            if error.code == .connectionFailed {
                fail("cannot reach a NATS server: \(error.message)")
            }
            fail("cannot connect (\(error.code)): \(error.message)")
        }
        do {
            let store = try MessageStore(
                connection: connection,
                prefix: prefix,
                createMissingStreams: createMissingStreams
            )
            try await body(store)
            await connection.close()
        } catch let error as MessageStoreError {
            await connection.close()
            fail(error.message)
        } catch let error as ExitCode {
            await connection.close()
            throw error
        } catch {
            await connection.close()
            fail("\(error)")
        }
    }
}

/// Prints one line to stderr and exits with status 1.
func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("error: \(message)\n".utf8))
    Foundation.exit(1)
}

/// Prints a line to stdout at once, so `tail` output reaches a pipe as it happens.
func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// The JSON encoder for `--json` output: one compact object per line, keys sorted.
let lineEncoder: JSONEncoder = {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return encoder
}()

func jsonLine(_ value: JSONValue) -> String {
    (try? String(decoding: lineEncoder.encode(value), as: UTF8.self)) ?? "{}"
}

func rfc3339(_ date: Date) -> String {
    date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
}

/// Left-aligned columns for human-readable tables.
func table(_ header: [String], _ rows: [[String]]) -> String {
    let all = [header] + rows
    let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
    return all.map { row in
        row.enumerated().map { index, cell in
            index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
        }.joined(separator: "  ")
    }.joined(separator: "\n")
}

extension StoredMessage {
    /// The `--json` form: seq, subject, type, data, metadata (when present), timestamp.
    func jsonObject() throws -> JSONValue {
        var object: [String: JSONValue] = [
            "seq": .int(Int(clamping: sequence)),
            "subject": .string(subject),
            "type": .string(type),
            "data": try data,
            "timestamp": .string(rfc3339(timestamp)),
        ]
        if let metadata {
            object["metadata"] = try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(metadata))
        }
        return .object(object)
    }

    /// The human form: sequence, time, subject, type and data on one line.
    var line: String {
        let data = (try? jsonLine(self.data)) ?? "?"
        return "\(sequence)  \(rfc3339(timestamp))  \(subject)  \(type)  \(data)"
    }
}

struct Streams: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the streams under the prefix, with subjects, messages, bytes and consumers."
    )

    @OptionGroup var store: StoreOptions

    @Flag(help: "One JSON object per line: name, subjects, messages, bytes, firstSeq, lastSeq, consumers.")
    var json = false

    func run() async throws {
        try await store.withStore { store in
            let streams = try await store.streams().sorted { $0.name < $1.name }
            if json {
                for stream in streams { emit(jsonLine(stream.jsonObject)) }
                return
            }
            emit(
                table(
                    ["STREAM", "SUBJECTS", "MESSAGES", "BYTES", "CONSUMERS"],
                    streams.map {
                        [
                            $0.name, $0.subjects.joined(separator: ","), "\($0.messages)", "\($0.bytes)",
                            "\($0.consumerCount)",
                        ]
                    }
                )
            )
        }
    }
}

extension StreamDescription {
    var jsonObject: JSONValue {
        .object([
            "name": .string(name), "subjects": .array(subjects.map(JSONValue.string)),
            "messages": .int(Int(clamping: messages)), "bytes": .int(Int(clamping: bytes)),
            "firstSeq": .int(Int(clamping: firstSequence)), "lastSeq": .int(Int(clamping: lastSequence)),
            "consumers": .int(consumerCount),
        ])
    }
}

/// `stream add CATEGORY`: what `publish` needs.
struct StreamCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stream",
        abstract: "Manage the stream of a category.",
        subcommands: [StreamAdd.self]
    )
}

struct StreamAdd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add",
        abstract: "Create the stream <prefix>-<category> for <prefix>.<category>.> (nothing changes if one exists)."
    )

    @OptionGroup var store: StoreOptions

    @Argument(help: "The category, such as orders.")
    var category: String

    @Option(help: "How many servers keep a copy (1 to 5). Defaults to 1.")
    var replicas: Int = 1

    @Option(help: "file or memory. Defaults to file.")
    var storage: String = "file"

    @Option(name: .customLong("max-bytes"), help: "The most bytes the stream keeps. Defaults to 1 GiB.")
    var maxBytes: Int64?

    @Option(
        name: .customLong("max-age"),
        help: "How long messages are kept, such as 30d, 12h or 90m. Defaults to forever."
    )
    var maxAge: String?

    @Option(name: .customLong("max-msg-size"), help: "The largest message accepted, in bytes. Defaults to 4 MiB.")
    var maxMessageSize: Int32?

    @Flag(help: "Print the stream as one JSON object.")
    var json = false

    func run() async throws {
        var options = StreamOptions()
        options.replicas = replicas
        switch storage {
        case "file": options.storage = .file
        case "memory": options.storage = .memory
        default: throw ValidationError("--storage must be file or memory, not \(storage)")
        }
        if let maxBytes { options.maxBytes = maxBytes }
        if let maxMessageSize { options.maxMessageSize = maxMessageSize }
        if let maxAge {
            let days = maxAge.hasSuffix("d") ? Double(maxAge.dropLast()).map { Duration.seconds($0 * 86_400) } : nil
            guard let age = days ?? StoreOptions.duration(maxAge), age > .zero else {
                throw ValidationError("--max-age \(maxAge) is not a duration such as 30d, 12h or 90m")
            }
            options.maxAge = age
        }
        try await store.withStore(createMissingStreams: true) { store in
            let stream = try await store.ensureStream(category, options: options)
            if json {
                emit(jsonLine(stream.jsonObject))
            } else {
                emit(
                    "stream \(stream.name) stores \(stream.subjects.joined(separator: ",")) (\(stream.messages) messages)"
                )
            }
        }
    }
}

struct Publish: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Publish one message and print its stream and sequence.")

    @OptionGroup var store: StoreOptions

    @Argument(help: "The application subject, such as orders.command.42.")
    var subject: String

    @Argument(help: "The message type, such as OrderPlaced.")
    var type: String

    @Argument(help: "The data, a JSON object such as '{\"orderId\": \"42\"}'.")
    var data: String

    @Option(help: "A de-duplication id (Nats-Msg-Id).")
    var id: String?

    func run() async throws {
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: Data(data.utf8))
        } catch {
            fail("invalid JSON data: \(data)")
        }
        guard case .object = value else { fail("the data must be a JSON object, not \(data)") }
        try await store.withStore { store in
            let ack = try await store.publish(type: type, data: value, to: subject, id: id)
            emit(
                "stored in \(ack.stream) at sequence \(ack.sequence)\(ack.isDuplicate ? " (duplicate: not stored again)" : "")"
            )
        }
    }
}

struct Read: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the messages of a subject (filter) in order.")

    @OptionGroup var store: StoreOptions

    @Argument(help: "An application subject or filter, such as orders.> .")
    var subject: String

    @Option(help: "Start at this stream sequence.")
    var from: UInt64 = 1

    @Option(help: "Print at most this many messages.")
    var limit: Int?

    @Flag(help: "One JSON object per line: seq, subject, type, data, metadata, timestamp.")
    var json = false

    @Flag(help: "Show the count and rate on stderr even when it is not a terminal (a terminal gets it after 1s).")
    var progress = false

    func run() async throws {
        try await store.withStore { store in
            guard try await store.stream(for: subject) != nil else {
                fail("no stream stores \(subject) under prefix \"\(store.prefix)\"")
            }
            let shown = ProgressLine("read", forced: progress)
            for try await message in store.messages(on: subject, from: .sequence(from), limit: limit) {
                emit(json ? jsonLine(try message.jsonObject()) : message.line)
                shown.advance()
            }
            shown.finish()
        }
    }
}

struct Last: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the last message of a subject.")

    @OptionGroup var store: StoreOptions

    @Argument(help: "An application subject (no wildcards).")
    var subject: String

    @Flag(help: "Print it as one JSON object.")
    var json = false

    func run() async throws {
        try await store.withStore { store in
            guard let message = try await store.lastMessage(on: subject) else {
                fail("\(subject) has no messages")
            }
            emit(json ? jsonLine(try message.jsonObject()) : message.line)
        }
    }
}

struct Tail: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print new messages of a subject (filter) as they arrive."
    )

    @OptionGroup var store: StoreOptions

    @Argument(help: "An application subject or filter.")
    var subject: String

    @Flag(help: "One JSON object per line.")
    var json = false

    func run() async throws {
        try await store.withStore { store in
            guard let stream = try await store.stream(for: subject) else {
                fail("no stream stores \(subject) under prefix \"\(store.prefix)\"")
            }
            for try await message in store.messages(on: subject, from: .sequence(stream.lastSequence + 1), follow: true)
            {
                emit(json ? jsonLine(try message.jsonObject()) : message.line)
            }
        }
    }
}

struct Consumers: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the consumers of a category's stream with pending, ack pending and redelivered."
    )

    @OptionGroup var store: StoreOptions

    @Argument(help: "The category, such as orders.")
    var category: String

    @Flag(help: "One JSON object per line: name, stream, filter, pending, ackPending, redelivered, maxDeliver.")
    var json = false

    func run() async throws {
        try await store.withStore { store in
            let consumers = try await store.consumers(of: category).sorted { $0.name < $1.name }
            if json {
                for consumer in consumers {
                    var object: [String: JSONValue] = [
                        "name": .string(consumer.name), "stream": .string(consumer.stream),
                        "pending": .int(Int(clamping: consumer.pending)), "ackPending": .int(consumer.ackPending),
                        "redelivered": .int(consumer.redelivered),
                    ]
                    if let filter = consumer.filter { object["filter"] = .string(filter) }
                    if let maxDeliver = consumer.maxDeliver { object["maxDeliver"] = .int(maxDeliver) }
                    emit(jsonLine(.object(object)))
                }
                return
            }
            emit(
                table(
                    ["CONSUMER", "PENDING", "ACK PENDING", "REDELIVERED"],
                    consumers.map { [$0.name, "\($0.pending)", "\($0.ackPending)", "\($0.redelivered)"] }
                )
            )
        }
    }
}

struct DeadLetters: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dead-letters",
        abstract: "List dead-lettered messages with the reason they were given up."
    )

    @OptionGroup var store: StoreOptions

    @Argument(help: "The dead-letter subject the workers use, such as dead-letters.")
    var deadLetterSubject: String

    @Flag(help: "One JSON object per line.")
    var json = false

    func run() async throws {
        try await store.withStore { store in
            guard try await store.stream(for: deadLetterSubject + ".>") != nil else {
                fail("no stream stores \(deadLetterSubject).> under prefix \"\(store.prefix)\"")
            }
            for try await letter in store.rawMessages(on: deadLetterSubject + ".>") {
                let headers = letter.headers
                if json {
                    var object: [String: JSONValue] = [
                        "seq": .int(Int(clamping: letter.sequence)),
                        "subject": .string(letter.subject),
                        "timestamp": .string(rfc3339(letter.timestamp)),
                        "body": .string(String(decoding: letter.body, as: UTF8.self)),
                    ]
                    let fields: [(String, String)] = [
                        ("reason", DeadLetterHeader.reason), ("cause", DeadLetterHeader.cause),
                        ("attempts", DeadLetterHeader.attempts), ("originalSubject", DeadLetterHeader.originalSubject),
                        ("originalStream", DeadLetterHeader.originalStream),
                        ("originalSequence", DeadLetterHeader.originalSequence),
                        ("consumer", DeadLetterHeader.consumer),
                    ]
                    for (key, header) in fields {
                        if let value = headers[header] { object[key] = .string(value) }
                    }
                    if let decoded = try? letter.decoded() {
                        object["type"] = .string(decoded.type)
                    }
                    emit(jsonLine(.object(object)))
                } else {
                    let original = headers[DeadLetterHeader.originalSubject] ?? "?"
                    let cause = headers[DeadLetterHeader.cause] ?? "?"
                    let attempts = headers[DeadLetterHeader.attempts] ?? "?"
                    emit(
                        "\(letter.sequence)  \(rfc3339(letter.timestamp))  from \(original)  \(cause) after \(attempts) attempt(s)"
                    )
                    emit("    \(headers[DeadLetterHeader.reason] ?? "(no reason given)")")
                }
            }
        }
    }
}

struct Replay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Republish dead-lettered messages to their original subjects, bodies unchanged."
    )

    @OptionGroup var store: StoreOptions

    @Argument(help: "The dead-letter subject the workers use, such as dead-letters.")
    var deadLetterSubject: String

    @Option(help: "Replay at most this many.")
    var limit: Int?

    @Flag(help: "Show the count and rate on stderr even when it is not a terminal (a terminal gets it after 1s).")
    var progress = false

    func run() async throws {
        try await store.withStore { store in
            guard let stream = try await store.stream(for: deadLetterSubject + ".>") else {
                fail("no stream stores \(deadLetterSubject).> under prefix \"\(store.prefix)\"")
            }
            var replayed = 0
            let shown = ProgressLine("replayed", forced: progress)
            for try await letter in store.rawMessages(on: deadLetterSubject + ".>", limit: limit) {
                guard let original = letter.headers[DeadLetterHeader.originalSubject] else {
                    emit("skipped \(letter.sequence): no \(DeadLetterHeader.originalSubject) header")
                    continue
                }
                var headers = MessageHeaders()
                for field in letter.headers
                where !field.name.hasPrefix("MessageStore-") && !field.name.hasPrefix("Nats-") {
                    headers.add(field.value, for: field.name)
                }
                // Replaying the same dead letter twice within the duplicate window stores it once.
                let ack = try await store.publish(
                    rawBody: letter.body,
                    to: original,
                    id: "replay:\(stream.name):\(letter.sequence)",
                    headers: headers
                )
                emit(
                    "replayed dead letter \(letter.sequence) to \(original): stored in \(ack.stream) at sequence \(ack.sequence)\(ack.isDuplicate ? " (already replayed)" : "")"
                )
                replayed += 1
                shown.advance()
            }
            shown.finish()
            emit("\(replayed) message(s) replayed")
        }
    }
}

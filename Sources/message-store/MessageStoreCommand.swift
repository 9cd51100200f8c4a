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
            the way in, as the library does.
            """,
        subcommands: [
            Streams.self, Publish.self, Read.self, Last.self, Tail.self, Consumers.self, DeadLetters.self,
            Replay.self,
        ]
    )
}

/// Where the store is: options every subcommand takes.
struct StoreOptions: ParsableArguments {
    @Option(help: "NATS server URL(s), comma-separated. Defaults to NATS_URL or nats://127.0.0.1:4222.")
    var server: String?

    @Option(help: "The environment prefix, such as dev or staging. Defaults to none.")
    var prefix: String = ""

    /// Connects, runs `body`, and closes; any failure becomes one line on stderr and exit status 1.
    func withStore(_ body: (MessageStore) async throws -> Void) async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .critical
            return handler
        }
        var configuration = NATSConnection.Configuration()
        if let server {
            configuration.servers = server.split(separator: ",").map { String($0) }
        }
        configuration.reconnect.maxAttempts = 0
        let connection: NATSConnection
        do {
            connection = try await NATSConnection.connect(configuration)
        } catch {
            fail("cannot reach a NATS server at \(configuration.servers.joined(separator: ",")): \(error.message)")
        }
        do {
            let store = try MessageStore(connection: connection, prefix: prefix)
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

    func run() async throws {
        try await store.withStore { store in
            let streams = try await store.streams().sorted { $0.name < $1.name }
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

    func run() async throws {
        try await store.withStore { store in
            guard try await store.stream(for: subject) != nil else {
                fail("no stream stores \(subject) under prefix \"\(store.prefix)\"")
            }
            for try await message in store.messages(on: subject, from: .sequence(from), limit: limit) {
                emit(json ? jsonLine(try message.jsonObject()) : message.line)
            }
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

    func run() async throws {
        try await store.withStore { store in
            let consumers = try await store.consumers(of: category).sorted { $0.name < $1.name }
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

    func run() async throws {
        try await store.withStore { store in
            guard let stream = try await store.stream(for: deadLetterSubject + ".>") else {
                fail("no stream stores \(deadLetterSubject).> under prefix \"\(store.prefix)\"")
            }
            var replayed = 0
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
            }
            emit("\(replayed) message(s) replayed")
        }
    }
}

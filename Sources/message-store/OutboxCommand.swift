import ArgumentParser
import Foundation
import Logging
import MessageStore
import MessageStorePostgres
import PostgresNIO

/// `message-store outbox`: the PostgreSQL outbox's pending and set-aside messages.
struct OutboxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "outbox",
        abstract: "Inspect a PostgreSQL outbox and requeue the messages it set aside.",
        subcommands: [OutboxPending.self, OutboxFailed.self, OutboxRequeue.self]
    )
}

struct DatabaseOptions: ParsableArguments {
    @Option(
        name: .customLong("database"),
        help: ArgumentHelp(
            "The PostgreSQL database, postgres://user[:password]@host[:port]/database (default: $DATABASE_URL).",
            valueName: "url"
        )
    )
    var url: String?

    @Option(help: "The outbox table.")
    var table = "message_store_outbox"

    /// The connection configuration `url` (or `DATABASE_URL`) describes; the password is never
    /// repeated in an error.
    func configuration() -> PostgresConnection.Configuration {
        guard let text = url ?? ProcessInfo.processInfo.environment["DATABASE_URL"] else {
            fail("no database: pass --database postgres://user@host/database or set DATABASE_URL")
        }
        guard let components = URLComponents(string: text),
            components.scheme == "postgres" || components.scheme == "postgresql",
            let host = components.host, !host.isEmpty, let user = components.user, !user.isEmpty
        else {
            fail("the database URL must look like postgres://user[:password]@host[:port]/database")
        }
        let database = String(components.path.drop { $0 == "/" })
        return PostgresConnection.Configuration(
            host: host,
            port: components.port ?? 5432,
            username: user.removingPercentEncoding ?? user,
            password: components.password.map { $0.removingPercentEncoding ?? $0 },
            database: database.isEmpty ? nil : database,
            tls: .disable
        )
    }

    func withOutbox(_ body: (Outbox, PostgresConnection, Logger) async throws -> Void) async throws {
        guard Outbox.isValidTable(table) else { fail("--table must be an SQL name, not \(table)") }
        let configuration = configuration()
        let logger = Logger(label: "message-store-cli")
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(configuration: configuration, id: 1, logger: logger)
        } catch {
            fail(
                "cannot connect to PostgreSQL at \(configuration.host ?? "?"):\(configuration.port ?? 5432) as "
                    + "\(configuration.username): \(Self.describe(error))"
            )
        }
        do {
            try await body(Outbox(table: table), connection, logger)
            try? await connection.close()
        } catch {
            try? await connection.close()
            fail(Self.describe(error))
        }
    }

    /// PostgreSQL's own message when there is one (PSQLError's description hides it).
    static func describe(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] { return message }
            return "\(error.code)"
        }
        return "\(error)"
    }
}

struct OutboxPending: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pending",
        abstract: "How many messages wait to be published, and the age of the oldest."
    )

    @OptionGroup var database: DatabaseOptions

    @Flag(help: "One JSON object.")
    var json = false

    func run() async throws {
        try await database.withOutbox { outbox, connection, logger in
            let pending = try await outbox.pending(on: connection, logger: logger)
            let age = pending.oldest.map { Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18 }
            if json {
                var object: [String: JSONValue] = ["pending": .int(pending.count)]
                if let age { object["oldestSeconds"] = .double(age) }
                emit(jsonLine(.object(object)))
            } else if let age {
                emit("\(pending.count) pending, the oldest staged \(String(format: "%.3f", age)) s ago")
            } else {
                emit("0 pending")
            }
        }
    }
}

struct OutboxFailed: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "failed",
        abstract: "The messages set aside after a permanent failure, with the reason."
    )

    @OptionGroup var database: DatabaseOptions

    @Flag(help: "One JSON object per line.")
    var json = false

    func run() async throws {
        try await database.withOutbox { outbox, connection, logger in
            for message in try await outbox.failed(on: connection, logger: logger) {
                if json {
                    emit(
                        jsonLine(
                            .object([
                                "row": .int(Int(message.rowID)), "id": .string(message.messageID),
                                "subject": .string(message.subject), "type": .string(message.type),
                                "attempts": .int(message.attempts), "reason": .string(message.reason),
                            ])
                        )
                    )
                } else {
                    emit("\(message.rowID)  \(message.subject)  \(message.type)  id \(message.messageID)")
                    emit("    \(message.reason)")
                }
            }
        }
    }
}

struct OutboxRequeue: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "requeue",
        abstract: "Put messages set aside back in line (all of them, or the given rows)."
    )

    @OptionGroup var database: DatabaseOptions

    @Argument(help: "Row ids, as `outbox failed` shows them (default: every message set aside).")
    var rows: [Int64] = []

    func run() async throws {
        try await database.withOutbox { outbox, connection, logger in
            let count = try await outbox.requeue(rows.isEmpty ? nil : rows, on: connection, logger: logger)
            emit("requeued \(count) message(s)")
        }
    }
}

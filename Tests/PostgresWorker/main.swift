// A process for the outbox and inbox fault tests: they start it, kill it (SIGKILL) or stop it
// (SIGTERM), and read what it did from its standard output, one line per event, unbuffered.
//
// MODE=relay: an OutboxRelay of the default outbox; prints "ready", then nothing.
// MODE=inbox: a worker of the consumer CONSUMER on jobs.>, its Job handler going through the
//   inbox INBOX and inserting the Job's value into the table `effects` in that transaction;
//   prints "delivered <sequence> <attempt>" as a Job arrives and "handled <sequence> <attempt>"
//   when its handler ran, and kills itself after the Job whose value is DIE_AFTER was handled
//   (its transaction committed, its acknowledgement not yet sent).
//
// Configured by the environment: NATS_URL, PREFIX, PG_PORT, MODE, CONSUMER, INBOX, DIE_AFTER.

import Foundation
import Logging
import MessageStore
import MessageStorePostgres
import PostgresNIO
import ServiceLifecycle
import UnixSignals

struct Job: MessagePayload {
    var value: Int
}

func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

let environment = ProcessInfo.processInfo.environment
var logger = Logger(label: "postgres-worker")
logger.logLevel = environment["LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .error

let connection = try await NATSConnection.connect(
    NATSConnection.Configuration(url: environment["NATS_URL"] ?? "nats://127.0.0.1:4222"),
    logger: logger
)
let store = try MessageStore(
    connection: connection,
    prefix: environment["PREFIX"] ?? "fault",
    createMissingStreams: true,
    logger: logger
)
let database = PostgresConnection.Configuration(
    host: "127.0.0.1",
    port: Int(environment["PG_PORT"] ?? "") ?? 5432,
    username: "postgres",
    password: nil,
    database: "postgres",
    tls: .disable
)
var services: [any Service] = []
switch environment["MODE"] {
case "relay":
    var configuration = OutboxRelay.Configuration()
    configuration.standbyInterval = .milliseconds(200)
    configuration.batchSize = 200
    services = [
        OutboxRelay(outbox: Outbox(), store: store, database: database, configuration: configuration, logger: logger)
    ]
default:
    let client = PostgresClient(
        configuration: PostgresClient.Configuration(
            host: "127.0.0.1",
            port: database.port ?? 5432,
            username: "postgres",
            password: nil,
            database: "postgres",
            tls: .disable
        )
    )
    let dieAfter = environment["DIE_AFTER"].flatMap { Int($0) }
    let once = Inbox(name: environment["INBOX"] ?? "jobs").once(in: client, logger: logger) {
        (message: ReceivedMessage<Job>, transaction: PostgresConnection) in
        try await transaction.query("INSERT INTO effects (value) VALUES (\(message.data.value))", logger: logger)
        emit("handled \(message.sequence) \(message.attempt)")
    }
    var configuration = Subscription.Configuration()
    configuration.ackWait = .milliseconds(1_000)
    let worker = try store.subscription(
        to: "jobs.>",
        consumer: environment["CONSUMER"] ?? "inbox-worker",
        handlers: MessageHandlers().handling(Job.self) { message in
            emit("delivered \(message.sequence) \(message.attempt)")
            try await once(message)
            if message.data.value == dieAfter { kill(getpid(), SIGKILL) }
        },
        configuration: configuration
    )
    services = [client, worker]
}
emit("ready")
let group = ServiceGroup(services: services, gracefulShutdownSignals: [.sigterm], logger: logger)
try await group.run()
await connection.close()
emit("stopped")

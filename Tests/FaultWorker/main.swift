// A worker process for the fault tests: they start it, kill it (SIGKILL) or stop it (SIGTERM),
// and read what it did from its standard output, one line per event, written unbuffered so that
// nothing is lost when it dies:
//
//   start <sequence> <attempt>     a Job handler started
//   handled <sequence> <attempt>   a Job handler finished (its acknowledgement follows)
//   poison <sequence> <attempt>    the Poison handler started; it kills the process at once
//
// Configured by the environment: NATS_URL, PREFIX, CONSUMER, ACK_WAIT_MS, JOB_MS.

import Foundation
import Logging
import MessageStore
import ServiceLifecycle
import UnixSignals

struct Job: MessagePayload {
    var value: Int
}

struct Poison: MessagePayload {
    var value: Int
}

func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

let environment = ProcessInfo.processInfo.environment
let jobTime = Duration.milliseconds(Int(environment["JOB_MS"] ?? "") ?? 5)
var logger = Logger(label: "fault-worker")
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
var configuration = Subscription.Configuration()
configuration.deadLetterSubject = "dlq"
configuration.ackWait = .milliseconds(Int(environment["ACK_WAIT_MS"] ?? "") ?? 2_000)
let worker = try store.subscription(
    to: "jobs.>",
    consumer: environment["CONSUMER"] ?? "fault-worker",
    handlers: MessageHandlers()
        .handling(Job.self) { message in
            emit("start \(message.sequence) \(message.attempt)")
            try await Task.sleep(for: jobTime)
            emit("handled \(message.sequence) \(message.attempt)")
        }
        .handling(Poison.self) { message in
            emit("poison \(message.sequence) \(message.attempt)")
            kill(getpid(), SIGKILL)
        },
    configuration: configuration
)
emit("ready")
let group = ServiceGroup(services: [worker], gracefulShutdownSignals: [.sigterm], logger: logger)
try await group.run()
await connection.close()
emit("stopped")

// A worker process for the fault tests: they start it, kill it (SIGKILL) or stop it (SIGTERM),
// and read what it did from its standard output, one line per event, written unbuffered so that
// nothing is lost when it dies:
//
//   start <sequence> <attempt>     a Job handler started
//   handled <sequence> <attempt>   a Job handler finished (its acknowledgement follows)
//   poison <sequence> <attempt>    the Poison handler started; it kills the process at once
//
//   delivered <sequence> <attempt> with HANDLED: a Job reached the worker, before the record of
//                                  handled messages says whether its handler runs
//
// Configured by the environment: NATS_URL, PREFIX, CONSUMER, ACK_WAIT_MS, JOB_MS; HANDLED names
// a record of handled messages (HandledMessages) that Job handlers go through, and DIE_AFTER a
// Job value after whose handling (handler and record done, acknowledgement not yet sent) the
// process kills itself.

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

/// Wall-clock nanoseconds, comparable between the processes of one machine.
@Sendable func now() -> Int64 {
    var time = timespec()
    clock_gettime(CLOCK_REALTIME, &time)
    return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
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
let runJob: @Sendable (ReceivedMessage<Job>) async throws -> Void = { message in
    emit("start \(message.sequence) \(message.attempt)")
    try await Task.sleep(for: jobTime)
    emit("handled \(message.sequence) \(message.attempt)")
}
var jobHandler = runJob
var handled: HandledMessages?
if let name = environment["HANDLED"] { handled = try await store.handledMessages(name) }
let dieAfter = environment["DIE_AFTER"].flatMap { Int($0) }
if handled != nil || dieAfter != nil {
    let run = handled?.once(runJob) ?? runJob
    jobHandler = { message in
        emit("delivered \(message.sequence) \(message.attempt)")
        try await run(message)
        if message.data.value == dieAfter { kill(getpid(), SIGKILL) }
    }
}
let worker = try store.subscription(
    to: "jobs.>",
    consumer: environment["CONSUMER"] ?? "fault-worker",
    handlers: MessageHandlers()
        .handling(Job.self, jobHandler)
        .handling(Poison.self) { message in
            emit("poison \(message.sequence) \(message.attempt)")
            kill(getpid(), SIGKILL)
        },
    configuration: configuration
)
// With GROUP set, a member of that partitioned group over `jobs.*` instead, printing
// `gstart <key> <value> <attempt> <wall ns>` and `ghandled <key> <value> <wall ns>`.
var service: any Service = worker
if let groupName = environment["GROUP"] {
    var groupConfiguration = PartitionedGroup.Configuration(partitions: 12)
    groupConfiguration.heartbeatInterval = .milliseconds(250)
    groupConfiguration.worker.ackWait = configuration.ackWait
    groupConfiguration.worker.idlePollInterval = .milliseconds(500)
    groupConfiguration.worker.maxConcurrentHandlers = Int(environment["CONCURRENCY"] ?? "") ?? 16
    groupConfiguration.worker.batchSize = 64
    groupConfiguration.worker.maxAckPending = 256
    service = try store.partitionedGroup(
        groupName,
        to: "jobs.*",
        handlers: MessageHandlers().handling(Job.self) { message in
            let key = message.subject.split(separator: ".").last.map(String.init) ?? ""
            emit("gstart \(key) \(message.data.value) \(message.attempt) \(now())")
            try await Task.sleep(for: jobTime)
            emit("ghandled \(key) \(message.data.value) \(now())")
        },
        configuration: groupConfiguration
    )
}
emit("ready")
let group = ServiceGroup(services: [service], gracefulShutdownSignals: [.sigterm], logger: logger)
try await group.run()
await connection.close()
emit("stopped")

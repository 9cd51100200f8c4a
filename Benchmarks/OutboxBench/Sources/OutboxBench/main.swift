// The outbox_relay scenario with this library: OutboxRelay on the runner's PostgreSQL and NATS.
//
//   OutboxBench --nats URL --pg-port PORT --prefix P --rows N --samples M
//
// N rows committed (transactions of 100 through Outbox.stage), then a relay started and timed
// until the stream holds them all (throughput); then M single-row commits one at a time, each
// timed from its commit's return to the message's arrival at a reader that follows the stream
// (commit-to-stored latency, LISTEN/NOTIFY waking the relay). Prints one JSON object.

import Foundation
import Logging
import MessageStore
import MessageStorePostgres
import PostgresNIO
import Synchronization

struct Counter: MessagePayload {
    var value: Int
}

func milliseconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) * 1_000 + Double(duration.components.attoseconds) / 1e15
}
func run() async throws {
    var options: [String: String] = [:]
    var arguments = CommandLine.arguments.dropFirst().makeIterator()
    while let name = arguments.next(), let value = arguments.next() { options[String(name.dropFirst(2))] = value }
    let rows = Int(options["rows"] ?? "") ?? 20_000
    let samples = Int(options["samples"] ?? "") ?? 100
    let prefix = options["prefix"] ?? "bench"
    var logger = Logger(label: "outbox-bench")
    logger.logLevel = .error

    let connection = try await NATSConnection.connect(
        NATSConnection.Configuration(url: options["nats"] ?? "nats://127.0.0.1:4222"),
        logger: logger
    )
    let store = try MessageStore(connection: connection, prefix: prefix, createMissingStreams: true, logger: logger)
    try await store.ensureStream("outbox")
    let database = PostgresConnection.Configuration(
        host: "127.0.0.1",
        port: Int(options["pg-port"] ?? "") ?? 5432,
        username: "postgres",
        password: nil,
        database: "postgres",
        tls: .disable
    )
    let postgres = try await PostgresConnection.connect(configuration: database, id: 1, logger: logger)
    let outbox = Outbox()
    try await outbox.migrate(on: postgres, logger: logger)
    try await postgres.query("TRUNCATE message_store_outbox", logger: logger)
    for first in stride(from: 0, to: rows, by: 100) {
        try await postgres.withTransaction(logger: logger) { transaction in
            for value in first..<min(first + 100, rows) {
                try await outbox.stage(
                    Counter(value: value),
                    to: "outbox.\(value % 50)",
                    on: transaction,
                    logger: logger
                )
            }
        }
    }

    let relay = OutboxRelay(outbox: outbox, store: store, database: database, logger: logger)
    let clock = ContinuousClock()
    let started = clock.now
    let relaying = Task { try await relay.run() }
    while try await store.stream(for: "outbox.1")?.messages ?? 0 < UInt64(rows) {
        try await Task.sleep(for: .milliseconds(10))
    }
    let elapsed = clock.now - started

    // Latency: one commit at a time, to the message's arrival at a reader following the stream.
    let arrivals = AsyncStream<ContinuousClock.Instant>.makeStream()
    let last = try await store.stream(for: "outbox.1")?.lastSequence ?? 0
    let reader = Task {
        for try await _ in store.rawMessages(on: "outbox.latency", from: .sequence(last + 1), follow: true) {
            arrivals.continuation.yield(clock.now)
        }
    }
    var arrived = arrivals.stream.makeAsyncIterator()
    var latencies: [Duration] = []
    for value in 0..<samples {
        _ = try await postgres.withTransaction(logger: logger) { transaction in
            try await outbox.stage(Counter(value: value), to: "outbox.latency", on: transaction, logger: logger)
        }
        let committed = clock.now
        guard let at = await arrived.next() else { break }
        latencies.append(at - committed)
    }
    reader.cancel()
    relaying.cancel()
    _ = try? await relaying.value
    try await postgres.close()
    await connection.close()

    latencies.sort()
    let seconds = milliseconds(elapsed) / 1_000
    print(
        """
        {"rate": \(Double(rows) / seconds), "p50_ms": \(milliseconds(latencies[latencies.count / 2])), \
        "p99_ms": \(milliseconds(latencies[min(latencies.count - 1, latencies.count * 99 / 100)]))}
        """
    )
}

try await run()

import ArgumentParser
import Foundation
import MessageStore

/// `health [CATEGORY…] [--consumer CATEGORY:NAME…]`: exit status 0 when healthy, 1 when not.
struct HealthCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "health",
        abstract: "Check the server, the categories' streams and consumers; exit status 0 when healthy, 1 when not.",
        discussion: """
            Unhealthy (exit status 1): no server can be reached; JetStream does not answer; a \
            category has no stream; a consumer does not exist or lags more than --max-lag \
            messages. Degraded (exit status 0, 1 with --strict): the server did not answer a \
            ping within --timeout. Each check waits at most --timeout (default 5s).
            """
    )

    @OptionGroup var store: StoreOptions

    @Argument(help: "Categories whose stream must exist, such as orders.")
    var categories: [String] = []

    @Option(
        name: .customLong("consumer"),
        help: "A durable consumer that must exist, as CATEGORY:NAME, such as orders:billing. Repeatable."
    )
    var consumers: [String] = []

    @Option(name: .customLong("max-lag"), help: "The most unacknowledged messages a consumer may have.")
    var maxLag: UInt64?

    @Flag(help: "Exit with status 1 when degraded too.")
    var strict = false

    @Flag(
        help: """
            Print one JSON object: level, reasons, server, roundTripMs, streams (category, stream, \
            messages), consumers (category, name, pending, ackPending, redelivered, lag).
            """
    )
    var json = false

    private var namedConsumers: [(category: String, name: String)] {
        consumers.compactMap(Self.categoryAndName)
    }

    /// `CATEGORY:NAME` split, or nil when either part is missing.
    private static func categoryAndName(_ text: String) -> (category: String, name: String)? {
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        return parts.count == 2 && !parts[0].isEmpty && !parts[1].isEmpty ? (parts[0], parts[1]) : nil
    }

    func validate() throws {
        if let bad = consumers.first(where: { Self.categoryAndName($0) == nil }) {
            throw ValidationError("--consumer \(bad) is not CATEGORY:NAME, such as orders:billing")
        }
    }

    func run() async throws {
        StoreOptions.silenceTheLibrarysLogs()
        let configuration = try store.connectionConfiguration()
        var report = Report()
        let connection: NATSConnection
        do {
            connection = try await NATSConnection.connect(configuration)
        } catch {
            report.flag(.unhealthy, "cannot reach a NATS server: \(error.message)")
            try finish(report)
        }
        do {
            let messageStore = try MessageStore(connection: connection, prefix: store.prefix)
            await check(messageStore, timeout: configuration.requestTimeout, into: &report)
        } catch {
            report.flag(.unhealthy, error.message)
        }
        await connection.close()
        try finish(report)
    }

    private func check(_ store: MessageStore, timeout: Duration, into report: inout Report) async {
        let status = await store.connection.status(timeout: timeout)
        report.server = status.server
        report.roundTrip = status.roundTripTime
        switch status.state {
        case .connected:
            if status.roundTripTime == nil {
                report.flag(.degraded, "the NATS server did not answer a ping within \(timeout)")
            }
        case .reconnecting, .closed:
            report.flag(.unhealthy, "not connected to a NATS server")
            return
        }
        do {
            _ = try await store.streams()
        } catch {
            report.flag(.unhealthy, "JetStream does not answer: \(error.message)")
            return
        }
        let wanted = categories + namedConsumers.map(\.category).filter { !categories.contains($0) }
        for category in wanted {
            do {
                guard let stream = try await store.stream(for: category + ".>") else {
                    report.flag(.unhealthy, "no stream stores \(category).> under prefix \"\(store.prefix)\"")
                    continue
                }
                report.streams.append(
                    .object([
                        "category": .string(category), "stream": .string(stream.name),
                        "messages": .int(Int(clamping: stream.messages)),
                    ])
                )
                let names = namedConsumers.filter { $0.category == category }.map(\.name)
                guard !names.isEmpty else { continue }
                let existing = try await store.consumers(ofStream: stream.name)
                for name in names {
                    guard let consumer = existing.first(where: { $0.name == name }) else {
                        report.flag(.unhealthy, "\(stream.name) has no consumer \(name)")
                        continue
                    }
                    report.consumers.append(
                        .object([
                            "category": .string(category), "name": .string(name),
                            "pending": .int(Int(clamping: consumer.pending)), "ackPending": .int(consumer.ackPending),
                            "redelivered": .int(consumer.redelivered), "lag": .int(Int(clamping: consumer.lag)),
                        ])
                    )
                    if let maxLag, consumer.lag > maxLag {
                        report.flag(
                            .unhealthy,
                            "consumer \(name) has \(consumer.lag) unacknowledged message(s), more than \(maxLag)"
                        )
                    }
                }
            } catch {
                report.flag(.unhealthy, "cannot check \(category): \(error.message)")
            }
        }
    }

    /// Prints the report and exits with its status.
    private func finish(_ report: Report) throws -> Never {
        if json {
            let object: [String: JSONValue] = [
                "level": .string(report.level.name),
                "reasons": .array(report.reasons.map(JSONValue.string)),
                "server": report.server.map(JSONValue.string) ?? .null,
                "roundTripMs": report.roundTrip.map { .double(milliseconds($0)) } ?? .null,
                "streams": .array(report.streams),
                "consumers": .array(report.consumers),
            ]
            emit(jsonLine(.object(object)))
        } else {
            var line = report.level.name
            if let server = report.server { line += ": connected to \(server)" }
            if let roundTrip = report.roundTrip {
                line += ", round trip \(String(format: "%.2f", milliseconds(roundTrip))) ms"
            }
            emit(line)
            for reason in report.reasons { emit("  \(reason)") }
        }
        let failed = report.level == .unhealthy || (strict && report.level == .degraded)
        Foundation.exit(failed ? 1 : 0)
    }

    private func milliseconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) * 1e3 + Double(duration.components.attoseconds) / 1e15
    }

    struct Report {
        var level = HealthReport.Level.healthy
        var reasons: [String] = []
        var server: String?
        var roundTrip: Duration?
        var streams: [JSONValue] = []
        var consumers: [JSONValue] = []

        mutating func flag(_ level: HealthReport.Level, _ reason: String) {
            self.level = max(self.level, level)
            reasons.append(reason)
        }
    }
}

extension HealthReport.Level {
    var name: String {
        switch self {
        case .healthy: "healthy"
        case .degraded: "degraded"
        case .unhealthy: "unhealthy"
        }
    }
}

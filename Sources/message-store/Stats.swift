import ArgumentParser
import Foundation
import MessageStore

/// `stats [CATEGORY]`: what each stream holds and how far behind its consumers are.
struct Stats: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show each stream's messages, bytes, first and last message, subjects, and its consumers' lag.",
        discussion: """
            A consumer's lag is what it has not acknowledged yet: its pending messages (stored, \
            not yet delivered) and its ack pending ones (delivered, not yet acknowledged).
            """
    )

    @OptionGroup var store: StoreOptions

    @Argument(help: "A category, such as orders. Defaults to every stream under the prefix.")
    var category: String?

    @Flag(
        help: """
            One JSON object per stream: name, subjects, messages, bytes, subjectCount, firstSeq, firstTime, \
            lastSeq, lastTime, consumers (name, filter, pending, ackPending, redelivered, lag).
            """
    )
    var json = false

    func run() async throws {
        try await store.withStore { store in
            let streams: [StreamDescription]
            if let category {
                guard let stream = try await store.stream(for: category + ".>") else {
                    fail("no stream stores \(category).> under prefix \"\(store.prefix)\"")
                }
                streams = [stream]
            } else {
                streams = try await store.streams().sorted { $0.name < $1.name }
            }
            for stream in streams {
                let consumers = try await store.consumers(ofStream: stream.name).sorted { $0.name < $1.name }
                if json {
                    emit(jsonLine(Self.jsonObject(stream, consumers)))
                } else {
                    emit(Self.text(stream, consumers))
                }
            }
            if streams.isEmpty && !json { emit("no streams under prefix \"\(store.prefix)\"") }
        }
    }

    static func jsonObject(_ stream: StreamDescription, _ consumers: [ConsumerDescription]) -> JSONValue {
        guard case .object(var object) = stream.jsonObject else { return stream.jsonObject }
        object["subjectCount"] = stream.subjectCount.map(JSONValue.int) ?? .null
        object["firstTime"] = stream.firstTimestamp.map { .string(rfc3339($0)) } ?? .null
        object["lastTime"] = stream.lastTimestamp.map { .string(rfc3339($0)) } ?? .null
        object["consumers"] = .array(
            consumers.map { consumer in
                .object([
                    "name": .string(consumer.name),
                    "filter": consumer.filter.map(JSONValue.string) ?? .null,
                    "pending": .int(Int(clamping: consumer.pending)),
                    "ackPending": .int(consumer.ackPending),
                    "redelivered": .int(consumer.redelivered),
                    "lag": .int(Int(clamping: consumer.lag)),
                ])
            }
        )
        return .object(object)
    }

    static func text(_ stream: StreamDescription, _ consumers: [ConsumerDescription]) -> String {
        func position(_ sequence: UInt64, _ time: Date?) -> String {
            time.map { "\(sequence) at \(rfc3339($0))" } ?? "none"
        }
        var lines = [
            "\(stream.name)  \(stream.subjects.joined(separator: ","))",
            "  messages  \(stream.messages) (\(stream.bytes) bytes)"
                + (stream.subjectCount.map { " on \($0) subject(s)" } ?? ""),
            "  first     \(position(stream.firstSequence, stream.firstTimestamp))",
            "  last      \(position(stream.lastSequence, stream.lastTimestamp))",
        ]
        if consumers.isEmpty {
            lines.append("  no consumers")
        } else {
            let rows = consumers.map {
                [$0.name, "\($0.pending)", "\($0.ackPending)", "\($0.redelivered)", "\($0.lag)"]
            }
            let columns = table(["CONSUMER", "PENDING", "ACK PENDING", "REDELIVERED", "LAG"], rows)
            lines += columns.split(separator: "\n").map { "  " + $0 }
        }
        return lines.joined(separator: "\n")
    }
}

extension ConsumerDescription {
    /// Messages not yet acknowledged: pending and ack pending.
    var lag: UInt64 {
        pending &+ UInt64(max(0, ackPending))
    }
}

import ArgumentParser
import Foundation
import MessageStore

/// `trace --correlation-id ID CATEGORY…`: one conversation's messages, each under its cause.
struct Trace: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Print the messages of a correlation id as a causal chain: each message under the one that caused it.",
        discussion: """
            Messages carry the correlation id and their cause (subject and sequence) in their metadata, \
            as MessageMetadata.following(_:) sets them. The chain starts at the messages whose cause \
            is not among them; when the id is one MessageMetadata.following(_:) derived from a \
            message (SUBJECT#SEQUENCE), that message is the start. Messages that caused the same one \
            come in the order they were stored.
            """
    )

    @OptionGroup var store: StoreOptions

    @Option(name: .customLong("correlation-id"), help: "The correlation id to follow.")
    var correlationId: String

    @Argument(help: "The categories to search, such as orders payments.")
    var categories: [String]

    @Flag(
        help: """
            One JSON object per message, in the chain's order: seq, subject, type, data, metadata, \
            timestamp, depth (0 for a start), causedBy (SUBJECT#SEQUENCE, when it has a cause).
            """
    )
    var json = false

    func validate() throws {
        guard !categories.isEmpty else { throw ValidationError("name at least one category to search") }
    }

    func run() async throws {
        try await store.withStore { store in
            var found: [StoredMessage] = []
            for category in categories {
                guard try await store.stream(for: category + ".>") != nil else {
                    fail("no stream stores \(category).> under prefix \"\(store.prefix)\"")
                }
                found += try await store.messages(correlatedWith: correlationId, in: category)
            }
            if let start = try await derivedStart(in: store),
                !found.contains(where: { $0.subject == start.subject && $0.sequence == start.sequence })
            {
                found.append(start)
            }
            guard !found.isEmpty else {
                fail("no message in \(categories.joined(separator: ", ")) has correlation id \(correlationId)")
            }
            for (message, depth) in CausalChain(found).ordered {
                if json {
                    guard case .object(var object) = try message.jsonObject() else { continue }
                    object["depth"] = .int(depth)
                    if let cause = message.metadata?.causation {
                        object["causedBy"] = .string("\(cause.subject)#\(cause.sequence)")
                    }
                    emit(jsonLine(.object(object)))
                } else {
                    let indent = String(repeating: "  ", count: depth) + (depth > 0 ? "└ " : "")
                    var line = indent + message.line
                    if depth == 0, let cause = message.metadata?.causation {
                        line += "  (caused by \(cause.subject)#\(cause.sequence))"
                    }
                    emit(line)
                }
            }
        }
    }

    /// The message a derived id (`SUBJECT#SEQUENCE`) names, when it is in one of the categories.
    private func derivedStart(in store: MessageStore) async throws -> StoredMessage? {
        guard let hash = correlationId.lastIndex(of: "#"),
            let sequence = UInt64(correlationId[correlationId.index(after: hash)...]), sequence > 0
        else { return nil }
        let subject = String(correlationId[..<hash])
        let category = subject.split(separator: ".", maxSplits: 1).first.map(String.init) ?? subject
        guard categories.contains(category), !subject.contains("*"), !subject.contains(">"),
            (try? await store.stream(for: subject)) != nil
        else { return nil }
        for try await message in store.messages(on: subject, from: .sequence(sequence), limit: 1) {
            return message.sequence == sequence ? message : nil
        }
        return nil
    }
}

/// Messages arranged by cause: each start (a message whose cause is not among them) in the order
/// stored, each followed by what it caused, depth first.
struct CausalChain {
    let ordered: [(message: StoredMessage, depth: Int)]

    init(_ messages: [StoredMessage]) {
        func key(_ subject: String, _ sequence: UInt64) -> String { "\(subject)#\(sequence)" }
        let byTime = messages.sorted { ($0.timestamp, $0.sequence) < ($1.timestamp, $1.sequence) }
        let present = Set(byTime.map { key($0.subject, $0.sequence) })
        var children: [String: [StoredMessage]] = [:]
        var starts: [StoredMessage] = []
        for message in byTime {
            if let cause = message.metadata?.causation, present.contains(key(cause.subject, cause.sequence)) {
                children[key(cause.subject, cause.sequence), default: []].append(message)
            } else {
                starts.append(message)
            }
        }
        var ordered: [(StoredMessage, Int)] = []
        var visited: Set<String> = []
        // An explicit stack: a peer's metadata may make the chain arbitrarily deep (or a cycle).
        var stack = starts.reversed().map { ($0, 0) }
        while let (message, depth) = stack.popLast() {
            let id = key(message.subject, message.sequence)
            guard visited.insert(id).inserted else { continue }
            ordered.append((message, depth))
            for child in (children[id] ?? []).reversed() { stack.append((child, depth + 1)) }
        }
        // Messages only reachable through a cycle of causes: shown as starts, in time order.
        for message in byTime where !visited.contains(key(message.subject, message.sequence)) {
            visited.insert(key(message.subject, message.sequence))
            ordered.append((message, 0))
        }
        self.ordered = ordered
    }
}

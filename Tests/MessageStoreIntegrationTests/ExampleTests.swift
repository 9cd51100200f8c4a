import Foundation
import MessageStoreTestSupport
import MessageStoreTesting
import Testing

@Suite("Examples", .serverRequired)
struct ExampleTests {
    /// Examples/TracedWorker against a server of its own: one trace from the checkout through
    /// both workers, the retry as an event, the log line with the trace id, health while running
    /// and after the stop, and the metrics.
    @Test func tracedWorkerShowsOneTraceHealthAndMetrics() async throws {
        let output = try await Self.run("TracedWorker")
        try Self.check(output)
    }

    /// Examples/OrderedWorker: every account's deposits done in order, B2's failure retried
    /// before B3 starts, and the accounts interleaved (handled in parallel).
    @Test func orderedWorkerKeepsEachAccountsOrder() async throws {
        let output = try await Self.run("OrderedWorker")
        #expect(output.status == 0, "\(output.stdout)\n\(output.stderr)")
        let events = output.lines.compactMap { line -> (String, String)? in
            let words = line.split(separator: " ").map(String.init)
            guard let verb = words.firstIndex(where: { ["start", "done", "FAIL"].contains($0) }),
                verb + 1 < words.count
            else { return nil }
            return (words[verb], words[verb + 1].trimmingCharacters(in: CharacterSet(charactersIn: ":")))
        }
        for account in ["A", "B", "C"] {
            let done = events.filter { $0.0 == "done" && $0.1.hasPrefix(account) }.map(\.1)
            #expect(done == (1...5).map { "\(account)\($0)" }, "\(output.stdout)")
        }
        let b = events.filter { $0.1.hasPrefix("B") }.map { "\($0.0) \($0.1)" }
        let failed = try #require(b.firstIndex(of: "FAIL B2"))
        #expect(b[failed + 1] == "start B2")
        #expect(b.firstIndex(of: "start B3").map { $0 > failed + 1 } == true)
        // Parallel: some other account's line comes between a start and its done.
        let firstStart = try #require(events.firstIndex { $0.0 == "start" })
        let firstDone = try #require(events.firstIndex { $0.0 == "done" && $0.1 == events[firstStart].1 })
        #expect(events[(firstStart + 1)..<firstDone].contains { $0.1.first != events[firstStart].1.first })
    }

    /// Examples/GroupWorker: two member processes split the accounts; after one leaves, the
    /// other takes its partitions over; every account's transfers in order and once.
    @Test(.enabled(if: testServerHasSubjectTransforms)) func groupWorkerHandsPartitionsOver() async throws {
        let output = try await Self.run("GroupWorker")
        #expect(output.status == 0, "\(output.stdout)\n\(output.stderr)")
        #expect(output.stdout.contains("every account in order and once: yes"), "\(output.stdout)")
        #expect(output.stdout.contains("bob    holds partitions [0, 1, 2, 3]"), "\(output.stdout)")
        #expect(output.stdout.contains("alice  left the group"))
        let handledByAlice = output.lines.count { $0.hasPrefix("  alice  handled ") }
        #expect(handledByAlice > 0 && handledByAlice < 48)
    }

    /// What the story must show. (Out of the test's async closure: Swift 6.3's region checker
    /// crashes on this many expectations in one.)
    static func check(_ output: ChildProcess.Output) throws {
        #expect(output.status == 0, "\(output.stdout)\n\(output.stderr)")
        let spans = Self.spans(in: output.lines)
        let traces = Set(spans.map(\.trace))
        #expect(traces.count == 1, "\(spans)")
        let names = spans.map(\.name)
        #expect(names.count { $0.hasPrefix("PRODUCER nats publish checkout.order.T-") } == 2)
        #expect(names.count { $0.hasPrefix("PRODUCER nats publish checkout.charge.T-") } == 2)
        #expect(names.count { $0 == "CONSUMER nats process checkout.order.> (traced-order-worker)" } == 2)
        // T-2's charge fails once: three runs, the first with the retry event.
        #expect(names.count { $0 == "CONSUMER nats process checkout.charge.> (traced-payment-worker)" } == 3)
        #expect(names.count { $0 == "INTERNAL queue_wait" } == 5)
        #expect(names.count { $0 == "SERVER checkout" } == 1)
        #expect(output.stdout.contains("events: retry(message_store.attempt=1, message_store.retry_delay_ms=200)"))
        #expect(output.stdout.contains("error: the card was declined (this time)"))

        let logs = output.lines.filter { $0.contains("placing order") }
        #expect(logs.count == 2)
        let trace = try #require(traces.first)
        #expect(logs.allSatisfy { $0.contains("trace_id=\(trace)") && $0.contains("span_id=") })

        let running = try #require(output.lines.firstIndex(of: "Every charge handled; a readiness probe asks:"))
        // (The last handler's span may end just after the probe starts: the next health line.)
        let probed = output.lines[running...].first { $0.hasPrefix("  health: ") }
        #expect(probed == "  health: healthy")
        let stopped = try #require(output.lines.firstIndex(of: "Workers stopped; the probe now says:"))
        #expect(output.lines[stopped + 1].hasPrefix("  health: unhealthy (subscription traced-order-worker"))

        for metric in [
            #"message_store_handled_total{consumer="traced-order-worker",type="PlaceOrder"} 2"#,
            #"message_store_handled_total{consumer="traced-payment-worker",type="ChargeCard"} 2"#,
            #"message_store_retried_total{consumer="traced-payment-worker",type="ChargeCard"} 1"#,
            #"message_store_published_total{prefix="demo"} 4"#,
            #"message_store_connection_up{connection="default"} 1.0"#,
        ] {
            #expect(output.lines.contains("  " + metric), "\(metric)")
        }
    }

    /// Runs the built example `name` against a server of its own, to its end.
    static func run(_ name: String) async throws -> ChildProcess.Output {
        try await NATSTestServer.withServer { server in
            var environment = ProcessInfo.processInfo.environment
            environment["NATS_URL"] = server.url
            return try await ChildProcess.run(
                ChildProcess.builtExecutable(named: name),
                [],
                environment: environment,
                timeout: .seconds(30)
            )
        }
    }

    /// `  span [trace 0f38a900…] KIND name (1.2 ms), …` lines as the trace id's first eight
    /// digits and `KIND name`.
    static func spans(in lines: [String]) -> [(trace: String, name: String)] {
        lines.compactMap { line in
            guard line.hasPrefix("  span [trace "), let close = line.range(of: "…] "),
                let milliseconds = line.range(of: " ms)", range: close.upperBound..<line.endIndex),
                let duration = line.range(
                    of: " (",
                    options: .backwards,
                    range: close.upperBound..<milliseconds.lowerBound
                )
            else { return nil }
            let trace = String(line[line.index(line.startIndex, offsetBy: 14)..<close.lowerBound])
            return (trace, String(line[close.upperBound..<duration.lowerBound]))
        }
    }
}

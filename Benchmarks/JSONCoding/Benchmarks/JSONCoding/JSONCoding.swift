import Benchmark
import Foundation
@_spi(Benchmarks) import MessageStore

// The store's JSON coders against Foundation's on the bodies a service publishes and a worker
// reads: the same calls with `BodyCoding.fast` and `.foundation`, so the fast coders' speed-up
// is measured again on each toolchain (`Benchmarks/json` prints the ratios).

struct OrderPlaced: MessagePayload {
    var orderId: String
    var customerId: String
    var amount: Int
    var currency: String
    var express: Bool
    var lines: [Line]

    struct Line: Codable {
        var sku: String
        var quantity: Int
        var price: Double
    }
}

struct Counter: MessagePayload {
    var value: Int
}

let order = OrderPlaced(
    orderId: "order-42",
    customerId: "customer-7",
    amount: 12_550,
    currency: "EUR",
    express: true,
    lines: [
        .init(sku: "A-1", quantity: 2, price: 19.99),
        .init(sku: "B-22", quantity: 1, price: 85.5),
    ]
)
let counter = Counter(value: 1_234_567)
let metadata = MessageMetadata(
    originSubject: "orders.command.42",
    traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
    additionalFields: ["tenant": "acme", "attempt": 1]
)

let codings: [(name: String, coding: BodyCoding)] = [("fast", .fast), ("foundation", .foundation)]

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        maxDuration: .seconds(2),
        maxIterations: 1_000_000
    )

    for (name, coding) in codings {
        Benchmark("encode order with metadata (\(name))") { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(try BodyCodingBenchmarks.encodeEnvelope(order, metadata: metadata, coding: coding))
            }
        }
        Benchmark("encode counter (\(name))") { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(try BodyCodingBenchmarks.encodeEnvelope(counter, metadata: nil, coding: coding))
            }
        }

        let orderBody = try! BodyCodingBenchmarks.encodeEnvelope(order, metadata: metadata, coding: .foundation)
        let counterBody = try! BodyCodingBenchmarks.encodeEnvelope(counter, metadata: nil, coding: .foundation)
        let dispatch = BodyCodingBenchmarks.DispatchDecoder(
            payloadTypes: [OrderPlaced.self, Counter.self],
            coding: coding
        )
        Benchmark("dispatch order with metadata (\(name))") { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(try dispatch.decode(orderBody))
            }
        }
        Benchmark("dispatch counter (\(name))") { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(try dispatch.decode(counterBody))
            }
        }
        Benchmark("read order with metadata (\(name))") { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(try BodyCodingBenchmarks.decodeStored(OrderPlaced.self, from: orderBody, coding: coding))
            }
        }
    }
}

// swift-tools-version:6.1
// A micro-benchmark of the store's JSON coders (`package-benchmark`), kept out of the main package
// so that building the library or its tests never builds the benchmark harness:
//   swift package --package-path Benchmarks/JSONCoding benchmark
// or Benchmarks/json, which prints the speed-up of each.
import PackageDescription

let package = Package(
    name: "JSONCodingBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "swift-message-store", path: "../.."),
        // The malloc interposer alone: the runtime interposer is a package that Linux mirrors may
        // lack, and these benchmarks count time and allocations only.
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.29.0", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "JSONCoding",
            dependencies: [
                .product(name: "MessageStore", package: "swift-message-store"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/JSONCoding",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        )
    ]
)

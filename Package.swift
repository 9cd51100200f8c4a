// swift-tools-version:6.1
import PackageDescription

let upcomingFeatures: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "swift-message-store",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "MessageStore", targets: ["MessageStore"]),
        .library(name: "MessageStoreTesting", targets: ["MessageStoreTesting"]),
        .executable(name: "message-store", targets: ["message-store"]),
        // The PostgreSQL outbox and inbox: a product of its own, so that services that only use
        // NATS never build postgres-nio.
        .library(name: "MessageStorePostgres", targets: ["MessageStorePostgres"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.5.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.0.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.25.0"),
        // Only for Examples/TracedWorker's /metrics text.
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        .systemLibrary(
            name: "CNATS",
            pkgConfig: "libnats",
            providers: [.apt(["libnats-dev"]), .brew(["cnats"])]
        ),
        // OpenSSL's libcrypto (which cnats links too), for Ed25519: an NKey's public key derived
        // from its seed, and the test helpers' signatures.
        .systemLibrary(
            name: "CLibCrypto",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"]), .brew(["openssl@3"])]
        ),
        // The fast JSON coders of message bodies: no product, only the store uses them.
        .target(
            name: "MessageStoreJSON",
            swiftSettings: upcomingFeatures
        ),
        .target(
            name: "MessageStore",
            dependencies: [
                "CNATS",
                "CLibCrypto",
                "MessageStoreJSON",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: upcomingFeatures
        ),
        .target(
            name: "MessageStorePostgres",
            dependencies: [
                "MessageStore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: upcomingFeatures
        ),
        .target(
            name: "MessageStoreTesting",
            dependencies: ["MessageStore"],
            swiftSettings: upcomingFeatures
        ),
        .executableTarget(
            name: "message-store",
            dependencies: [
                "MessageStore",
                "MessageStorePostgres",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/message-store",
            swiftSettings: upcomingFeatures
        ),
        .executableTarget(
            name: "QuickStart",
            dependencies: ["MessageStore"],
            path: "Examples/QuickStart",
            swiftSettings: upcomingFeatures
        ),
        .target(
            name: "ExampleSupport",
            dependencies: ["MessageStore", .product(name: "Logging", package: "swift-log")],
            path: "Examples/Shared",
            swiftSettings: upcomingFeatures
        ),
        .executableTarget(
            name: "PublishCommands",
            dependencies: ["ExampleSupport", "MessageStore"],
            path: "Examples/PublishCommands",
            swiftSettings: upcomingFeatures
        ),
        .executableTarget(
            name: "SubscriberWorker",
            dependencies: [
                "ExampleSupport",
                "MessageStore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            path: "Examples/SubscriberWorker",
            swiftSettings: upcomingFeatures
        ),
        .executableTarget(
            name: "RetryAndTermination",
            dependencies: ["ExampleSupport", "MessageStore"],
            path: "Examples/RetryAndTermination",
            swiftSettings: upcomingFeatures
        ),
        .executableTarget(
            name: "OrderedWorker",
            dependencies: ["ExampleSupport", "MessageStore"],
            path: "Examples/OrderedWorker",
            swiftSettings: upcomingFeatures
        ),
        .executableTarget(
            name: "GroupWorker",
            dependencies: [
                "ExampleSupport",
                "MessageStore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            path: "Examples/GroupWorker",
            swiftSettings: upcomingFeatures
        ),
        .executableTarget(
            name: "OutboxService",
            dependencies: [
                "ExampleSupport",
                "MessageStore",
                "MessageStorePostgres",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Examples/OutboxService",
            swiftSettings: upcomingFeatures
        ),
        .executableTarget(
            name: "TracedWorker",
            dependencies: [
                "ExampleSupport",
                "MessageStore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            path: "Examples/TracedWorker",
            swiftSettings: upcomingFeatures
        ),
        // A worker process that the fault tests start, kill and stop.
        .executableTarget(
            name: "FaultWorker",
            dependencies: [
                "MessageStore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            path: "Tests/FaultWorker",
            swiftSettings: upcomingFeatures
        ),
        // What the test targets share (payload types, the logger, the nats-server requirement),
        // declared `package`: no product, so users of the library never see it.
        .target(
            name: "MessageStoreTestSupport",
            dependencies: [
                "MessageStore",
                "MessageStoreTesting",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
            ],
            path: "Tests/MessageStoreTestSupport",
            swiftSettings: upcomingFeatures
        ),
        .testTarget(
            name: "MessageStoreCLITests",
            dependencies: ["message-store", "MessageStore", "MessageStoreTesting", "MessageStoreTestSupport"],
            swiftSettings: upcomingFeatures
        ),
        // No server, no Python, no child processes: runs anywhere the package builds.
        .testTarget(
            name: "MessageStoreUnitTests",
            dependencies: [
                "MessageStore",
                "MessageStoreJSON",
                "MessageStoreTesting",
                "MessageStoreTestSupport",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: upcomingFeatures
        ),
        // Real nats-server processes, the Python package and the FaultWorker executable; skipped
        // where no nats-server is found, unless MESSAGE_STORE_REQUIRE_SERVER=1.
        .testTarget(
            name: "MessageStoreIntegrationTests",
            dependencies: [
                "MessageStore",
                "FaultWorker",
                "MessageStoreTesting",
                "MessageStoreTestSupport",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: upcomingFeatures
        ),
        // A relay or an inbox worker process that the outbox and inbox fault tests start and kill.
        .executableTarget(
            name: "PostgresWorker",
            dependencies: [
                "MessageStore",
                "MessageStorePostgres",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            path: "Tests/PostgresWorker",
            swiftSettings: upcomingFeatures
        ),
        // A real PostgreSQL server (Debian's, started by the tests) and real nats-server processes.
        .testTarget(
            name: "MessageStorePostgresTests",
            dependencies: [
                "MessageStore",
                "MessageStorePostgres",
                "OutboxService",
                "PostgresWorker",
                "message-store",
                "MessageStoreTestSupport",
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: upcomingFeatures
        ),
    ]
)

// ThreadSanitizer on the unit tests alone (`scripts/tsan.sh --unit`, which CI runs): with
// MESSAGE_STORE_UNIT_TESTS_ONLY=1 the package holds only them and what they build on, which
// builds in about half the time of every target.
if Context.environment["MESSAGE_STORE_UNIT_TESTS_ONLY"] == "1" {
    let unitTests: Set = [
        "CNATS", "CLibCrypto", "MessageStoreJSON", "MessageStore", "MessageStoreTesting", "MessageStoreTestSupport",
        "MessageStoreUnitTests",
    ]
    package.targets.removeAll { !unitTests.contains($0.name) }
    package.products.removeAll { !unitTests.contains($0.name) }
}

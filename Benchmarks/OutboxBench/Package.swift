// swift-tools-version:6.1
import Foundation
import PackageDescription

// A package of its own, so that SwiftBench (every other scenario) does not build postgres-nio.
// A path dependency's identity is its directory's name, which depends on where the repository
// was cloned, so the root package is named by that directory.
let rootPackage = URL(fileURLWithPath: Context.packageDirectory)
    .deletingLastPathComponent()
    .deletingLastPathComponent()
    .lastPathComponent

let package = Package(
    name: "OutboxBench",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: "../.."),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.25.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
    ],
    targets: [
        .executableTarget(
            name: "OutboxBench",
            dependencies: [
                .product(name: "MessageStore", package: rootPackage),
                .product(name: "MessageStorePostgres", package: rootPackage),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        )
    ]
)

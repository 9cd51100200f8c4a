// swift-tools-version:6.1
import Foundation
import PackageDescription

// libFuzzer targets for what the library reads from peers. Built and run by scripts/fuzz.sh, which
// passes `-sanitize=fuzzer,address` (coverage and address checks in every Swift module, the
// library's included) and `-enable-testing` (the targets call internal API): flags the root
// package's own build never sees, in this package's own .build.

// A path dependency's identity is its directory's name, which depends on where the repository
// was cloned, so the root package is named by that directory.
let rootPackage = URL(fileURLWithPath: Context.packageDirectory)
    .deletingLastPathComponent()
    .lastPathComponent

let fuzzTargets = ["FuzzEnvelope", "FuzzDispatch", "FuzzPublishAck", "FuzzReplySubject"]

let package = Package(
    name: "MessageStoreFuzz",
    platforms: [.macOS(.v15)],
    products: fuzzTargets.map { .executable(name: $0, targets: [$0]) },
    dependencies: [
        .package(path: "..")
    ],
    targets: [
        // Declares libFuzzer's LLVMFuzzerRunDriver, which each target's main calls.
        .target(name: "FuzzDriver"),
        .target(name: "FuzzSupport", dependencies: ["FuzzDriver"]),
    ]
        + fuzzTargets.map { name in
            .executableTarget(
                name: name,
                dependencies: ["FuzzSupport", .product(name: "MessageStore", package: rootPackage)]
            )
        }
)

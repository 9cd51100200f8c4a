import Foundation
import Testing

/// Keeps the README's quick start identical to Examples/QuickStart, which the build compiles.
@Suite("README")
struct ReadmeTests {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func quickStartMatchesTheCompiledExample() throws {
        let example = try String(
            contentsOf: Self.root.appendingPathComponent("Examples/QuickStart/main.swift"),
            encoding: .utf8
        )
        let readme = try String(contentsOf: Self.root.appendingPathComponent("README.md"), encoding: .utf8)
        let start = try #require(example.range(of: "// README quick start begins\n"))
        let end = try #require(example.range(of: "// README quick start ends"))
        let snippet = String(example[start.upperBound..<end.lowerBound])
        #expect(snippet.count > 200)
        #expect(readme.contains("```swift\n" + snippet + "```"), "README quick start differs from Examples/QuickStart")
    }

    @Test func workerExampleMatchesTheCompiledOne() throws {
        let example = try String(
            contentsOf: Self.root.appendingPathComponent("Tests/MessageStoreUnitTests/ReadmeWorkerExample.swift"),
            encoding: .utf8
        )
        let readme = try String(contentsOf: Self.root.appendingPathComponent("README.md"), encoding: .utf8)
        let start = try #require(example.range(of: "// README worker begins\n"))
        let end = try #require(example.range(of: "// README worker ends"))
        let snippet = Self.dedented(String(example[start.upperBound..<end.lowerBound]))
        #expect(snippet.count > 200)
        #expect(Self.dedented(readme).contains(snippet), "README worker example differs from the compiled one")
    }

    /// Each line without its leading spaces, so formatting the Swift file does not matter.
    static func dedented(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.drop { $0 == " " } }
            .joined(separator: "\n")
    }

    @Test func readmeNamesTheTwoCommandsThatExist() throws {
        let readme = try String(contentsOf: Self.root.appendingPathComponent("README.md"), encoding: .utf8)
        for script in ["scripts/demo.sh", "scripts/test.sh"] {
            #expect(readme.contains(script))
            #expect(FileManager.default.isExecutableFile(atPath: Self.root.appendingPathComponent(script).path))
        }
        let ci = try String(contentsOf: Self.root.appendingPathComponent(".ci/run"), encoding: .utf8)
        #expect(ci.contains("scripts/test.sh"))
    }
}

import Foundation
import MessageStoreJSON
import MessageStoreTestSupport
import Testing

@testable import MessageStore

// The fast encoder is checked against JSONEncoder configured as `Envelope.makeEncoder()`: where
// the fast encoder writes a value, JSONEncoder must write the same bytes but for the order of the
// members of objects, which JSONEncoder takes from its dictionaries' hashing and which changes
// from call to call. Outputs are compared with the members of every object sorted by key.

/// `bytes` with the members of every object sorted by the bytes of their keys; nil when `bytes`
/// is not JSON as JSONEncoder writes it (no whitespace, no duplicate keys).
func sortingMembers(_ bytes: [UInt8]) -> [UInt8]? {
    var index = 0

    func string() -> [UInt8]? {
        guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { return nil }
        let start = index
        index += 1
        while index < bytes.count, bytes[index] != UInt8(ascii: "\"") {
            index += bytes[index] == UInt8(ascii: "\\") ? 2 : 1
        }
        guard index < bytes.count else { return nil }
        index += 1
        return Array(bytes[start..<index])
    }

    func value() -> [UInt8]? {
        guard index < bytes.count else { return nil }
        switch bytes[index] {
        case UInt8(ascii: "{"):
            index += 1
            var members: [(key: [UInt8], value: [UInt8])] = []
            if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
                index += 1
                return Array("{}".utf8)
            }
            while true {
                guard let key = string(), index < bytes.count, bytes[index] == UInt8(ascii: ":") else { return nil }
                index += 1
                guard let member = value() else { return nil }
                members.append((key, member))
                guard index < bytes.count else { return nil }
                index += 1
                if bytes[index - 1] == UInt8(ascii: "}") { break }
                guard bytes[index - 1] == UInt8(ascii: ",") else { return nil }
            }
            members.sort { $0.key.lexicographicallyPrecedes($1.key) }
            for pair in zip(members, members.dropFirst()) where pair.0.key == pair.1.key { return nil }
            return Array("{".utf8)
                + members.map { $0.key + Array(":".utf8) + $0.value }.joined(separator: Array(",".utf8))
                + Array("}".utf8)
        case UInt8(ascii: "["):
            index += 1
            var elements: [[UInt8]] = []
            if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
                index += 1
                return Array("[]".utf8)
            }
            while true {
                guard let element = value() else { return nil }
                elements.append(element)
                guard index < bytes.count else { return nil }
                index += 1
                if bytes[index - 1] == UInt8(ascii: "]") { break }
                guard bytes[index - 1] == UInt8(ascii: ",") else { return nil }
            }
            return Array("[".utf8) + elements.joined(separator: Array(",".utf8)) + Array("]".utf8)
        case UInt8(ascii: "\""):
            return string()
        default:
            let start = index
            while index < bytes.count,
                ![UInt8(ascii: ","), UInt8(ascii: "]"), UInt8(ascii: "}")].contains(bytes[index])
            {
                index += 1
            }
            return index > start ? Array(bytes[start..<index]) : nil
        }
    }

    guard let result = value(), index == bytes.count else { return nil }
    return result
}

/// Whether two outputs are the same JSON text but for the order of members.
func sameButForMemberOrder(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard let a = sortingMembers(a), let b = sortingMembers(b) else { return false }
    return a == b
}

/// Runs a closure as `encode(to:)`, to try what encoders are asked in odd ways.
struct EncodeScript: Encodable {
    var body: (any Encoder) throws -> Void
    init(_ body: @escaping (any Encoder) throws -> Void) { self.body = body }
    func encode(to encoder: any Encoder) throws { try body(encoder) }
}

typealias EncoderTestKey = Envelope.AnyKey

struct AllScalars: Encodable {
    var i: Int
    var i8: Int8
    var i16: Int16
    var i32: Int32
    var i64: Int64
    var i128: Int128
    var u: UInt
    var u8: UInt8
    var u16: UInt16
    var u32: UInt32
    var u64: UInt64
    var u128: UInt128
    var f: Float
    var d: Double
    var b: Bool
    var s: String

    static let minimum = AllScalars(
        i: .min,
        i8: .min,
        i16: .min,
        i32: .min,
        i64: .min,
        i128: .min,
        u: .min,
        u8: .min,
        u16: .min,
        u32: .min,
        u64: .min,
        u128: .min,
        f: -.greatestFiniteMagnitude,
        d: -.greatestFiniteMagnitude,
        b: false,
        s: ""
    )
    static let maximum = AllScalars(
        i: .max,
        i8: .max,
        i16: .max,
        i32: .max,
        i64: .max,
        i128: .max,
        u: .max,
        u8: .max,
        u16: .max,
        u32: .max,
        u64: .max,
        u128: .max,
        f: .greatestFiniteMagnitude,
        d: .greatestFiniteMagnitude,
        b: true,
        s: "\u{10FFFF}"
    )
}

/// The same scalars through generic `encode<T>` calls and single value containers.
struct GenericScalars: Encodable {
    var scalars: AllScalars

    func encode(to encoder: any Encoder) throws {
        var keyed = encoder.container(keyedBy: EncoderTestKey.self)
        var unkeyed = keyed.nestedUnkeyedContainer(forKey: EncoderTestKey(stringValue: "list"))
        let s = scalars
        let values: [any Encodable] = [
            s.i, s.i8, s.i16, s.i32, s.i64, s.i128, s.u, s.u8, s.u16, s.u32, s.u64, s.u128, s.f, s.d, s.b, s.s,
            Optional(s.i), Int?.none, [s.i8], [s.u64], [s.d], [s.s], [s.f],
        ]
        for value in values {
            try unkeyed.encode(value)
        }
        for (index, value) in values.enumerated() {
            try keyed.encode(value, forKey: EncoderTestKey(stringValue: "k\(index)"))
        }
    }
}

struct Inner: Encodable {
    var label: String
    var score: Double?
    var flags: [Bool]
}

struct Empty: Encodable {}

struct Outer: Encodable {
    var name: String
    var inner: Inner?
    var list: [Inner]
    var tags: [String]
    var matrix: [[Int]]
    var maybe: [Int?]
    var empty: [String]
    var nothing: Empty
    var counts: [String: Int]
    var byNumber: [Int: [String]]
    var deep: [String: [String: Double]]
    var optionalList: [Inner]?
}

struct Declared: Encodable {
    var zeta: Int
    var alpha: String
    var mid: Bool?
    var last: [Int]
}

struct Stamped: Encodable {
    var at: Date
    var maybe: Date?
    var blob: Data
    var link: URL
    var amount: Decimal
    var dates: [Date]
}

class Animal: Encodable {
    var name = "generic"
}

final class Dog: Animal {
    var breed = "lab"

    private enum DogKeys: CodingKey {
        case breed
    }

    override func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: DogKeys.self)
        try container.encode(breed, forKey: .breed)
        try super.encode(to: container.superEncoder())
    }
}

final class Cat: Animal {
    var lives = 9

    private enum CatKeys: CodingKey {
        case lives
    }

    /// The superclass encodes into the same encoder: JSONEncoder merges the two containers.
    override func encode(to encoder: any Encoder) throws {
        try super.encode(to: encoder)
        var container = encoder.container(keyedBy: CatKeys.self)
        try container.encode(lives, forKey: .lives)
    }
}

/// Writes the coding path and user info it sees at every level into the output.
struct PathWriter: Encodable {
    var depth: Int

    func encode(to encoder: any Encoder) throws {
        let here = "\(encoder.codingPath) \(encoder.userInfo.count)"
        guard depth > 0 else {
            var single = encoder.singleValueContainer()
            try single.encode(here + " \(single.codingPath)")
            return
        }
        var keyed = encoder.container(keyedBy: EncoderTestKey.self)
        try keyed.encode(here, forKey: EncoderTestKey(stringValue: "path"))
        try keyed.encode("\(keyed.codingPath)", forKey: EncoderTestKey(stringValue: "keyed"))
        try keyed.encode(PathWriter(depth: depth - 1), forKey: EncoderTestKey(stringValue: "child"))
        var nested = keyed.nestedContainer(keyedBy: EncoderTestKey.self, forKey: EncoderTestKey(stringValue: "nested"))
        try nested.encode("\(nested.codingPath)", forKey: EncoderTestKey(stringValue: "path"))
        try nested.encode(PathWriter(depth: depth - 1), forKey: EncoderTestKey(stringValue: "child"))
        var list = nested.nestedUnkeyedContainer(forKey: EncoderTestKey(stringValue: "list"))
        try list.encode("\(list.codingPath) \(list.count)")
        try list.encode(PathWriter(depth: 0))
        var inList = list.nestedContainer(keyedBy: EncoderTestKey.self)
        try inList.encode("\(inList.codingPath)", forKey: EncoderTestKey(stringValue: "path"))
        try inList.encode(PathWriter(depth: 0), forKey: EncoderTestKey(stringValue: "child"))
        var listInList = list.nestedUnkeyedContainer()
        try listInList.encode(PathWriter(depth: 0))
        try list.encode("\(list.count)")
        try PathWriter(depth: 0).encode(to: nested.superEncoder())
        try PathWriter(depth: 0).encode(to: keyed.superEncoder(forKey: EncoderTestKey(stringValue: "base")))
        try keyed.encode([PathWriter(depth: 0)], forKey: EncoderTestKey(stringValue: "array"))
        try keyed.encode(
            EncodeScript { encoder in
                var single = encoder.singleValueContainer()
                try single.encode(PathWriter(depth: 0))
            },
            forKey: EncoderTestKey(stringValue: "wrapped")
        )
    }
}

/// Serialized: these tests are synchronous and CPU-bound, and the cooperative pool has only as
/// many threads as cores; run side by side they would starve tests elsewhere that wait on the network.
extension FastJSONCoderTests {
    @Suite("FastJSONEncoder")
    struct FastJSONEncoderTests {
        static let foundation = Envelope.makeEncoder()
        static let fast = FastJSONEncoder()

        /// Encodes with both encoders; when the fast one succeeds, JSONEncoder must write the same
        /// text but for member order, and otherwise the fallback must give what JSONEncoder gives.
        /// Returns whether the fast encoder succeeded.
        @discardableResult
        static func check<T: Encodable>(_ value: T, sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
            let expected = Result { Array(try foundation.encode(value)) }
            let fastBytes: [UInt8]
            do {
                fastBytes = try fast.encode(value)
            } catch {
                let viaFallback = Result { try FastJSONEncoder.encodeWithFallback(value, foundation: foundation) }
                switch (viaFallback, expected) {
                case (.success(let a), .success(let b)):
                    #expect(
                        sameButForMemberOrder(a, b),
                        "\(String(decoding: a, as: UTF8.self)) vs \(String(decoding: b, as: UTF8.self))",
                        sourceLocation: sourceLocation
                    )
                case (.failure(let a), .failure(let b)):
                    #expect("\(a)" == "\(b)", sourceLocation: sourceLocation)
                default:
                    Issue.record("fallback \(viaFallback), JSONEncoder \(expected)", sourceLocation: sourceLocation)
                }
                return false
            }
            switch expected {
            case .success(let bytes):
                #expect(
                    sameButForMemberOrder(fastBytes, bytes),
                    "fast \(String(decoding: fastBytes, as: UTF8.self)), JSONEncoder \(String(decoding: bytes, as: UTF8.self))",
                    sourceLocation: sourceLocation
                )
            case .failure(let error):
                Issue.record(
                    "fast wrote \(String(decoding: fastBytes, as: UTF8.self)), JSONEncoder threw \(error)",
                    sourceLocation: sourceLocation
                )
            }
            return true
        }

        /// Checks that the fast encoder gives up on `value` and that the fallback matches JSONEncoder.
        static func checkFallsBack<T: Encodable>(_ value: T, sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(
                !check(value, sourceLocation: sourceLocation),
                "expected a fallback",
                sourceLocation: sourceLocation
            )
        }

        static func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

        // MARK: Scalars

        static let doubles: [Double] = [
            0, -0.0, 1, -1, 0.1, 0.2, 0.3, 0.1 + 0.2, 1.5, -1.25, 4.35, 100, 12345.678, 2.0 / 3.0, 1e-4, 1e-5, 1e-6,
            1e-7,
            0.000123, 1.5e-10, 1e15, 1e16, 1e17, 1e20, 1e21, 1e22, 1e23, 123e18, 9_007_199_254_740_992,
            9_007_199_254_740_994, 123_456_789_012_345_680, 1e300, 2.2250738585072014e-308,
            .greatestFiniteMagnitude, .leastNonzeroMagnitude, .leastNormalMagnitude, .pi, -.pi,
            Double(bitPattern: 2024),
            Double(Int64.max), Double(Int64.min), Double(UInt64.max), 0.5, 1 / 3, 1e-300,
        ]

        static let floats: [Float] = [
            0, -0.0, 1, 0.1, 0.3, 1e20, 1e-7, 1e10, 3.14159, 16_777_218, .greatestFiniteMagnitude,
            .leastNonzeroMagnitude, .leastNormalMagnitude, 1.1754944e-38, Float(bitPattern: 3), -2.5, 1e16, 1e-5,
        ]

        static let strings: [String] = [
            "", "plain", "quote\"and\\backslash", "slash/es//", "tab\tnewline\nreturn\rformfeed\u{0C}backspace\u{08}",
            "\u{00}\u{01}\u{1F}\u{7F}", "é", "e\u{301}", "中文", "😀👍🏽", "\u{2028}\u{2029}", "\u{FEFF}", "\u{FFFF}",
            "\u{10FFFF}", "\u{80}\u{9F}\u{A0}", "K\u{212A}", "</script>", String(repeating: "long text ", count: 200),
            String((0..<128).map { Character(Unicode.Scalar(UInt8($0))) }),
        ]

        @Test func scalarsEncodeAsJSONEncoderEncodesThem() {
            for value in Self.doubles {
                #expect(Self.check(value), "\(value)")
                #expect(Self.check(-value), "\(-value)")
            }
            for value in Self.floats {
                #expect(Self.check(value), "\(value)")
                #expect(Self.check(-value), "\(-value)")
            }
            for value in Self.strings {
                #expect(Self.check(value), "\(value.debugDescription)")
            }
            #expect(Self.check(AllScalars.minimum))
            #expect(Self.check(AllScalars.maximum))
            #expect(Self.check(GenericScalars(scalars: .minimum)))
            #expect(Self.check(GenericScalars(scalars: .maximum)))
            for value in [Int.min, -1, 0, 1, 9, 10, 99, 100, 1_000_000_007, .max] {
                #expect(Self.check(value))
                #expect(Self.check(Int32(truncatingIfNeeded: value)))
                #expect(Self.check(UInt64(truncatingIfNeeded: value)))
                #expect(Self.check(Int128(value) * Int128(value)))
            }
            #expect(Self.check(true))
            #expect(Self.check(Int?.none))
            #expect(Self.check(Int?.some(3)))
            #expect(Self.check([Int?.none, 1, nil]))
            #expect(Self.check([String?.none]))
        }

        @Test func generatedNumbersEncodeAsJSONEncoderEncodesThem() {
            var rng = SeededGenerator(seed: 0x5EED_1001)
            var fastCount = 0
            for _ in 0..<2_000 {
                let double = Double(bitPattern: rng.next())
                let float = Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))
                let values: [Double] = [
                    double, Double.random(in: -1e6...1e6, using: &rng), Double(Int64(bitPattern: rng.next()) >> 11),
                ]
                for value in values where Self.check(value) { fastCount += 1 }
                if Self.check(float) { fastCount += 1 }
                if Self.check([Int64(bitPattern: rng.next()) >> (rng.next() % 64)]) { fastCount += 1 }
            }
            #expect(fastCount > 9_000)
        }

        @Test func generatedStringsEncodeAsJSONEncoderEncodesThem() {
            var rng = SeededGenerator(seed: 0x5EED_1002)
            let pieces = [
                "a", "Z", "0", " ", "\"", "\\", "/", "\n", "\t", "\u{0}", "\u{1B}", "\u{7F}", "é", "e\u{301}", "中",
                "😀", "\u{2028}", "\u{212A}", "K", "padding text ",
            ]
            for _ in 0..<1_000 {
                let string = (0..<Int(rng.next() % 8)).map { _ in pieces[Int(rng.next() % UInt64(pieces.count))] }
                    .joined()
                #expect(Self.check(string))
                #expect(Self.check([string: [string]]))
            }
        }

        @Test func everyPositionOfAnEscapeInLongPlainTextEncodesAsJSONEncoderEncodesIt() {
            // Plain text is skipped eight bytes at a time: an escape, a control character or a
            // non-ASCII character at each offset of a word, and at the end of long strings.
            for special in ["\"", "\\", "\n", "\u{1F}", "é", "😀", "\u{7F}"] {
                for length in 0..<40 {
                    for position in 0...length {
                        let plain = String(repeating: "x", count: length)
                        let index = plain.index(plain.startIndex, offsetBy: position)
                        var string = plain
                        string.insert(contentsOf: special, at: index)
                        #expect(Self.check(string))
                    }
                }
                let long = String(repeating: "abcdefg ", count: 8_192)
                #expect(Self.check(long + special))
                #expect(Self.check(special + long))
                #expect(Self.check([long, special + long + special]))
            }
        }

        @Test func typesJSONEncoderEncodesItselfEncodeAsItDoes() {
            let dates = [
                Date(timeIntervalSince1970: 0), Date(timeIntervalSince1970: 1_700_000_000.123),
                Date(timeIntervalSince1970: -1.5), Date(timeIntervalSince1970: 1.999_999),
                Date(timeIntervalSince1970: 86_399.5),
                Date(timeIntervalSince1970: -62_135_596_800 - 86_400 * 400),
                Date(timeIntervalSince1970: 253_402_300_800),
                Date(timeIntervalSinceReferenceDate: 0), .distantPast, .distantFuture,
            ]
            for date in dates {
                #expect(Self.check(date))
                #expect(Self.check([date]))
                #expect(Self.check(["at": date]))
                #expect(Self.check(Optional(date)))
            }
            var rng = SeededGenerator(seed: 0x5EED_1003)
            for _ in 0..<300 {
                let seconds = Double.random(in: -3e9...3e10, using: &rng)
                #expect(Self.check(Date(timeIntervalSince1970: rng.next() % 2 == 0 ? seconds.rounded() : seconds)))
            }
            for bytes in [[], [1], [1, 2], [1, 2, 3], [255, 254, 253, 0], Array(0...255)] as [[UInt8]] {
                #expect(Self.check(Data(bytes)))
            }
            for url in ["https://example.com/a?b=c#d", "a/b?c", "file:///tmp/x%20y", "mailto:x@y.z", "/relative"] {
                if let url = URL(string: url) { #expect(Self.check(url)) }
            }
            #expect(Self.check(URL(fileURLWithPath: "/tmp/x y")))
            for decimal in ["0", "1.50", "-0.001", "1e10", "123456789012345678901234567890", "3.14159"] {
                if let decimal = Decimal(string: decimal) { #expect(Self.check(decimal)) }
            }
            #expect(Self.check(Decimal.nan))
            let stamped = Stamped(
                at: dates[1],
                maybe: nil,
                blob: Data([1, 2, 3]),
                link: URL(fileURLWithPath: "/a/b"),
                amount: Decimal(string: "12.50") ?? 0,
                dates: dates
            )
            #expect(Self.check(stamped))
        }

        // MARK: Containers

        @Test func structsAndContainersEncodeAsJSONEncoderEncodesThem() {
            let inner = Inner(label: "in", score: 0.5, flags: [true, false])
            let outer = Outer(
                name: "outer",
                inner: inner,
                list: [inner, Inner(label: "", score: nil, flags: [])],
                tags: ["a", "b/c"],
                matrix: [[1, 2], [], [3]],
                maybe: [1, nil, 3],
                empty: [],
                nothing: Empty(),
                counts: Dictionary(uniqueKeysWithValues: (0..<40).map { ("key\($0)", $0) }),
                byNumber: [1: ["one"], 22: [], -3: ["minus", "three"]],
                deep: ["x": ["y": 1.5, "z": -0.0], "w": [:]],
                optionalList: nil
            )
            #expect(Self.check(outer))
            var withList = outer
            withList.optionalList = []
            withList.inner = nil
            #expect(Self.check(withList))
            #expect(Self.check([outer, withList]))
            #expect(Self.check(Empty()))
            #expect(Self.check([Empty()]))
            #expect(Self.check([[Empty]]()))
            #expect(Self.check([String: Int]()))
            #expect(Self.check([[String: Int]()]))
            #expect(Self.check(Declared(zeta: 1, alpha: "a", mid: nil, last: [])))
        }

        @Test func membersAreWrittenInTheOrderTheyAreEncoded() throws {
            let declared = try Self.fast.encode(Declared(zeta: 1, alpha: "a", mid: true, last: [2]))
            #expect(Self.text(declared) == #"{"zeta":1,"alpha":"a","mid":true,"last":[2]}"#)
            let metadata = MessageMetadata(
                originSubject: "orders.command.42",
                traceId: "abc",
                additionalFields: ["tenant": "t1", "attempt": 2]
            )
            #expect(
                Self.text(try Self.fast.encode(metadata))
                    == #"{"attempt":2,"tenant":"t1","originSubject":"orders.command.42","traceId":"abc"}"#
            )
        }

        @Test func classesEncodeAsJSONEncoderEncodesThem() {
            #expect(Self.check(Animal()))
            #expect(Self.check(Dog()))
            #expect(Self.check(Cat()))
            #expect(Self.check([Dog(), Dog()]))
            // A super encoder nobody writes to is an empty object.
            #expect(
                Self.check(
                    EncodeScript { encoder in
                        var container = encoder.container(keyedBy: EncoderTestKey.self)
                        _ = container.superEncoder()
                        try container.encode(1, forKey: EncoderTestKey(stringValue: "after"))
                        _ = container.superEncoder(forKey: EncoderTestKey(stringValue: "other"))
                    }
                )
            )
            #expect(
                Self.check(
                    EncodeScript { encoder in
                        var container = encoder.container(keyedBy: EncoderTestKey.self)
                        var single = container.superEncoder(forKey: EncoderTestKey(stringValue: "base"))
                            .singleValueContainer()
                        try single.encode("value")
                    }
                )
            )
        }

        @Test func codingPathsAreJSONEncodersPaths() {
            #expect(Self.check(PathWriter(depth: 0)))
            #expect(Self.check(PathWriter(depth: 1)))
            #expect(Self.check(PathWriter(depth: 3)))
            #expect(Self.check([PathWriter(depth: 1)]))
            #expect(Self.check(["top": PathWriter(depth: 2)]))
        }

        @Test func containersAskedForTwiceAreTheSameContainer() {
            #expect(
                Self.check(
                    EncodeScript { encoder in
                        var first = encoder.container(keyedBy: EncoderTestKey.self)
                        try first.encode(1, forKey: EncoderTestKey(stringValue: "a"))
                        var nested = first.nestedContainer(
                            keyedBy: EncoderTestKey.self,
                            forKey: EncoderTestKey(stringValue: "n")
                        )
                        try nested.encode(2, forKey: EncoderTestKey(stringValue: "b"))
                        var second = encoder.container(keyedBy: EncoderTestKey.self)
                        try second.encode(3, forKey: EncoderTestKey(stringValue: "c"))
                        try first.encode(4, forKey: EncoderTestKey(stringValue: "d"))
                    }
                )
            )
            #expect(
                Self.check(
                    EncodeScript { encoder in
                        var first = encoder.unkeyedContainer()
                        try first.encode(1)
                        var second = encoder.unkeyedContainer()
                        try second.encode(2)
                        try first.encode(3)
                    }
                )
            )
            // A value encoding a nested value through its single value container.
            #expect(
                Self.check(
                    EncodeScript { encoder in
                        var single = encoder.singleValueContainer()
                        try single.encode(Inner(label: "x", score: 1, flags: []))
                    }
                )
            )
            #expect(
                Self.check(
                    EncodeScript { encoder in
                        var single = encoder.singleValueContainer()
                        try single.encode(EncodeScript { _ in })
                    }
                )
            )
        }

        @Test func nestedValuesThatEncodeNothingAreEmptyObjects() {
            let nothing = EncodeScript { _ in }
            #expect(Self.check([nothing, nothing]))
            #expect(Self.check(["a": nothing]))
            #expect(
                Self.check(
                    EncodeScript { encoder in
                        var single = encoder.singleValueContainer()
                        try single.encode(nothing)
                    }
                )
            )
            // JSONEncoder throws for a top-level value that encodes nothing.
            Self.checkFallsBack(nothing)
        }

        // MARK: Fallbacks

        @Test func keysEncodedTwiceFallBack() {
            for (first, second) in [
                ("a", "a"), ("K", "\u{212A}"), ("é", "e\u{301}"), ("\u{212A}", "K"), ("k40", "k40"),
            ] {
                Self.checkFallsBack(
                    EncodeScript { encoder in
                        var container = encoder.container(keyedBy: EncoderTestKey.self)
                        for index in 0..<45 {
                            try container.encode(index, forKey: EncoderTestKey(stringValue: "k\(index)"))
                        }
                        try container.encode(1, forKey: EncoderTestKey(stringValue: first))
                        try container.encode(2, forKey: EncoderTestKey(stringValue: second))
                    }
                )
            }
            // Nested containers for one key are merged by JSONEncoder.
            Self.checkFallsBack(
                EncodeScript { encoder in
                    var container = encoder.container(keyedBy: EncoderTestKey.self)
                    var a = container.nestedContainer(
                        keyedBy: EncoderTestKey.self,
                        forKey: EncoderTestKey(stringValue: "n")
                    )
                    try a.encode(1, forKey: EncoderTestKey(stringValue: "x"))
                    var b = container.nestedContainer(
                        keyedBy: EncoderTestKey.self,
                        forKey: EncoderTestKey(stringValue: "n")
                    )
                    try b.encode(2, forKey: EncoderTestKey(stringValue: "y"))
                }
            )
            // Distinct keys that look alike are fine.
            #expect(
                Self.check(
                    EncodeScript { encoder in
                        var container = encoder.container(keyedBy: EncoderTestKey.self)
                        for name in ["k", "K", "é", "e", "\u{301}", "e\u{300}", "ℌ", "H", "a\"", "a\\", "a\u{0}", "a"] {
                            try container.encode(name, forKey: EncoderTestKey(stringValue: name))
                        }
                    }
                )
            )
        }

        @Test func containersWrittenOutOfOrderFallBack() {
            // A nested container written to after a sibling was started.
            Self.checkFallsBack(
                EncodeScript { encoder in
                    var container = encoder.container(keyedBy: EncoderTestKey.self)
                    var first = container.nestedContainer(
                        keyedBy: EncoderTestKey.self,
                        forKey: EncoderTestKey(stringValue: "first")
                    )
                    try first.encode(1, forKey: EncoderTestKey(stringValue: "x"))
                    try container.encode(2, forKey: EncoderTestKey(stringValue: "between"))
                    try first.encode(3, forKey: EncoderTestKey(stringValue: "y"))
                }
            )
            Self.checkFallsBack(
                EncodeScript { encoder in
                    var container = encoder.unkeyedContainer()
                    var first = container.nestedUnkeyedContainer()
                    var second = container.nestedUnkeyedContainer()
                    try second.encode(1)
                    try first.encode(2)
                }
            )
            // A super encoder used after its container moved on.
            Self.checkFallsBack(
                EncodeScript { encoder in
                    var container = encoder.container(keyedBy: EncoderTestKey.self)
                    let base = container.superEncoder()
                    try container.encode(1, forKey: EncoderTestKey(stringValue: "a"))
                    var single = base.singleValueContainer()
                    try single.encode(2)
                }
            )
            // The super encoder of an unkeyed container.
            Self.checkFallsBack(
                EncodeScript { encoder in
                    var container = encoder.unkeyedContainer()
                    try container.encode(1)
                    try Animal().encode(to: container.superEncoder())
                    try container.encode(2)
                }
            )
            // A value's encode(to:) writing into the container its value is in.
            Self.checkFallsBack(
                EncodeScript { encoder in
                    var container = encoder.unkeyedContainer()
                    let outer = container
                    try container.encode(
                        EncodeScript { inner in
                            var sneaky = outer
                            try sneaky.encode(1)
                            var single = inner.singleValueContainer()
                            try single.encode(2)
                        }
                    )
                }
            )
        }

        @Test func valuesJSONEncoderRejectsFallBackToItsError() {
            for value in [Double.nan, .infinity, -.infinity, .signalingNaN] {
                Self.checkFallsBack(value)
                Self.checkFallsBack([1, value])
                Self.checkFallsBack(["x": [value]])
                Self.checkFallsBack(Inner(label: "", score: value, flags: []))
                Self.checkFallsBack(JSONValue.array([.int(1), .double(value)]))
            }
            for value in [Float.nan, .infinity, -.infinity] {
                Self.checkFallsBack(value)
                Self.checkFallsBack([value])
                Self.checkFallsBack(
                    GenericScalars(
                        scalars: AllScalars(
                            i: 0,
                            i8: 0,
                            i16: 0,
                            i32: 0,
                            i64: 0,
                            i128: 0,
                            u: 0,
                            u8: 0,
                            u16: 0,
                            u32: 0,
                            u64: 0,
                            u128: 0,
                            f: value,
                            d: 0,
                            b: false,
                            s: ""
                        )
                    )
                )
            }
        }

        @Test func errorsCaughtInsideEncodeToStillFallBack() {
            // JSONEncoder leaves the member out; the fast encoder had already written its key.
            Self.checkFallsBack(
                EncodeScript { encoder in
                    var container = encoder.container(keyedBy: EncoderTestKey.self)
                    try container.encode(1, forKey: EncoderTestKey(stringValue: "a"))
                    try? container.encode(Double.nan, forKey: EncoderTestKey(stringValue: "b"))
                    try? container.encode([Double.nan], forKey: EncoderTestKey(stringValue: "c"))
                    try container.encode(2, forKey: EncoderTestKey(stringValue: "d"))
                }
            )
        }

        @Test func errorsThrownByEncodeToAreJSONEncodersErrors() throws {
            struct Refusal: Error, Equatable {
                var reason: String
            }
            let refusing = EncodeScript { encoder in
                var container = encoder.container(keyedBy: EncoderTestKey.self)
                try container.encode(1, forKey: EncoderTestKey(stringValue: "a"))
                throw Refusal(reason: "no")
            }
            #expect(throws: Refusal(reason: "no")) { try Self.fast.encode(refusing) }
            #expect(throws: Refusal(reason: "no")) {
                try FastJSONEncoder.encodeWithFallback(["x": refusing], foundation: Self.foundation)
            }
        }

        @Test func nestingFallsBackAtTheLimitOfJSONEncoder() {
            func nested(_ levels: Int) -> JSONValue {
                (1..<levels).reduce(JSONValue.array([])) { inner, _ in .array([inner]) }
            }
            struct Arrays: Encodable {
                var levels: Int
                func encode(to encoder: any Encoder) throws {
                    var container = encoder.unkeyedContainer()
                    if levels > 1 { try container.encode(Arrays(levels: levels - 1)) }
                }
            }
            for levels in [1, 100, 510, 511] {
                #expect(Self.check(nested(levels)), "\(levels)")
                #expect(Self.check(Arrays(levels: levels)), "\(levels)")
            }
            for levels in [512, 513] {
                Self.checkFallsBack(nested(levels))
                Self.checkFallsBack(Arrays(levels: levels))
            }
            #expect(Self.check(["m": MessageMetadata(additionalFields: ["deep": nested(509)])]))
            Self.checkFallsBack(["m": MessageMetadata(additionalFields: ["deep": nested(510)])])
        }

        @Test func misuseJSONEncoderTrapsOnFallsBack() {
            // JSONEncoder stops the process for these; the fast encoder only gives up.
            let cases: [EncodeScript] = [
                EncodeScript { encoder in
                    var single = encoder.singleValueContainer()
                    try single.encode(1)
                    try single.encode(2)
                },
                EncodeScript { encoder in
                    _ = encoder.container(keyedBy: EncoderTestKey.self)
                    _ = encoder.unkeyedContainer()
                },
                EncodeScript { encoder in
                    var single = encoder.singleValueContainer()
                    try single.encode(1)
                    _ = encoder.container(keyedBy: EncoderTestKey.self)
                },
            ]
            for value in cases {
                #expect(throws: FastJSONEncodingFallback.self) { try Self.fast.encode(value) }
            }
        }

        // MARK: This module's types

        static func randomJSONValue(_ rng: inout SeededGenerator, depth: Int) -> JSONValue {
            let keys = ["k", "id", "é", "e\u{301}", "\u{212A}", "quote\"", "", "slash/", "tab\t", "😀", "k2", "K"]
            switch rng.next() % (depth > 3 ? 6 : 8) {
            case 0: return .null
            case 1: return .bool(rng.next() % 2 == 0)
            case 2: return .int(Int(bitPattern: UInt(rng.next())) >> (rng.next() % 64))
            case 3:
                let double =
                    rng.next() % 2 == 0 ? Double(bitPattern: rng.next()) : Double.random(in: -1e3...1e3, using: &rng)
                return .double(double.isFinite ? double : 0.5)
            case 4, 5:
                return .string(
                    (0..<Int(rng.next() % 4)).map { _ in keys[Int(rng.next() % UInt64(keys.count))] }.joined()
                )
            case 6:
                var members: [String: JSONValue] = [:]
                for _ in 0..<Int(rng.next() % 6) {
                    members[keys[Int(rng.next() % UInt64(keys.count))]] = randomJSONValue(&rng, depth: depth + 1)
                }
                return .object(members)
            default:
                return .array((0..<Int(rng.next() % 5)).map { _ in randomJSONValue(&rng, depth: depth + 1) })
            }
        }

        @Test func generatedJSONValuesEncodeAsJSONEncoderEncodesThem() {
            var rng = SeededGenerator(seed: 0x5EED_1004)
            for _ in 0..<1_500 {
                let value = Self.randomJSONValue(&rng, depth: 0)
                #expect(Self.check(value))
                #expect(Self.check(FastJSONTestNote(text: nil, tags: ["t"], extra: value)))
                // Through containers: JSONValue as a member of a dictionary.
                #expect(Self.check(["v": [value]]))
            }
        }

        @Test func generatedMetadataEncodesAsJSONEncoderEncodesIt() {
            var rng = SeededGenerator(seed: 0x5EED_1005)
            let keys = ["tenant", "k1", "\u{212A}", "K", "originsubject", "é", "e\u{301}", "attempt", "z", "a b"]
            for _ in 0..<1_500 {
                var metadata = MessageMetadata(
                    originSubject: rng.next() % 2 == 0 ? "orders.command.\(rng.next() % 100)" : nil,
                    traceId: rng.next() % 3 == 0 ? "trace\"\(rng.next())" : nil
                )
                for key in keys where rng.next() % 3 == 0 {
                    metadata[key] = Self.randomJSONValue(&rng, depth: 2)
                }
                // Set directly, the known keys are left out by encode(to:).
                if rng.next() % 4 == 0 { metadata.additionalFields["traceId"] = .int(1) }
                if rng.next() % 4 == 0 { metadata.additionalFields["originSubject"] = .null }
                #expect(Self.check(metadata))
                #expect(Self.check(["m": metadata]))
                #expect(Self.check([Optional(metadata), nil]))
            }
        }

        // MARK: Envelopes and API

        @Test func envelopesEncodeAsWithJSONEncoder() throws {
            let metadata = MessageMetadata(
                originSubject: "orders.command.42",
                traceId: "abc",
                additionalFields: ["tenant": "t1", "ratio": 1.5, "nested": ["list": [true, nil, "x"]]]
            )
            let payloads: [(String, any Encodable)] = [
                ("OrderPlaced", OrderPlaced(orderId: "42", amount: 5)),
                ("quote\"d/type\u{1}", FastJSONTestEvent(id: 1, amount: -2, currency: "EUR", note: "é\n")),
                ("FastJSONTestNote", FastJSONTestNote(text: nil, tags: [], extra: ["k": [1, 2.5]])),
                (
                    "Stamped",
                    Stamped(
                        at: Date(),
                        maybe: nil,
                        blob: Data([1]),
                        link: URL(fileURLWithPath: "/x"),
                        amount: 1,
                        dates: []
                    )
                ),
                // The fast encoder gives up on this one: JSONEncoder keeps the last value.
                (
                    "Twice",
                    EncodeScript { encoder in
                        var container = encoder.container(keyedBy: EncoderTestKey.self)
                        try container.encode(1, forKey: EncoderTestKey(stringValue: "a"))
                        try container.encode(2, forKey: EncoderTestKey(stringValue: "a"))
                    }
                ),
            ]
            for (type, payload) in payloads {
                for metadata in [nil, metadata] {
                    let body = try Envelope.encode(type: type, data: payload, metadata: metadata, subject: "s")
                    var expected = Array(#"{"type":"#.utf8) + Array(try Self.foundation.encode(type))
                    expected += Array(#","data":"#.utf8) + Array(try Self.foundation.encode(payload))
                    if let metadata {
                        expected += Array(#","metadata":"#.utf8) + Array(try Self.foundation.encode(metadata))
                    }
                    expected += Array("}".utf8)
                    #expect(sameButForMemberOrder(body, expected), "\(Self.text(body))")
                    #expect(Self.text(body).hasPrefix(#"{"type":"#))
                }
            }
        }

        @Test func failedEncodingsLeaveTheBufferAsItWas() throws {
            var bytes = Array("prefix".utf8)
            #expect(throws: FastJSONEncodingFallback.self) {
                try Self.fast.encode([1, Double.nan], appendingTo: &bytes)
            }
            #expect(Self.text(bytes) == "prefix")
            try Self.fast.encode(["a": 1], appendingTo: &bytes)
            #expect(Self.text(bytes) == #"prefix{"a":1}"#)
            #expect(throws: EncodingError.self) {
                try FastJSONEncoder.encodeWithFallback(
                    [Double.infinity],
                    appendingTo: &bytes,
                    foundation: Self.foundation
                )
            }
            #expect(Self.text(bytes) == #"prefix{"a":1}"#)
        }

        @Test func outputDecodesBackToTheSameValue() throws {
            let event = FastJSONTestEvent(id: 7, amount: -3, currency: "EUR", note: "\u{0}\"é😀\\/")
            let bytes = try Self.fast.encode(event)
            #expect(try FastJSONDecoder().decode(FastJSONTestEvent.self, from: bytes) == event)
            #expect(try JSONDecoder().decode(FastJSONTestEvent.self, from: Data(bytes)) == event)
        }
    }
}

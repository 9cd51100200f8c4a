import Foundation
import MessageStoreJSON
import Testing

@testable import MessageStore

// The fast decoder is checked against JSONDecoder configured as `Envelope.makeDecoder()`: where
// the fast decoder returns a value, it must be the value JSONDecoder returns for the same bytes.

struct FastJSONTestEvent: MessagePayload, Equatable {
    var id: Int
    var amount: Int
    var currency: String
    var note: String
}

struct FastJSONTestNote: MessagePayload, Equatable {
    var text: String?
    var tags: [String]
    var extra: JSONValue?
}

/// A reproducible pseudo-random generator (SplitMix64).
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The outcome of a decoding operation, comparable between the two decoders.
///
/// Errors are reduced to their case and coding path; a `dataCorrupted` error and an error that
/// is not a `DecodingError` (JSONDecoder throws its internal JSONError from inside containers for
/// numbers that do not fit) both count as "corrupt", without a path (JSONDecoder's date errors
/// leave the key out of the path).
func describeOutcome(_ body: () throws -> String) -> String {
    do {
        return "=" + (try body())
    } catch let error as DecodingError {
        func path(_ keys: [any CodingKey]) -> String {
            keys.map { $0.intValue.map { "#\($0)" } ?? $0.stringValue }.joined(separator: "/")
        }
        switch error {
        case .typeMismatch(let type, let context): return "!typeMismatch(\(type)) at \(path(context.codingPath))"
        case .valueNotFound(let type, let context): return "!valueNotFound(\(type)) at \(path(context.codingPath))"
        case .keyNotFound(let key, let context):
            return "!keyNotFound(\(key.stringValue)) at \(path(context.codingPath))"
        case .dataCorrupted: return "!corrupt"
        @unknown default: return "!unknown"
        }
    } catch {
        return "!corrupt"
    }
}

/// The type and case of an error.
func errorKind(_ error: any Error) -> String {
    guard let error = error as? DecodingError else { return "\(type(of: error))" }
    switch error {
    case .typeMismatch: return "typeMismatch"
    case .valueNotFound: return "valueNotFound"
    case .keyNotFound: return "keyNotFound"
    case .dataCorrupted: return "dataCorrupted"
    @unknown default: return "unknown"
    }
}

/// Bit-exact text for floating-point values, so that 0.0 and -0.0 differ.
func exact(_ value: Double) -> String { "\(value)/\(value.bitPattern)" }
func exact(_ value: Float) -> String { "\(value)/\(value.bitPattern)" }

/// A rendering of a JSON value that does not depend on dictionary order, with exact doubles.
func canonical(_ value: JSONValue) -> String {
    switch value {
    case .double(let x): return "d" + exact(x)
    case .array(let items): return "[" + items.map(canonical).joined(separator: ",") + "]"
    case .object(let members):
        return "{"
            + members.sorted { $0.key < $1.key }.map { "\($0.key.debugDescription):\(canonical($0.value))" }
            .joined(separator: ",") + "}"
    default: return "\(value)"
    }
}

func canonical<V>(_ dictionary: [String: V]?) -> String {
    guard let dictionary else { return "nil" }
    return dictionary.sorted { $0.key < $1.key }.map { "\($0.key.debugDescription):\($0.value)" }.joined(separator: ",")
}

/// Whether two JSON values are the same, comparing doubles bit for bit.
func identical(_ a: JSONValue, _ b: JSONValue) -> Bool {
    switch (a, b) {
    case (.double(let x), .double(let y)): return x.bitPattern == y.bitPattern
    case (.array(let x), .array(let y)): return x.count == y.count && zip(x, y).allSatisfy(identical)
    case (.object(let x), .object(let y)):
        return x.count == y.count && x.allSatisfy { key, value in y[key].map { identical(value, $0) } ?? false }
    default: return a == b
    }
}

func identical(_ a: MessageMetadata?, _ b: MessageMetadata?) -> Bool {
    guard let a, let b else { return a == nil && b == nil }
    return a == b && identical(.object(a.additionalFields), .object(b.additionalFields))
}

/// Everything a single value container can be asked, with every outcome recorded.
struct ScalarTrace: Decodable, Equatable {
    var log: [String] = []

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        log.append(describeOutcome { "\(c.decodeNil())" })
        log.append(describeOutcome { "\(try c.decode(Bool.self))" })
        log.append(describeOutcome { try c.decode(String.self) })
        log.append(describeOutcome { exact(try c.decode(Double.self)) })
        log.append(describeOutcome { exact(try c.decode(Float.self)) })
        log.append(describeOutcome { "\(try c.decode(Int.self))" })
        log.append(describeOutcome { "\(try c.decode(Int8.self))" })
        log.append(describeOutcome { "\(try c.decode(Int16.self))" })
        log.append(describeOutcome { "\(try c.decode(Int32.self))" })
        log.append(describeOutcome { "\(try c.decode(Int64.self))" })
        log.append(describeOutcome { "\(try c.decode(Int128.self))" })
        log.append(describeOutcome { "\(try c.decode(UInt.self))" })
        log.append(describeOutcome { "\(try c.decode(UInt8.self))" })
        log.append(describeOutcome { "\(try c.decode(UInt16.self))" })
        log.append(describeOutcome { "\(try c.decode(UInt32.self))" })
        log.append(describeOutcome { "\(try c.decode(UInt64.self))" })
        log.append(describeOutcome { "\(try c.decode(UInt128.self))" })
        log.append(
            describeOutcome {
                let decimal = try c.decode(Decimal.self)
                return "\(decimal) \(decimal.exponent) \(decimal.significand) \(decimal.sign) \(decimal.isNaN)"
            }
        )
        log.append(describeOutcome { "\(try c.decode(Date.self).timeIntervalSinceReferenceDate.bitPattern)" })
        log.append(describeOutcome { "\(try c.decode(Data.self).base64EncodedString())" })
        log.append(describeOutcome { try c.decode(URL.self).absoluteString })
        log.append(describeOutcome { "\(try c.decode(Int?.self) as Any)" })
        log.append(describeOutcome { canonical(try c.decode(JSONValue.self)) })
        log.append(
            describeOutcome { try decoder.container(keyedBy: Envelope.AnyKey.self).allKeys.map(\.stringValue).joined() }
        )
        log.append(describeOutcome { "\(try decoder.unkeyedContainer().count ?? -1)" })
    }
}

/// Keyed container behaviour: missing keys, nulls, nested containers, super decoders.
struct KeyedTrace: Decodable, Equatable {
    var log: [String] = []

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Envelope.AnyKey.self)
        log.append(describeOutcome { c.codingPath.map(\.stringValue).joined() })
        log.append(describeOutcome { c.allKeys.map(\.stringValue).sorted().joined(separator: ",") })
        for name in ["a", "b", "n", "arr", "obj", "missing", "super", "é", "K"] {
            let key = Envelope.AnyKey(stringValue: name)
            log.append(name)
            log.append(describeOutcome { "\(c.contains(key))" })
            log.append(describeOutcome { "\(try c.decodeNil(forKey: key))" })
            log.append(describeOutcome { "\(try c.decode(Int.self, forKey: key))" })
            log.append(describeOutcome { "\(try c.decodeIfPresent(Int.self, forKey: key) as Any)" })
            log.append(describeOutcome { "\(try c.decodeIfPresent(Int8.self, forKey: key) as Any)" })
            log.append(describeOutcome { "\(try c.decodeIfPresent(Bool.self, forKey: key) as Any)" })
            log.append(describeOutcome { "\(try c.decodeIfPresent(UInt64.self, forKey: key) as Any)" })
            log.append(describeOutcome { "\(try c.decode(String.self, forKey: key))" })
            log.append(describeOutcome { "\(try c.decodeIfPresent(String.self, forKey: key) as Any)" })
            log.append(describeOutcome { "\(try c.decodeIfPresent(Double.self, forKey: key).map(exact) as Any)" })
            log.append(describeOutcome { "\(try c.decodeIfPresent(Float.self, forKey: key).map(exact) as Any)" })
            log.append(describeOutcome { "\(try c.decode([Int].self, forKey: key))" })
            log.append(describeOutcome { canonical(try c.decodeIfPresent([String: Int].self, forKey: key)) })
            log.append(describeOutcome { canonical(try c.decode(JSONValue.self, forKey: key)) })
            log.append(describeOutcome { "\(try c.decodeIfPresent(Date.self, forKey: key) as Any)" })
            log.append(describeOutcome { "\(try c.decodeIfPresent(Decimal.self, forKey: key) as Any)" })
            log.append(
                describeOutcome {
                    try c.nestedContainer(keyedBy: Envelope.AnyKey.self, forKey: key).allKeys.map(\.stringValue)
                        .sorted()
                        .joined()
                }
            )
            log.append(
                describeOutcome {
                    var nested = try c.nestedUnkeyedContainer(forKey: key)
                    return "\(nested.count ?? -1) \(nested.codingPath.count) \(try nested.decodeNil())"
                }
            )
            log.append(
                describeOutcome {
                    let inner = try c.superDecoder(forKey: key)
                    let single = try inner.singleValueContainer()
                    return "\(inner.codingPath.map(\.stringValue)) \(single.decodeNil()) \(try single.decode(Int.self))"
                }
            )
        }
        log.append(
            describeOutcome {
                let inner = try c.superDecoder()
                return "\(inner.codingPath.map(\.stringValue)) \(try inner.singleValueContainer().decode(Int.self))"
            }
        )
    }
}

/// Unkeyed container behaviour: counts, the index at the end, nil handling, nesting.
struct UnkeyedTrace: Decodable, Equatable {
    var log: [String] = []

    init(from decoder: any Decoder) throws {
        var c = try decoder.unkeyedContainer()
        log.append("count \(c.count ?? -1)")
        var steps = 0
        while !c.isAtEnd && steps < 20 {
            steps += 1
            log.append("at \(c.currentIndex)")
            log.append(describeOutcome { "\(try c.decodeNil())" })
            log.append(describeOutcome { "\(try c.decode(Int.self))" })
            log.append(describeOutcome { "\(try c.decodeIfPresent(String.self) as Any)" })
            log.append(
                describeOutcome {
                    try c.nestedContainer(keyedBy: Envelope.AnyKey.self).allKeys.map(\.stringValue).sorted().joined()
                }
            )
            log.append(describeOutcome { "\(try c.nestedUnkeyedContainer().count ?? -1)" })
            log.append(describeOutcome { canonical(try c.decode(JSONValue.self)) })
        }
        log.append("end \(c.currentIndex) \(c.isAtEnd)")
        log.append(describeOutcome { "\(try c.decodeNil())" })
        log.append(describeOutcome { "\(try c.decode(Int.self))" })
        log.append(describeOutcome { "\(try c.decodeIfPresent(Int.self) as Any) \(c.currentIndex)" })
        log.append(
            describeOutcome { "\(try c.decodeIfPresent(JSONValue.self).map(canonical) as Any) \(c.currentIndex)" }
        )
        log.append(describeOutcome { "\(try c.superDecoder().codingPath.count)" })
        log.append(describeOutcome { "\(try c.nestedUnkeyedContainer().count ?? -1)" })
        log.append("end \(c.currentIndex) \(c.isAtEnd)")
    }
}

/// Records the coding path and user info seen at every level.
struct PathTrace: Decodable, Equatable {
    static let key = CodingUserInfoKey(rawValue: "fast-json-test")!
    var log: [String] = []

    private struct Level: Decodable {
        var log: [String]
        init(from decoder: any Decoder) throws {
            log = [
                decoder.codingPath.map { $0.intValue.map { "#\($0)" } ?? $0.stringValue }.joined(separator: "/"),
                "\(decoder.userInfo[PathTrace.key] as? String ?? "-")",
            ]
            if var unkeyed = try? decoder.unkeyedContainer() {
                while !unkeyed.isAtEnd { log += try unkeyed.decode(Level.self).log }
            } else if let keyed = try? decoder.container(keyedBy: Envelope.AnyKey.self) {
                for key in keyed.allKeys.sorted(by: { $0.stringValue < $1.stringValue }) {
                    log += try keyed.decode(Level.self, forKey: key).log
                }
            }
        }
    }

    init(from decoder: any Decoder) throws {
        log = try Level(from: decoder).log
    }
}

struct Plain: Codable, Equatable {
    var name: String
    var count: Int
    var ratio: Double?
    var flags: [Bool]
    var nested: [String: [Int]]?
    var small: Int8?
    var big: UInt64?
}

/// Serialized: these tests are synchronous and CPU-bound, and the cooperative pool has only as
/// many threads as cores. Run side by side they occupied every thread for seconds, and tests
/// elsewhere that wait on the network missed their bounds.
/// The fast JSON coders' tests are synchronous and CPU-bound. They run one at a time, across
/// both suites, so they never hold both threads of the cooperative pool (two on a 2-core
/// machine) and starve the tests that wait on timers, such as progress reports.
@Suite(.serialized)
enum FastJSONCoderTests {}

extension FastJSONCoderTests {
    @Suite("FastJSONDecoder")
    struct FastJSONDecoderTests {
        static let foundation = Envelope.makeDecoder()
        static let fast = FastJSONDecoder()

        static let envelope =
            #"{"type":"FastJSONTestEvent","data":{"id":7,"amount":7,"currency":"EUR","note":"benchmark payload padding text"},"metadata":{"originSubject":"x"}}"#

        /// Decodes with both decoders; when the fast one succeeds, JSONDecoder must succeed with an
        /// equal value. Returns whether the fast decoder succeeded.
        @discardableResult
        static func check<T: Decodable>(
            _ type: T.Type,
            _ bytes: [UInt8],
            fast: FastJSONDecoder = fast,
            foundation: JSONDecoder = foundation,
            sourceLocation: SourceLocation = #_sourceLocation,
            equal: (T, T) -> Bool
        ) -> Bool {
            let text = String(decoding: bytes, as: UTF8.self)
            guard let fastValue = try? fast.decode(type, from: bytes) else {
                // The fallback gives exactly what JSONDecoder gives.
                let viaFallback = Result {
                    try FastJSONDecoder.decodeWithFallback(type, from: bytes, fast: fast, foundation: foundation)
                }
                let direct = Result { try foundation.decode(type, from: Data(bytes)) }
                switch (viaFallback, direct) {
                case (.success(let a), .success(let b)):
                    #expect(equal(a, b), "\(text)", sourceLocation: sourceLocation)
                case (.failure(let a), .failure(let b)):
                    // Only the kind: which key JSONDecoder reports can depend on its hashing.
                    #expect(errorKind(a) == errorKind(b), "\(text)", sourceLocation: sourceLocation)
                default:
                    Issue.record(
                        "\(text): fallback \(viaFallback), JSONDecoder \(direct)",
                        sourceLocation: sourceLocation
                    )
                }
                return false
            }
            do {
                let foundationValue = try foundation.decode(type, from: Data(bytes))
                #expect(
                    equal(fastValue, foundationValue),
                    "\(T.self) from \(text): fast \(fastValue), JSONDecoder \(foundationValue)",
                    sourceLocation: sourceLocation
                )
            } catch {
                Issue.record(
                    "\(T.self) from \(text): fast gave \(fastValue), JSONDecoder threw \(error)",
                    sourceLocation: sourceLocation
                )
            }
            return true
        }

        @discardableResult
        static func check<T: Decodable & Equatable>(
            _ type: T.Type,
            _ text: String,
            sourceLocation: SourceLocation = #_sourceLocation
        ) -> Bool {
            check(type, Array(text.utf8), sourceLocation: sourceLocation, equal: ==)
        }

        @discardableResult
        static func checkJSONValue(_ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
            check(JSONValue.self, bytes, sourceLocation: sourceLocation, equal: identical)
        }

        // MARK: Corpus

        /// Scalars and small documents, valid and invalid.
        static let scalarCorpus: [String] = [
            // numbers
            "0", "-0", "1", "-1", "1.0", "-1.0", "1.5", "-1.5", "0.5", "1e2", "1E2", "1e+2", "1e-2", "100e-2", "-0.0",
            "0e0", "0.0e-0", "1.0000000000000001", "9007199254740991", "9007199254740992", "9007199254740993",
            "9007199254740993.0", "9007199254740993.5", "1e16", "1.5e16", "-1e16", "2e63", "9223372036854775807",
            "9223372036854775808", "-9223372036854775808", "-9223372036854775809", "9223372036854775807.0",
            "18446744073709551615", "18446744073709551616", "-18446744073709551616", "1e19", "1.8446744073709551615e19",
            "170141183460469231731687303715884105727", "-170141183460469231731687303715884105728",
            "170141183460469231731687303715884105728", "340282366920938463463374607431768211455",
            "340282366920938463463374607431768211456", "123456789012345678901234567890", "1e20", "1.5e20",
            "127", "128", "-128", "-129", "255", "256", "32767", "32768", "65535", "65536", "2147483647", "2147483648",
            "4294967295", "4294967296", "2.55e2", "3e2", "1e-400", "-1e-400", "1e400", "-1e400", "0e400", "0.000e-400",
            "4.9e-324", "2.4e-324", "2.5e-324", "1e-320", "2.2250738585072014e-308", "1.7976931348623157e308",
            "1.7976931348623159e308", "3.4028235e38", "3.4028236e38", "3.5e38", "1e39", "1e-45", "1e-46", "7e-46",
            "1.4e-45", "0.1", "0.2", "0.3", "16777217", "1.00000005960464477539062500001", "1.000000059604644775390625",
            "123456789012345678", "1234567890123456789", "12345678901234567890", "0.1234567890123456789",
            "1e22", "1e23", "9007199254740993e-22", "1e-22", "8.98846567431158e307", "1e127", "1e128", "1e-128",
            "1e-129",
            "12345678901234567890123456789012345678901234567890", "0.000000000000000000000000000000000000000000001",
            "123456789012345678901234567890123456789e-200", "3.141592653589793238462643383279",
            // invalid numbers
            "01", "-01", "00", "-", "1.", ".1", "+1", "1e", "1e+", "1.e1", "1e1.0", "0x10", "NaN", "Infinity",
            "-Infinity",
            "1 2", "- 1", "1_000", "١",
            // literals
            "true", "false", "null", "tru", "truex", "nul", "True", "NULL",
            // strings
            #""""#, #""a""#, #""\u0000""#, #""\ud800""#, #""\udc00""#, #""\ud800\u0041""#, #""\ud800x""#,
            #""\ud83d\ude00""#, #""\uD83D\uDE00""#, #""\ud800\ud800""#, #""\x""#, #""\'""#, #""\/""#,
            #""\b\f\n\r\t\"\\""#, #""\u00e9""#, #""\u12""#, #""\u12G4""#, "\"\u{7f}\"", "\"a\tb\"", "\"a\nb\"",
            "\"\u{1f}\"", "\"é\"", "\"e\u{301}\"", #""a"#, #""\"#, #""\uDFFF""#, #""\uDBFF\uDFFF""#, #""\uFFFF""#,
            #""\uFEFF""#, "\"😀\"", #""\u212A""#, #""Ωmega ünïcödé 中文""#,
            // strings as dates, data, URLs
            #""2024-01-02T03:04:05Z""#, #""2024-01-02T03:04:05.123Z""#, #""2024-01-02T03:04:05+01:00""#,
            #""2024-01-02T03:04:05+0100""#, #""2024-01-02T03:04:05-05:30""#, #""2024-01-02T03:04:05""#,
            #""2024-01-02 03:04:05Z""#, #""2024-02-30T03:04:05Z""#, #""2024-02-29T03:04:05Z""#,
            #""2023-02-29T03:04:05Z""#, #""2024-01-02T24:00:00Z""#, #""2024-01-02T23:59:60Z""#,
            #""2024-1-2T3:4:5Z""#, #""2024-01-02T03:04:05Zx""#, #""1969-12-31T23:59:59Z""#, #""1900-01-01T00:00:00Z""#,
            #""1899-12-31T23:59:59Z""#, #""9999-12-31T23:59:59Z""#, #""0000-01-01T00:00:00Z""#,
            #""1582-10-10T00:00:00Z""#,
            #""2024-13-01T00:00:00Z""#, #""2024-00-01T00:00:00Z""#, #""2024-01-00T00:00:00Z""#,
            #""2024-01-02T03:04:05GMT""#, #""2024-01-02T03:04:05.999999999Z""#, #""2000-01-01T00:00:00Z""#,
            #""AQID""#, #""AQI=""#, #""AQ==""#, #""AQI""#, #""AQ===""#, #""AQID====""#, #""-_8=""#, #""+/8=""#,
            #""YR==""#, #""AQ ID""#, #""AQID\n""#, #""AQ\u003d\u003d""#,
            #""https://example.com/a?b=c""#, #""not a url""#, #""http://[::1""#, #""/relative/path""#, #""é""#,
            // containers
            "[]", "{}", "[1]", "[1,2]", "[1,2,]", "[,]", "{,}", #"{"a":1,}"#, #"{"a" 1}"#, "{a:1}", "[1 2]",
            #"{"a":1}"#, #"{"a":null}"#, #"{"a":1,"a":2}"#, #"{"K":1,"\u212A":2}"#, #"{"é":1,"e\u0301":2}"#,
            "[null]", "[[]]", "[{}]", #"[1,"a",true,null,[2],{"b":3}]"#,
            // whitespace and trailing data
            " 1 ", "\t\n\r 1\t\n\r", "\u{0c}1", "1\u{0b}", "1 x", "1]", "[1]]", "[[1]", "[1]//", "\u{a0}1", "",
            " ", "\u{feff}1",
        ]

        /// Objects exercising keyed containers.
        static let keyedCorpus: [String] = [
            "{}",
            #"{"a":1,"b":"x","n":null,"arr":[1,2,null],"obj":{"k":1},"super":5}"#,
            #"{"a":1.5,"b":null,"arr":{},"obj":[],"super":null}"#,
            #"{"a":"1","b":2,"arr":[],"obj":{"a":{"b":{}}}}"#,
            #"{"a":128,"b":-1,"n":true,"arr":[null],"super":"x"}"#,
            #"{"a":1e2,"b":1.0,"n":-0}"#,
            #"{"a":9223372036854775808,"b":18446744073709551615}"#,
            #"{"a":"2024-01-02T03:04:05Z","b":"AQID","arr":["1","2"]}"#,
            #"{"é":1,"K":2}"#,
            #"{"e\u0301":1,"\u212A":2}"#,
            #"{"\u0061":7,"b\u0000":8}"#,
            #"{"obj":{"1":2,"01":3}}"#,
            #"{"a":1,"a":2}"#,
            "[]",
            "null",
            "1",
        ]

        /// Arrays exercising unkeyed containers.
        static let unkeyedCorpus: [String] = [
            "[]", "[1]", "[null]", "[1,null,\"x\"]", "[[1,2],{\"a\":1},null,3.5]", "[true,false]", "[[],{}]",
            "[1e400]", "[null,null,null]", "{}", "null", "1", "[\"a\",[null],{\"k\":[1]}]",
        ]

        /// Envelopes in the shapes the store reads.
        static let envelopeCorpus: [String] = [
            envelope,
            #"{"type":"FastJSONTestEvent","data":{"id":1,"amount":2,"currency":"USD","note":""}}"#,
            #"{"type":"FastJSONTestEvent","data":{"id":1,"amount":2,"currency":"USD","note":"n"},"metadata":null}"#,
            #"{"metadata":{"traceId":"t","originSubject":"o.p","tenant":"t1","count":1,"ratio":1.5,"nested":{"list":[true,null,"x"]}},"data":{"note":"a","currency":"b","amount":-3,"id":0},"type":"FastJSONTestEvent"}"#,
            #"{"type":"FastJSONTestEvent","data":{"id":1.0,"amount":1e2,"currency":"USD","note":"\u00e9\n"}}"#,
            #"{"type":"FastJSONTestEvent","data":{"id":"1","amount":2,"currency":"USD","note":""}}"#,
            #"{"type":"FastJSONTestEvent","data":{"id":1,"currency":"USD","note":""}}"#,
            #"{"type":"FastJSONTestEvent","data":[1]}"#,
            #"{"type":"FastJSONTestEvent"}"#,
            #"{"type":"Unknown","data":{"anything":[1,{"x":null}]}}"#,
            #"{"type":"Unknown","data":5}"#,
            #"{"type":5,"data":{}}"#,
            #"{"type":"FastJSONTestNote","data":{"text":null,"tags":["a","b"],"extra":{"k":[1,2.5,"s",null,true]}}}"#,
            #"{"type":"FastJSONTestNote","data":{"tags":[]},"metadata":{"originSubject":null,"traceId":"x","a":[]}}"#,
            #"{"type":"FastJSONTestNote","data":{"tags":[null]}}"#,
            #"{"type":"FastJSONTestEvent","data":{"id":1,"amount":2,"currency":"USD","note":""},"metadata":{"originSubject":1}}"#,
            #"{"type":"FastJSONTestEvent","data":{"id":1,"amount":2,"currency":"USD","note":""},"metadata":[]}"#,
            #"{"type":"FastJSONTestEvent","data":{"id":1,"amount":2,"currency":"USD","note":""},"metadata":{"originSubject":"a","originSubject":"b"}}"#,
            #"{"type":"FastJSONTestEvent","data":{"id":1,"amount":2,"currency":"USD","note":""},}"#,
            "[]",
            "",
        ]

        // MARK: Differential tests

        @Test func scalarsDecodeAsJSONDecoderDecodesThem() {
            var fastCount = 0
            for text in Self.scalarCorpus {
                if Self.check(ScalarTrace.self, text) { fastCount += 1 }
                Self.checkJSONValue(Array(text.utf8))
                // Also as a member and an element, where containers do the conversions.
                Self.check(KeyedTrace.self, #"{"a":\#(text),"b":[\#(text)]}"#)
                Self.check(UnkeyedTrace.self, "[\(text),\(text)]")
            }
            #expect(fastCount > 120)
        }

        @Test func keyedContainersBehaveAsJSONDecoderDoes() {
            for text in Self.keyedCorpus {
                Self.check(KeyedTrace.self, text)
                Self.checkJSONValue(Array(text.utf8))
                Self.check([String: JSONValue].self, Array(text.utf8)) { a, b in identical(.object(a), .object(b)) }
                Self.check([Int: JSONValue].self, Array(text.utf8)) { a, b in
                    a.count == b.count && a.allSatisfy { key, value in b[key].map { identical(value, $0) } ?? false }
                }
                Self.check(MessageMetadata.self, Array(text.utf8), equal: identical)
            }
            #expect(Self.check(KeyedTrace.self, Self.keyedCorpus[1]))
            // "1" and "01" both give the key 1 of an `[Int: V]`: left to JSONDecoder.
            #expect(!Self.check([Int: Int].self, #"{"1":2,"01":3}"#))
            #expect(Self.check([Int: Int].self, #"{"1":2,"-5":3}"#))
            #expect(!Self.check([Int: Int].self, #"{"1":2,"x":3}"#))
        }

        @Test func unkeyedContainersBehaveAsJSONDecoderDoes() {
            for text in Self.unkeyedCorpus {
                Self.check(UnkeyedTrace.self, text)
                Self.check([Int?].self, text)
                Self.check([[Int]].self, text)
                Self.check([String].self, text)
            }
            #expect(Self.check(UnkeyedTrace.self, Self.unkeyedCorpus[4]))
        }

        @Test func envelopesDecodeAsJSONDecoderDecodesThem() throws {
            let table = Envelope.Dispatched.Table(payloadTypes: [
                "FastJSONTestEvent": FastJSONTestEvent.self,
                "FastJSONTestNote": FastJSONTestNote.self,
            ])
            let fast = FastJSONDecoder(userInfo: [Envelope.Dispatched.handlersKey: table])
            let foundation = Envelope.makeDispatchDecoder(payloadTypes: table.payloadTypes).foundation
            func samePayload(_ a: (any MessagePayload)?, _ b: (any MessagePayload)?) -> Bool {
                switch (a, b) {
                case (nil, nil): return true
                case (let x as FastJSONTestEvent, let y as FastJSONTestEvent): return x == y
                case (let x as FastJSONTestNote, let y as FastJSONTestNote):
                    return x.text == y.text && x.tags == y.tags
                        && (x.extra == nil) == (y.extra == nil) && identical(x.extra ?? .null, y.extra ?? .null)
                default: return false
                }
            }
            for text in Self.envelopeCorpus {
                let bytes = Array(text.utf8)
                Self.check(Envelope.Dispatched.self, bytes, fast: fast, foundation: foundation) { a, b in
                    a.type == b.type && identical(a.metadata, b.metadata) && samePayload(a.payload, b.payload)
                }
                Self.check(Envelope.Head.self, bytes) { a, b in a.type == b.type && identical(a.metadata, b.metadata) }
                // The direct envelope path gives JSONDecoder's result, or nothing.
                if let direct = fast.decodeEnvelope(bytes, payloadTypes: table.payloadTypes) {
                    let expected = try? foundation.decode(Envelope.Dispatched.self, from: Data(bytes))
                    #expect(
                        expected.map {
                            direct.type == $0.type && identical(direct.metadata, $0.metadata)
                                && samePayload(direct.payload, $0.payload)
                        } == true,
                        "\(text)"
                    )
                }
                var tracing = FastJSONDecoder()
                tracing.userInfo[PathTrace.key] = "seen"
                Self.check(
                    PathTrace.self,
                    bytes,
                    fast: tracing,
                    foundation: {
                        let decoder = Envelope.makeDecoder()
                        decoder.userInfo[PathTrace.key] = "seen"
                        return decoder
                    }(),
                    equal: ==
                )
                Self.checkJSONValue(bytes)
            }
            // The fast path, and the direct envelope path, are taken for the bodies the store writes.
            for text in Self.envelopeCorpus.prefix(5) {
                #expect(fast.decodeEnvelope(Array(text.utf8), payloadTypes: table.payloadTypes)?.payload != nil)
                let dispatched = try fast.decode(Envelope.Dispatched.self, from: Array(text.utf8))
                #expect(dispatched.payload != nil)
                #expect(throws: Never.self) { try Self.fast.decode(Envelope.Head.self, from: Array(text.utf8)) }
            }
            let dispatched = try fast.decode(Envelope.Dispatched.self, from: Array(Self.envelope.utf8))
            #expect(
                dispatched.payload as? FastJSONTestEvent
                    == FastJSONTestEvent(id: 7, amount: 7, currency: "EUR", note: "benchmark payload padding text")
            )
            #expect(dispatched.metadata == MessageMetadata(originSubject: "x"))
            let encoded = try Envelope.encode(
                FastJSONTestNote(text: "é\u{0}\"", tags: ["x"], extra: ["a": [1, 2.5, nil, "s"]]),
                metadata: MessageMetadata(originSubject: "a.b", traceId: "t", additionalFields: ["n": 1, "d": 0.1]),
                subject: "s"
            )
            #expect(
                Self.check(Envelope.Dispatched.self, encoded, fast: fast, foundation: foundation) { a, b in
                    a.type == b.type && identical(a.metadata, b.metadata) && samePayload(a.payload, b.payload)
                }
            )
            // A `data` of the wrong shape is a data failure, as with JSONDecoder.
            #expect(throws: Envelope.Dispatched.DataFailure.self) {
                try fast.decode(Envelope.Dispatched.self, from: Array(Self.envelopeCorpus[5].utf8))
            }
        }

        @Test func typedValuesDecodeAsJSONDecoderDecodesThem() {
            let documents = [
                #"{"name":"a","count":1,"flags":[true,false]}"#,
                #"{"name":"a","count":1,"ratio":null,"flags":[],"nested":{"x":[1,2],"y":[]},"small":-128,"big":18446744073709551615}"#,
                #"{"name":"a","count":1,"ratio":0.1,"flags":[],"small":128}"#,
                #"{"name":"a","count":1.0,"ratio":1,"flags":[],"nested":null}"#,
                #"{"name":"a","flags":[]}"#,
                #"{"name":null,"count":1,"flags":[]}"#,
                #"{"name":"a","count":1,"flags":[1]}"#,
            ]
            for text in documents {
                Self.check(Plain.self, text)
                Self.check([Plain].self, "[\(text),\(text)]")
            }
            #expect(Self.check(Plain.self, documents[1]))
            #expect(Self.check([Date].self, #"["2024-01-02T03:04:05Z","2024-01-02T03:04:05.5+02:00"]"#))
            #expect(Self.check([Data].self, #"["AQID",""]"#))
            #expect(Self.check([URL].self, #"["https://example.com/x?y=1#z"]"#))
            #expect(Self.check([Decimal].self, "[1, 1.5, -0.001, 1e10]"))
            #expect(Self.check([String: [String: Int?]].self, #"{"a":{"b":null,"c":1},"d":{}}"#))
            #expect(Self.check([Double?].self, "[1, null, -0.0, 1e-300]"))
        }

        // MARK: Generated inputs

        static func randomNumberText(_ rng: inout SeededGenerator) -> String {
            switch rng.next() % 8 {
            case 0: return "\(Int64(bitPattern: rng.next()))"
            case 1: return "\(Int64(bitPattern: rng.next()) >> (rng.next() % 64))"
            case 2: return "\(UInt64.random(in: 0...UInt64.max, using: &rng))"
            case 3: return "\(Double(bitPattern: rng.next()))"
            case 4: return "\(Double.random(in: -1e6...1e6, using: &rng))"
            case 5: return "\(Float(bitPattern: UInt32(truncatingIfNeeded: rng.next())))"
            case 6:
                let digits = (0..<Int(rng.next() % 25 + 1)).map { _ in String(rng.next() % 10) }.joined()
                let trimmed = digits.drop(while: { $0 == "0" })
                let mantissa = trimmed.isEmpty ? "0" : String(trimmed)
                let fraction = rng.next() % 2 == 0 ? "" : "." + String(rng.next() % 1000)
                let exponent = rng.next() % 2 == 0 ? "" : "e\(Int(rng.next() % 700) - 350)"
                return (rng.next() % 2 == 0 ? "-" : "") + mantissa + fraction + exponent
            default:
                return "\(Int(rng.next() % 2000) - 1000).\(rng.next() % 100_000)e\(Int(rng.next() % 50) - 25)"
            }
        }

        static func randomString(_ rng: inout SeededGenerator) -> String {
            let pieces = [
                "a", "Z", "0", " ", "\\\"", "\\\\", "\\/", "\\n", "\\t", "\\u0041", "\\u00e9", "\\u212A",
                "\\ud83d\\ude00",
                "é", "中", "😀", "e\u{301}", "\\u0000", "\\uFFFF", "K", "\u{212A}", "padding text ",
            ]
            return "\"" + (0..<Int(rng.next() % 6)).map { _ in pieces[Int(rng.next() % UInt64(pieces.count))] }.joined()
                + "\""
        }

        static func randomValue(_ rng: inout SeededGenerator, depth: Int) -> String {
            switch rng.next() % (depth > 3 ? 5 : 8) {
            case 0: return randomNumberText(&rng)
            case 1: return randomString(&rng)
            case 2: return ["true", "false", "null"][Int(rng.next() % 3)]
            case 3: return "\(Int(rng.next() % 200) - 100)"
            case 4: return randomString(&rng)
            case 5, 6:
                let members = (0..<Int(rng.next() % 5)).map { index in
                    let key = rng.next() % 4 == 0 ? randomString(&rng) : "\"k\(index)\""
                    return "\(key) : \(randomValue(&rng, depth: depth + 1))"
                }
                return "{" + members.joined(separator: ",") + "}"
            default:
                return "["
                    + (0..<Int(rng.next() % 5)).map { _ in randomValue(&rng, depth: depth + 1) }.joined(separator: ", ")
                    + "]"
            }
        }

        @Test func generatedNumbersDecodeAsJSONDecoderDecodesThem() {
            var rng = SeededGenerator(seed: 0x5EED_0001)
            var fastCount = 0
            for _ in 0..<1_500 {
                let text = Self.randomNumberText(&rng)
                if Self.check(ScalarTrace.self, text) { fastCount += 1 }
            }
            #expect(fastCount > 1_000)
        }

        @Test func generatedDocumentsDecodeAsJSONDecoderDecodesThem() {
            var rng = SeededGenerator(seed: 0x5EED_0002)
            var fastCount = 0
            for _ in 0..<1_500 {
                let text = Self.randomValue(&rng, depth: 0)
                if Self.checkJSONValue(Array(text.utf8)) { fastCount += 1 }
                Self.check(PathTrace.self, text)
            }
            #expect(fastCount > 1_000)
        }

        @Test func generatedMetadataDecodesAsJSONDecoderDecodesIt() {
            var rng = SeededGenerator(seed: 0x5EED_0006)
            let keys = [
                "originSubject", "traceId", "origin\\u0053ubject", "trace\\u0049d", "tenant", "k1", "\\u212A",
                "originsubject",
            ]
            let values = [#""a.b.c""#, "null", #""""#, "1", "[]", #"{"x":[1,null]}"#, #""\u00e9""#, "true"]
            var fastCount = 0
            for _ in 0..<1_500 {
                var members: [String] = []
                for key in keys where rng.next() % 3 == 0 {
                    let value =
                        rng.next() % 2 == 0
                        ? values[Int(rng.next() % UInt64(values.count))] : Self.randomValue(&rng, depth: 2)
                    members.append("\"\(key)\":\(value)")
                }
                let metadata = "{" + members.joined(separator: ",") + "}"
                if Self.check(MessageMetadata.self, Array(metadata.utf8), equal: identical) { fastCount += 1 }
                let envelope = #"{"type":"T","data":{},"metadata":"# + metadata + "}"
                Self.check(Envelope.Head.self, Array(envelope.utf8)) { a, b in
                    a.type == b.type && identical(a.metadata, b.metadata)
                }
                if let direct = Self.fast.decodeEnvelope(Array(envelope.utf8), payloadTypes: [:]) {
                    let expected = try? Self.foundation.decode(Envelope.Head.self, from: Data(envelope.utf8))
                    #expect(expected.map { direct.type == $0.type && identical(direct.metadata, $0.metadata) } == true)
                }
                Self.check([String: MessageMetadata?].self, Array(#"{"m":\#(metadata),"n":null}"#.utf8)) { a, b in
                    a.count == b.count && a.allSatisfy { key, value in b[key].map { identical(value, $0) } ?? false }
                }
            }
            #expect(fastCount > 500)
        }

        @Test func generatedDatesDecodeAsJSONDecoderDecodesThem() {
            var rng = SeededGenerator(seed: 0x5EED_0003)
            func two(_ value: UInt64) -> String { value < 10 ? "0\(value)" : "\(value)" }
            var fastCount = 0
            for _ in 0..<2_000 {
                let year = 1890 + rng.next() % 8200
                let yearText = String(repeating: "0", count: max(0, 4 - "\(year)".count)) + "\(year)"
                let date =
                    "\(yearText)-\(two(rng.next() % 13))-\(two(rng.next() % 32))T\(two(rng.next() % 25)):\(two(rng.next() % 61)):\(two(rng.next() % 61))"
                let zone = ["Z", "+01:00", "-09:30", ".5Z", ".123456Z", ""][Int(rng.next() % 6)]
                if Self.check(
                    Date.self,
                    Array("\"\(date)\(zone)\"".utf8),
                    equal: {
                        $0.timeIntervalSinceReferenceDate.bitPattern == $1.timeIntervalSinceReferenceDate.bitPattern
                    }
                ) {
                    fastCount += 1
                }
            }
            #expect(fastCount > 1_000)
        }

        @Test func generatedBase64DecodesAsJSONDecoderDecodesIt() {
            var rng = SeededGenerator(seed: 0x5EED_0004)
            let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ \\n")
            for _ in 0..<1_000 {
                var text = ""
                if rng.next() % 2 == 0 {
                    let bytes = (0..<Int(rng.next() % 12)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                    text = Data(bytes).base64EncodedString()
                }
                for _ in 0..<Int(rng.next() % 3) {
                    let position = text.isEmpty ? 0 : Int(rng.next() % UInt64(text.count))
                    text.insert(
                        alphabet[Int(rng.next() % UInt64(alphabet.count))],
                        at: text.index(text.startIndex, offsetBy: position)
                    )
                }
                Self.check(Data.self, "\"\(text)\"")
            }
        }

        // MARK: Strictness and robustness

        @Test func rejectsWhatIsNotStrictJSON() {
            let invalid = [
                "", " ", "[1,]", "{\"a\":1,}", "[1]x", "01", "1.", ".5", "-", "+1", "1e", "NaN", "Infinity", "[01]",
                "\"a\tb\"", "\"\\x\"", "\"\\ud800\"", "\"\\udc00\\ud800\"", "{\"a\":1,\"a\":1}",
                "{\"K\":1,\"\\u212A\":1}",
                "{\"é\":1,\"e\\u0301\":2}", "\u{feff}1", "[1]\u{0}", "tru", "[", "{", "{\"a\"}", "{\"a\":}", "[,1]",
                "//", "'a'", "[1;2]",
            ]
            for text in invalid {
                #expect(throws: DecodingError.self, "\(text)") {
                    try Self.fast.decode(JSONValue.self, from: Array(text.utf8))
                }
            }
            for bytes: [UInt8] in [
                [0x22, 0xFF, 0x22], [0x22, 0xC3, 0x22], [0x22, 0xC0, 0x80, 0x22], [0x22, 0xED, 0xA0, 0x80, 0x22],
                [0x22, 0xF4, 0x90, 0x80, 0x80, 0x22], [0x22, 0xE0, 0x80, 0x80, 0x22], [0x22, 0x00, 0x22], [0xFF],
                [0x00],
            ] {
                #expect(throws: DecodingError.self) { try Self.fast.decode(String.self, from: bytes) }
            }
        }

        @Test func acceptsNestingUpToTheLimitOfJSONDecoder() throws {
            for depth in [1, 100, 512, 513] {
                let arrays = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
                let objects = String(repeating: #"{"a":"#, count: depth) + "1" + String(repeating: "}", count: depth)
                for text in [arrays, objects] {
                    let accepted = Self.checkJSONValue(Array(text.utf8))
                    #expect(accepted == (depth <= 512), "depth \(depth)")
                }
            }
        }

        /// Nests through keyed and unkeyed containers, as user types do.
        indirect enum Nesting: Decodable, Equatable {
            case leaf(Int)
            case list([Nesting])
            case member(Nesting)

            private enum CodingKeys: String, CodingKey { case a }

            init(from decoder: any Decoder) throws {
                if let keyed = try? decoder.container(keyedBy: CodingKeys.self) {
                    self = .member(try keyed.decode(Nesting.self, forKey: .a))
                } else if var unkeyed = try? decoder.unkeyedContainer() {
                    var items: [Nesting] = []
                    while !unkeyed.isAtEnd { items.append(try unkeyed.decode(Nesting.self)) }
                    self = .list(items)
                } else {
                    self = .leaf(try decoder.singleValueContainer().decode(Int.self))
                }
            }
        }

        @Test func decodesUserTypesNestedToTheLimit() {
            for depth in [100, 512, 513] {
                let arrays = String(repeating: "[", count: depth) + "1" + String(repeating: "]", count: depth)
                let objects = String(repeating: #"{"a":"#, count: depth) + "1" + String(repeating: "}", count: depth)
                // Pairs of an array and an object: 2 * pairs levels.
                let pairs = (depth + 1) / 2
                let mixed = String(repeating: #"[{"a":"#, count: pairs) + "1" + String(repeating: "}]", count: pairs)
                for (text, levels) in [(arrays, depth), (objects, depth), (mixed, 2 * pairs)] {
                    let accepted = Self.check(Nesting.self, text)
                    #expect(accepted == (levels <= 512), "\(levels) levels")
                }
            }
        }

        @Test func survivesHostileInput() {
            let body = Array(Self.envelope.utf8)
            let fast = FastJSONDecoder(userInfo: [
                Envelope.Dispatched.handlersKey: Envelope.Dispatched.Table(payloadTypes: [
                    "FastJSONTestEvent": FastJSONTestEvent.self
                ])
            ])
            for end in 0..<body.count {
                let prefix = Array(body[..<end])
                #expect(throws: DecodingError.self) { try fast.decode(Envelope.Dispatched.self, from: prefix) }
                #expect(fast.decodeEnvelope(prefix, payloadTypes: ["FastJSONTestEvent": FastJSONTestEvent.self]) == nil)
                _ = try? fast.decode(JSONValue.self, from: prefix)
                _ = try? fast.decode(ScalarTrace.self, from: prefix)
            }
            var rng = SeededGenerator(seed: 0x5EED_0005)
            let interesting =
                Array(#"{}[]",:"\u0123456789-+.eEtruefalsn "#.utf8) + [
                    0x00, 0x1F, 0x7F, 0x80, 0xBF, 0xC3, 0xED, 0xF0, 0xFF,
                ]
            for round in 0..<10_000 {
                var bytes: [UInt8]
                if round % 2 == 0 {
                    bytes = (0..<Int(rng.next() % 40)).map { _ in
                        rng.next() % 4 == 0
                            ? UInt8(truncatingIfNeeded: rng.next())
                            : interesting[Int(rng.next() % UInt64(interesting.count))]
                    }
                } else {
                    bytes = body
                    for _ in 0..<Int(rng.next() % 4 + 1) {
                        bytes[Int(rng.next() % UInt64(bytes.count))] =
                            interesting[Int(rng.next() % UInt64(interesting.count))]
                    }
                }
                _ = try? fast.decode(JSONValue.self, from: bytes)
                _ = try? fast.decode(Envelope.Dispatched.self, from: bytes)
                _ = fast.decodeEnvelope(bytes, payloadTypes: ["FastJSONTestEvent": FastJSONTestEvent.self])
                if round % 10 == 0 { Self.checkJSONValue(bytes) }
            }
            for text in [
                String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000),
                String(repeating: "[", count: 10_000),
                String(repeating: #"{"a":"#, count: 10_000) + "1" + String(repeating: "}", count: 10_000),
                String(repeating: #"{"a":["#, count: 10_000),
            ] {
                #expect(throws: DecodingError.self) { try Self.fast.decode(JSONValue.self, from: Array(text.utf8)) }
            }
        }

        // MARK: API

        @Test func fallbackThrowsWhatJSONDecoderThrows() throws {
            // Accepted by JSONDecoder, not by the fast decoder: the fallback gives JSONDecoder's value.
            let trailingComma = Array(#"{"id":1,"amount":2,"currency":"c","note":"n",}"#.utf8)
            #expect(throws: DecodingError.self) { try Self.fast.decode(FastJSONTestEvent.self, from: trailingComma) }
            let value = try FastJSONDecoder.decodeWithFallback(
                FastJSONTestEvent.self,
                from: trailingComma,
                fast: Self.fast,
                foundation: Self.foundation
            )
            #expect(value == FastJSONTestEvent(id: 1, amount: 2, currency: "c", note: "n"))
            // Rejected by both: JSONDecoder's error.
            for text in [#"{"id":"1"}"#, "[", #"{"id":1}"#] {
                var fallbackError: (any Error)?
                do {
                    _ = try FastJSONDecoder.decodeWithFallback(
                        FastJSONTestEvent.self,
                        from: Array(text.utf8),
                        fast: Self.fast,
                        foundation: Self.foundation
                    )
                } catch {
                    fallbackError = error
                }
                var foundationError: (any Error)?
                do {
                    _ = try Self.foundation.decode(FastJSONTestEvent.self, from: Data(text.utf8))
                } catch {
                    foundationError = error
                }
                #expect(fallbackError != nil)
                #expect("\(fallbackError as Any)" == "\(foundationError as Any)")
            }
        }

        @Test func errorsInsideContainersAreDecodingErrors() throws {
            struct Wanted: Decodable {
                var value: Int
            }
            let cases: [(String, String)] = [
                (#"{"value":"x"}"#, "!typeMismatch(Int) at value"),
                (#"{"value":null}"#, "!valueNotFound(Int) at value"),
                (#"{}"#, "!keyNotFound(value) at "),
                (#"{"value":1.5}"#, "!corrupt"),
                (#"{"value":1e400}"#, "!corrupt"),
            ]
            for (text, expected) in cases {
                #expect(
                    describeOutcome { "\(try Self.fast.decode(Wanted.self, from: Array(text.utf8)).value)" } == expected
                )
            }
            let error = #expect(throws: DecodingError.self) {
                try Self.fast.decode([[Int]].self, from: Array(#"[[1],[2,"x"]]"#.utf8))
            }
            if case .typeMismatch(_, let context) = error {
                #expect(context.codingPath.map(\.intValue) == [1, 1])
                #expect(context.codingPath.map(\.stringValue) == ["Index 1", "Index 1"])
            } else {
                Issue.record("expected a type mismatch, got \(String(describing: error))")
            }
        }

        @Test func decodesFromRawBuffersAndKeepsEscapedDecoders() throws {
            let bytes = Array(Self.envelope.utf8)
            let head = try bytes.withUnsafeBytes { try Self.fast.decode(Envelope.Head.self, from: $0) }
            #expect(head.type == "FastJSONTestEvent")

            // A decoder kept after decoding still reads its own copy of the document.
            final class Keeper: Decodable, @unchecked Sendable {
                let decoder: any Decoder
                init(from decoder: any Decoder) throws { self.decoder = decoder }
            }
            var scratch = Array(#"{"type":"kept","data":{}}"#.utf8)
            let keeper = try Self.fast.decode(Keeper.self, from: scratch)
            scratch.replaceSubrange(0..<scratch.count, with: Array(repeating: UInt8(ascii: "x"), count: scratch.count))
            let container = try keeper.decoder.container(keyedBy: Envelope.AnyKey.self)
            #expect(try container.decode(String.self, forKey: .init(stringValue: "type")) == "kept")
        }
    }
}

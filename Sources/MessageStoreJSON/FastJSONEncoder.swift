#if canImport(FoundationEssentials)
    package import FoundationEssentials
#else
    package import Foundation
#endif

/// An `Encoder` that writes JSON text straight into a byte array, several times faster than
/// `JSONEncoder` on message payloads.
///
/// `JSONEncoder` first builds a tree of values, with a `Dictionary` for every object, and then
/// writes the tree out. This encoder writes each value as it is encoded and keeps only a stack of
/// the values and containers still open.
///
/// It is meant as a fast path in front of a `JSONEncoder` configured as the store's
/// `Envelope.makeEncoder()` is (ISO 8601 dates, slashes not escaped, every other option at its
/// default, no user info). Its output is what that encoder writes for the same value, byte for
/// byte, except for the order of the members of objects. `JSONEncoder` writes members in the
/// order of its dictionary's hashing, which is seeded per process and per dictionary, so the same
/// value comes out with its members in a different order from one call to the next; this encoder
/// writes them in the order they are encoded (declaration order, for synthesized conformances),
/// one of the orders `JSONEncoder` produces, and always the same one.
///
/// Whatever it cannot write exactly as `JSONEncoder` would makes it throw
/// ``FastJSONEncodingFallback``: a key encoded twice in one object, containers written to after a
/// sibling was started, NaN or an infinity, the `superEncoder()` of an unkeyed container, a
/// top-level value that encodes nothing, nesting as deep as `JSONEncoder`'s limit. Callers then
/// fall back to `JSONEncoder`, as ``encodeWithFallback(_:appendingTo:fast:foundation:)`` does, and
/// keep its output and its errors. Errors thrown by an `encode(to:)` also end the fast encoding,
/// which is marked as failed where they pass through, so that an `encode(to:)` that catches one
/// cannot leave a half-written value behind.
///
/// Like `JSONEncoder`, which encodes `Date`, `Data`, `URL` and `Decimal` itself, it writes those
/// as `JSONEncoder` does, and it writes the types in its `directTypes` itself, giving what their
/// `encode(to:)` gives (the store lists its `JSONValue` and `MessageMetadata`).
package struct FastJSONEncoder: Sendable {
    /// The types written by their own direct encoding (see ``FastJSONDirectCoding``).
    package let directTypes: [FastJSONDirectType]

    package init(directTypes: [FastJSONDirectType]) {
        self.directTypes = directTypes
    }

    /// The JSON text of `value`.
    ///
    /// - Throws: ``FastJSONEncodingFallback`` when the output could differ from `JSONEncoder`'s,
    ///   or the error an `encode(to:)` threw.
    package func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        var bytes: [UInt8] = []
        try encode(value, appendingTo: &bytes)
        return bytes
    }

    /// Appends the JSON text of `value` to `bytes`, which are left as they were when it throws.
    ///
    /// - Throws: ``FastJSONEncodingFallback`` when the output could differ from `JSONEncoder`'s,
    ///   or the error an `encode(to:)` threw.
    package func encode<T: Encodable>(_ value: T, appendingTo bytes: inout [UInt8]) throws {
        let start = bytes.count
        // The state writes into the caller's array itself, saving a copy of the output.
        let state = FastJSONEncodingState(taking: &bytes, directTypes: directTypes)
        do {
            try state.encodeTopLevel(value)
        } catch {
            state.giveBack(&bytes)
            bytes.removeSubrange(start...)
            throw error
        }
        state.giveBack(&bytes)
    }

    /// Encodes with `fast`, and when it throws, with `foundation`, whose output or error is then
    /// the one appended or thrown.
    ///
    /// `foundation` must be configured as the store's `Envelope.makeEncoder()` is. `encode(to:)` runs twice
    /// for a value the fast encoder gives up on, so it should have no side effects.
    package static func encodeWithFallback<T: Encodable>(
        _ value: T,
        appendingTo bytes: inout [UInt8],
        fast: FastJSONEncoder,
        foundation: JSONEncoder
    ) throws {
        do {
            try fast.encode(value, appendingTo: &bytes)
        } catch {
            bytes += try foundation.encode(value)
        }
    }

    /// The JSON text of `value` from `fast`, or else `foundation`'s text or error (see
    /// ``encodeWithFallback(_:appendingTo:fast:foundation:)``).
    package static func encodeWithFallback<T: Encodable>(
        _ value: T,
        fast: FastJSONEncoder,
        foundation: JSONEncoder
    ) throws -> [UInt8] {
        var bytes: [UInt8] = []
        try encodeWithFallback(value, appendingTo: &bytes, fast: fast, foundation: foundation)
        return bytes
    }

    /// Appends `string` quoted and escaped as `JSONEncoder` writes it with `.withoutEscapingSlashes`:
    /// `"` and `\` escaped, control characters as `\b`, `\t`, `\n`, `\f`, `\r` or `\u00xx` (lowercase
    /// hex), every other character as its UTF-8 bytes. Returns whether the string is ASCII.
    @discardableResult
    package static func appendString(_ string: String, to bytes: inout [UInt8]) -> Bool {
        var string = string
        return string.withUTF8 { utf8 in
            // Room for the string unescaped, so that a long one is not copied as the array grows
            // (at least doubling, as appending would).
            let needed = bytes.count + utf8.count + 2
            if needed > bytes.capacity {
                bytes.reserveCapacity(max(needed, 2 * bytes.capacity))
            }
            bytes.append(UInt8(ascii: "\""))
            var bits: UInt8 = 0
            var mark = 0
            var index = 0
            let count = utf8.count
            while index < count {
                // Plain ASCII eight bytes at a time; a word with anything else is looked at byte
                // by byte.
                if count - index >= 8,
                    JSONWords.specialBytes(
                        UInt64(littleEndian: UnsafeRawPointer(utf8.baseAddress! + index).loadUnaligned(as: UInt64.self))
                    ) == 0
                {
                    index += 8
                    continue
                }
                let end = min(index + 8, count)
                while index < end {
                    let byte = utf8[index]
                    bits |= byte
                    if byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
                        if index > mark {
                            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[mark..<index]))
                        }
                        appendEscape(byte, to: &bytes)
                        mark = index + 1
                    }
                    index += 1
                }
            }
            if mark < utf8.count {
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[mark...]))
            }
            bytes.append(UInt8(ascii: "\""))
            return bits < 0x80
        }
    }

    private static func appendEscape(_ byte: UInt8, to bytes: inout [UInt8]) {
        let short: UInt8? =
            switch byte {
            case UInt8(ascii: "\""): UInt8(ascii: "\"")
            case UInt8(ascii: "\\"): UInt8(ascii: "\\")
            case 0x08: UInt8(ascii: "b")
            case 0x0C: UInt8(ascii: "f")
            case 0x0A: UInt8(ascii: "n")
            case 0x0D: UInt8(ascii: "r")
            case 0x09: UInt8(ascii: "t")
            default: nil
            }
        bytes.append(UInt8(ascii: "\\"))
        if let short {
            bytes.append(short)
        } else {
            let hex: StaticString = "0123456789abcdef"
            hex.withUTF8Buffer { digits in
                bytes.append(UInt8(ascii: "u"))
                bytes.append(UInt8(ascii: "0"))
                bytes.append(UInt8(ascii: "0"))
                bytes.append(digits[Int(byte >> 4)])
                bytes.append(digits[Int(byte & 0x0F)])
            }
        }
    }
}

/// Thrown by ``FastJSONEncoder`` when its output could differ from `JSONEncoder`'s.
package struct FastJSONEncodingFallback: Error, CustomStringConvertible {
    package var reason: String
    package var description: String {
        "FastJSONEncoder cannot encode this value exactly as JSONEncoder does: \(reason)"
    }
}

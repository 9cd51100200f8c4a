#if canImport(FoundationEssentials)
    package import FoundationEssentials
#else
    package import Foundation
#endif

/// A `Decoder` for JSON message bodies that is much faster than `JSONDecoder` on small documents.
///
/// The bytes are parsed once, strictly by RFC 8259, into a flat array of nodes (byte ranges for
/// strings and numbers, element counts and subtree ends for containers). Values are converted
/// only when a `Decodable` asks for them, and keyed containers find keys by comparing UTF-8
/// bytes in the object's members instead of building a dictionary per container.
///
/// It is meant as a fast path in front of a `JSONDecoder` configured as the store's
/// `Envelope.makeDecoder()` is (ISO 8601 dates, every other option at its default): whenever it
/// returns a value, that value is the one `JSONDecoder` returns for the same bytes. Anything it
/// cannot decode exactly like `JSONDecoder` makes it throw — including input that `JSONDecoder`
/// accepts, such as trailing commas, a byte order mark or duplicate keys — so callers fall back
/// to `JSONDecoder`, as ``decodeWithFallback(_:from:fast:foundation:)`` does, and keep its
/// results and error messages.
///
/// When an unusual value is met inside a type's `init(from:)` (an integer written with an exponent
/// beyond 2^53, two keys that name the same integer, as "1" and "01" do for an `[Int: V]`), the
/// decoder throws there and also marks the whole decoding as failed, so that an `init(from:)`
/// that catches the error cannot turn it into a result `JSONDecoder` would not produce.
///
/// Like `JSONDecoder`, which decodes `Date`, `Data`, `URL` and `Decimal` itself, it decodes the
/// types in its `directTypes` itself when their input is ordinary, giving what their `init(from:)`
/// gives (the store lists its `JSONValue` and `MessageMetadata`).
package struct FastJSONDecoder: Sendable {
    /// Visible to every `init(from:)` through `decoder.userInfo`.
    package var userInfo: [CodingUserInfoKey: any Sendable] {
        didSet { userInfoStorage = UserInfoStorage(userInfo) }
    }

    /// `userInfo` converted once to the type `Decoder.userInfo` has.
    private var userInfoStorage: UserInfoStorage

    /// The types decoded straight from the nodes (see ``FastJSONDirectCoding``).
    package let directTypes: [FastJSONDirectType]

    package init(userInfo: [CodingUserInfoKey: any Sendable], directTypes: [FastJSONDirectType]) {
        self.userInfo = userInfo
        self.userInfoStorage = UserInfoStorage(userInfo)
        self.directTypes = directTypes
    }

    /// Parses `bytes` into the state that values are decoded from.
    package func parse(_ bytes: [UInt8]) throws(FastJSONSyntaxError) -> FastJSONDecodingState {
        try FastJSONDecodingState.parse(bytes, userInfo: userInfoStorage.value, directTypes: directTypes)
    }

    /// Decodes a value from JSON bytes.
    ///
    /// - Throws: `DecodingError`; `.dataCorrupted` with an empty coding path when the bytes are
    ///   not JSON this decoder accepts or the value cannot be decoded exactly as `JSONDecoder` would.
    package func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        let state: FastJSONDecodingState
        do {
            state = try parse(bytes)
        } catch {
            throw DecodingError.dataCorrupted(
                .init(codingPath: [], debugDescription: "The given data was not valid JSON.", underlyingError: error)
            )
        }
        let value = try state.unwrap(T.self, node: 0, parent: nil, key: nil)
        if state.mustFallBack {
            throw DecodingError.dataCorrupted(
                .init(codingPath: [], debugDescription: FastJSONDecodingState.fallBackDescription)
            )
        }
        return value
    }

    /// Decodes a value from JSON bytes; the bytes are copied first.
    package func decode<T: Decodable>(_ type: T.Type, from bytes: UnsafeRawBufferPointer) throws -> T {
        try decode(type, from: [UInt8](bytes))
    }

    /// Decodes with `fast`, and when it throws, with `foundation`, whose result or error is then
    /// the one returned or thrown.
    ///
    /// `init(from:)` runs twice for a body the fast decoder rejects, so it should have no side effects.
    package static func decodeWithFallback<T: Decodable>(
        _ type: T.Type,
        from bytes: [UInt8],
        fast: FastJSONDecoder,
        foundation: JSONDecoder
    ) throws -> T {
        do {
            return try fast.decode(type, from: bytes)
        } catch {
            return try foundation.decode(type, from: Data(bytes))
        }
    }

    /// The `Sendable` user info as `Decoder.userInfo` presents it.
    private final class UserInfoStorage: @unchecked Sendable {
        // Every value was `Sendable` when stored and the dictionary is never mutated.
        let value: [CodingUserInfoKey: Any]
        init(_ userInfo: [CodingUserInfoKey: any Sendable]) {
            var value: [CodingUserInfoKey: Any] = [:]
            value.reserveCapacity(userInfo.count)
            for (key, item) in userInfo { value[key] = item }
            self.value = value
        }
    }
}

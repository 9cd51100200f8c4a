#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The decoder of one value; also its single value container.
package struct FastJSONValueDecoder: Decoder, SingleValueDecodingContainer {
    package let state: FastJSONDecodingState
    package let node: Int
    package let path: FastJSONPathNode?

    package var codingPath: [any CodingKey] { FastJSONPathNode.path(path) }
    package var userInfo: [CodingUserInfoKey: Any] { state.userInfo }

    package func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        try state.keyedContainer(keyedBy: type, node: node, path: path)
    }

    package func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try state.unkeyedContainer(node: node, path: path)
    }

    package func singleValueContainer() throws -> any SingleValueDecodingContainer { self }

    /// Runs a conversion, adding the coding path to its error.
    @inline(__always)
    private func value<T>(_ convert: () throws(FastJSONValueError) -> T) throws -> T {
        do {
            return try convert()
        } catch {
            throw error.decodingError(at: codingPath)
        }
    }

    package func decodeNil() -> Bool { state.kind(node) == .null }
    package func decode(_ type: Bool.Type) throws -> Bool {
        try value { () throws(FastJSONValueError) in try state.decodeBool(node) }
    }
    package func decode(_ type: String.Type) throws -> String {
        try value { () throws(FastJSONValueError) in try state.decodeString(node) }
    }
    package func decode(_ type: Double.Type) throws -> Double { try floatingPoint(type) }
    package func decode(_ type: Float.Type) throws -> Float { try floatingPoint(type) }
    package func decode(_ type: Int.Type) throws -> Int { try integer(type) }
    package func decode(_ type: Int8.Type) throws -> Int8 { try integer(type) }
    package func decode(_ type: Int16.Type) throws -> Int16 { try integer(type) }
    package func decode(_ type: Int32.Type) throws -> Int32 { try integer(type) }
    package func decode(_ type: Int64.Type) throws -> Int64 { try integer(type) }
    package func decode(_ type: Int128.Type) throws -> Int128 { try integer(type) }
    package func decode(_ type: UInt.Type) throws -> UInt { try integer(type) }
    package func decode(_ type: UInt8.Type) throws -> UInt8 { try integer(type) }
    package func decode(_ type: UInt16.Type) throws -> UInt16 { try integer(type) }
    package func decode(_ type: UInt32.Type) throws -> UInt32 { try integer(type) }
    package func decode(_ type: UInt64.Type) throws -> UInt64 { try integer(type) }
    package func decode(_ type: UInt128.Type) throws -> UInt128 { try integer(type) }

    @inline(__always)
    private func integer<T: FixedWidthInteger>(_ type: T.Type) throws -> T {
        try value { () throws(FastJSONValueError) in try state.decodeInteger(type, node) }
    }

    @inline(__always)
    private func floatingPoint<T: BinaryFloatingPoint & LosslessStringConvertible>(_ type: T.Type) throws -> T {
        try value { () throws(FastJSONValueError) in try state.decodeFloatingPoint(type, node) }
    }

    package func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try state.unwrap(type, node: node, parent: path, key: nil)
    }
}

// MARK: - Keyed container

package struct FastJSONKeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    package let state: FastJSONDecodingState
    package let object: Int
    package let path: FastJSONPathNode?

    package var codingPath: [any CodingKey] { FastJSONPathNode.path(path) }

    /// The keys in the order of the JSON text.
    package var allKeys: [Key] {
        let count = Int(state[object].a)
        var keys: [Key] = []
        keys.reserveCapacity(count)
        var integers: [Int] = []
        var keyIndex = object + 1
        for _ in 0..<count {
            if let name = state.string(of: state[keyIndex]), let key = Key(stringValue: name) {
                if let integer = key.intValue {
                    // Two keys naming the same integer ("1" and "01" in a `[Int: V]`): JSONDecoder
                    // keeps whichever its hashed dictionary yields last, so do not guess.
                    if integers.contains(integer) { state.mustFallBack = true }
                    integers.append(integer)
                }
                keys.append(key)
            }
            keyIndex = state.next(after: keyIndex + 1)
        }
        return keys
    }

    /// The node of the value for `key`; throws `keyNotFound` when there is none.
    @inline(__always)
    private func require(_ key: Key) throws -> Int {
        guard let node = state.member(of: object, named: key.stringValue) else { throw keyNotFound(key) }
        return node
    }

    private func keyNotFound(_ key: Key) -> DecodingError {
        .keyNotFound(
            key,
            .init(
                codingPath: codingPath,
                debugDescription: "No value associated with key \(key) (\"\(key.stringValue)\")."
            )
        )
    }

    /// The value's node, or nil when the key is missing or the value is null.
    @inline(__always)
    private func present(_ key: Key) -> Int? {
        guard let node = state.member(of: object, named: key.stringValue), state.kind(node) != .null else { return nil }
        return node
    }

    /// Runs a conversion, adding the coding path to its error.
    @inline(__always)
    private func value<T>(_ key: Key, _ convert: () throws(FastJSONValueError) -> T) throws -> T {
        do {
            return try convert()
        } catch {
            throw error.decodingError(at: FastJSONPathNode.path(path, appending: key))
        }
    }

    package func contains(_ key: Key) -> Bool { state.member(of: object, named: key.stringValue) != nil }

    package func decodeNil(forKey key: Key) throws -> Bool {
        state.kind(try require(key)) == .null
    }

    package func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool {
        let node = try require(key)
        return try value(key) { () throws(FastJSONValueError) in try state.decodeBool(node) }
    }

    package func decode(_ type: String.Type, forKey key: Key) throws -> String {
        let node = try require(key)
        return try value(key) { () throws(FastJSONValueError) in try state.decodeString(node) }
    }

    package func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try floatingPoint(type, key) }
    package func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try floatingPoint(type, key) }
    package func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try integer(type, key) }
    package func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try integer(type, key) }
    package func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try integer(type, key) }
    package func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try integer(type, key) }
    package func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try integer(type, key) }
    package func decode(_ type: Int128.Type, forKey key: Key) throws -> Int128 { try integer(type, key) }
    package func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try integer(type, key) }
    package func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try integer(type, key) }
    package func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try integer(type, key) }
    package func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try integer(type, key) }
    package func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try integer(type, key) }
    package func decode(_ type: UInt128.Type, forKey key: Key) throws -> UInt128 { try integer(type, key) }

    @inline(__always)
    private func integer<T: FixedWidthInteger>(_ type: T.Type, _ key: Key) throws -> T {
        let node = try require(key)
        return try value(key) { () throws(FastJSONValueError) in try state.decodeInteger(type, node) }
    }

    @inline(__always)
    private func floatingPoint<T: BinaryFloatingPoint & LosslessStringConvertible>(_ type: T.Type, _ key: Key) throws
        -> T
    {
        let node = try require(key)
        return try value(key) { () throws(FastJSONValueError) in try state.decodeFloatingPoint(type, node) }
    }

    package func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try state.unwrap(type, node: try require(key), parent: path, key: key)
    }

    // One lookup instead of the three of the default implementations.

    package func decodeIfPresent(_ type: Bool.Type, forKey key: Key) throws -> Bool? {
        guard let node = present(key) else { return nil }
        return try value(key) { () throws(FastJSONValueError) in try state.decodeBool(node) }
    }

    package func decodeIfPresent(_ type: String.Type, forKey key: Key) throws -> String? {
        guard let node = present(key) else { return nil }
        return try value(key) { () throws(FastJSONValueError) in try state.decodeString(node) }
    }

    package func decodeIfPresent(_ type: Double.Type, forKey key: Key) throws -> Double? {
        guard let node = present(key) else { return nil }
        return try value(key) { () throws(FastJSONValueError) in try state.decodeFloatingPoint(type, node) }
    }

    package func decodeIfPresent(_ type: Int.Type, forKey key: Key) throws -> Int? {
        guard let node = present(key) else { return nil }
        return try value(key) { () throws(FastJSONValueError) in try state.decodeInteger(type, node) }
    }

    package func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard let node = present(key) else { return nil }
        return try state.unwrap(type, node: node, parent: path, key: key)
    }

    package func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type,
        forKey key: Key
    ) throws -> KeyedDecodingContainer<NestedKey> {
        let node = try require(key)
        return try state.keyedContainer(keyedBy: type, node: node, path: FastJSONPathNode(parent: path, key: key))
    }

    package func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        let node = try require(key)
        return try state.unkeyedContainer(node: node, path: FastJSONPathNode(parent: path, key: key))
    }

    /// A decoder for the value of `super`, or for null when there is none.
    package func superDecoder() throws -> any Decoder {
        let node = state.member(of: object, named: "super") ?? state.absentNode
        return FastJSONValueDecoder(
            state: state,
            node: node,
            path: FastJSONPathNode(parent: path, key: _CodingKey.super)
        )
    }

    /// A decoder for the value of `key`, or for null when there is none.
    package func superDecoder(forKey key: Key) throws -> any Decoder {
        let node = state.member(of: object, named: key.stringValue) ?? state.absentNode
        return FastJSONValueDecoder(state: state, node: node, path: FastJSONPathNode(parent: path, key: key))
    }
}

// MARK: - Unkeyed container

package struct FastJSONUnkeyedContainer: UnkeyedDecodingContainer {
    package let state: FastJSONDecodingState
    package let path: FastJSONPathNode?
    package let elementCount: Int
    /// The node of the element at `currentIndex`, when not at the end.
    private var cursor: Int
    package private(set) var currentIndex = 0

    package init(state: FastJSONDecodingState, array: Int, path: FastJSONPathNode?) {
        self.state = state
        self.path = path
        self.elementCount = Int(state[array].a)
        self.cursor = array + 1
    }

    package var codingPath: [any CodingKey] { FastJSONPathNode.path(path) }
    package var count: Int? { elementCount }
    package var isAtEnd: Bool { currentIndex >= elementCount }

    private var indexKey: _CodingKey { .index(currentIndex) }

    /// The current element's node; throws `valueNotFound` at the end.
    private func current(_ type: any Any.Type, _ message: String = "Unkeyed container is at end.") throws -> Int {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(
                type,
                .init(codingPath: FastJSONPathNode.path(path, appending: indexKey), debugDescription: message)
            )
        }
        return cursor
    }

    /// Moves to the next element; past the end only the index moves, as in `JSONDecoder`.
    private mutating func advance() {
        if currentIndex < elementCount {
            cursor = state.next(after: cursor)
        }
        currentIndex += 1
    }

    /// Converts the current element, adding the coding path to a conversion error, and moves on.
    @inline(__always)
    private mutating func next<T>(_ type: T.Type, _ convert: (Int) throws(FastJSONValueError) -> T) throws -> T {
        let node = try current(type)
        let result: T
        do {
            result = try convert(node)
        } catch {
            throw error.decodingError(at: FastJSONPathNode.path(path, appending: indexKey))
        }
        advance()
        return result
    }

    package mutating func decodeNil() throws -> Bool {
        let node = try current(Never.self)
        guard state.kind(node) == .null else { return false }
        advance()
        return true
    }

    package mutating func decode(_ type: Bool.Type) throws -> Bool {
        let state = state
        return try next(type) { node throws(FastJSONValueError) in try state.decodeBool(node) }
    }

    package mutating func decode(_ type: String.Type) throws -> String {
        let state = state
        return try next(type) { node throws(FastJSONValueError) in try state.decodeString(node) }
    }

    package mutating func decode(_ type: Double.Type) throws -> Double { try floatingPoint(type) }
    package mutating func decode(_ type: Float.Type) throws -> Float { try floatingPoint(type) }
    package mutating func decode(_ type: Int.Type) throws -> Int { try integer(type) }
    package mutating func decode(_ type: Int8.Type) throws -> Int8 { try integer(type) }
    package mutating func decode(_ type: Int16.Type) throws -> Int16 { try integer(type) }
    package mutating func decode(_ type: Int32.Type) throws -> Int32 { try integer(type) }
    package mutating func decode(_ type: Int64.Type) throws -> Int64 { try integer(type) }
    package mutating func decode(_ type: Int128.Type) throws -> Int128 { try integer(type) }
    package mutating func decode(_ type: UInt.Type) throws -> UInt { try integer(type) }
    package mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try integer(type) }
    package mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try integer(type) }
    package mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try integer(type) }
    package mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try integer(type) }
    package mutating func decode(_ type: UInt128.Type) throws -> UInt128 { try integer(type) }

    @inline(__always)
    private mutating func integer<T: FixedWidthInteger>(_ type: T.Type) throws -> T {
        let state = state
        return try next(type) { node throws(FastJSONValueError) in try state.decodeInteger(type, node) }
    }

    @inline(__always)
    private mutating func floatingPoint<T: BinaryFloatingPoint & LosslessStringConvertible>(_ type: T.Type) throws -> T
    {
        let state = state
        return try next(type) { node throws(FastJSONValueError) in try state.decodeFloatingPoint(type, node) }
    }

    package mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let node = try current(type)
        let result = try state.unwrap(type, node: node, parent: path, key: indexKey)
        advance()
        return result
    }

    // `decodeIfPresent` gives nil for a null element and also at the end, moving the index on
    // in both cases, as in `JSONDecoder` (the default implementations do not move at the end).

    @inline(__always)
    private mutating func ifPresent<T>(_ decode: (inout Self) throws -> T) throws -> T? {
        guard !isAtEnd, state.kind(cursor) != .null else {
            advance()
            return nil
        }
        return try decode(&self)
    }

    package mutating func decodeIfPresent(_ type: Bool.Type) throws -> Bool? { try ifPresent { try $0.decode(type) } }
    package mutating func decodeIfPresent(_ type: String.Type) throws -> String? {
        try ifPresent { try $0.decode(type) }
    }
    package mutating func decodeIfPresent(_ type: Double.Type) throws -> Double? {
        try ifPresent { try $0.decode(type) }
    }
    package mutating func decodeIfPresent(_ type: Float.Type) throws -> Float? { try ifPresent { try $0.decode(type) } }
    package mutating func decodeIfPresent(_ type: Int.Type) throws -> Int? { try ifPresent { try $0.decode(type) } }
    package mutating func decodeIfPresent(_ type: Int8.Type) throws -> Int8? { try ifPresent { try $0.decode(type) } }
    package mutating func decodeIfPresent(_ type: Int16.Type) throws -> Int16? { try ifPresent { try $0.decode(type) } }
    package mutating func decodeIfPresent(_ type: Int32.Type) throws -> Int32? { try ifPresent { try $0.decode(type) } }
    package mutating func decodeIfPresent(_ type: Int64.Type) throws -> Int64? { try ifPresent { try $0.decode(type) } }
    package mutating func decodeIfPresent(_ type: Int128.Type) throws -> Int128? {
        try ifPresent { try $0.decode(type) }
    }
    package mutating func decodeIfPresent(_ type: UInt.Type) throws -> UInt? { try ifPresent { try $0.decode(type) } }
    package mutating func decodeIfPresent(_ type: UInt8.Type) throws -> UInt8? { try ifPresent { try $0.decode(type) } }
    package mutating func decodeIfPresent(_ type: UInt16.Type) throws -> UInt16? {
        try ifPresent { try $0.decode(type) }
    }
    package mutating func decodeIfPresent(_ type: UInt32.Type) throws -> UInt32? {
        try ifPresent { try $0.decode(type) }
    }
    package mutating func decodeIfPresent(_ type: UInt64.Type) throws -> UInt64? {
        try ifPresent { try $0.decode(type) }
    }
    package mutating func decodeIfPresent(_ type: UInt128.Type) throws -> UInt128? {
        try ifPresent { try $0.decode(type) }
    }
    package mutating func decodeIfPresent<T: Decodable>(_ type: T.Type) throws -> T? {
        try ifPresent { try $0.decode(type) }
    }

    package mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type
    ) throws -> KeyedDecodingContainer<NestedKey> {
        let node = try current(KeyedDecodingContainer<NestedKey>.self)
        let container = try state.keyedContainer(
            keyedBy: type,
            node: node,
            path: FastJSONPathNode(parent: path, key: indexKey)
        )
        advance()
        return container
    }

    package mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let node = try current(
            (any UnkeyedDecodingContainer).self,
            "Cannot get nested unkeyed container -- unkeyed container is at end."
        )
        let container = try state.unkeyedContainer(node: node, path: FastJSONPathNode(parent: path, key: indexKey))
        advance()
        return container
    }

    package mutating func superDecoder() throws -> any Decoder {
        let node = try current((any Decoder).self, "Cannot get superDecoder() -- unkeyed container is at end.")
        let decoder = FastJSONValueDecoder(
            state: state,
            node: node,
            path: FastJSONPathNode(parent: path, key: indexKey)
        )
        advance()
        return decoder
    }
}

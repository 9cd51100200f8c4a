#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The encoder of one value; also its single value container.
package struct FastJSONValueEncoder: Encoder, SingleValueEncodingContainer {
    package let state: FastJSONEncodingState
    package let id: Int

    package var codingPath: [any CodingKey] { state.codingPath(of: id) }
    package var userInfo: [CodingUserInfoKey: Any] { [:] }

    package func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        KeyedEncodingContainer(
            FastJSONKeyedEncodingContainer<Key>(state: state, id: state.openContainer(in: id, kind: .object))
        )
    }

    package func unkeyedContainer() -> any UnkeyedEncodingContainer {
        FastJSONUnkeyedEncodingContainer(state: state, id: state.openContainer(in: id, kind: .array))
    }

    package func singleValueContainer() -> any SingleValueEncodingContainer { self }

    /// Checks that nothing was written yet, writes with `write`, then marks the value as written.
    @inline(__always)
    private func single(_ write: (FastJSONEncodingState) throws -> Void) throws {
        _ = try state.beginSingleValue(in: id)
        try write(state)
        state.endSingleValue(id)
    }

    package func encodeNil() throws { try single { $0.appendASCII("null") } }
    package func encode(_ value: Bool) throws { try single { $0.appendBool(value) } }
    package func encode(_ value: String) throws { try single { $0.appendString(value) } }
    package func encode(_ value: Double) throws { try single { try $0.appendFloatingPoint(value) } }
    package func encode(_ value: Float) throws { try single { try $0.appendFloatingPoint(value) } }
    package func encode(_ value: Int) throws { try single { $0.appendInteger(value) } }
    package func encode(_ value: Int8) throws { try single { $0.appendInteger(value) } }
    package func encode(_ value: Int16) throws { try single { $0.appendInteger(value) } }
    package func encode(_ value: Int32) throws { try single { $0.appendInteger(value) } }
    package func encode(_ value: Int64) throws { try single { $0.appendInteger(value) } }
    package func encode(_ value: Int128) throws { try single { $0.appendInteger(value) } }
    package func encode(_ value: UInt) throws { try single { $0.appendInteger(value) } }
    package func encode(_ value: UInt8) throws { try single { $0.appendInteger(value) } }
    package func encode(_ value: UInt16) throws { try single { $0.appendInteger(value) } }
    package func encode(_ value: UInt32) throws { try single { $0.appendInteger(value) } }
    package func encode(_ value: UInt64) throws { try single { $0.appendInteger(value) } }
    package func encode(_ value: UInt128) throws { try single { $0.appendInteger(value) } }

    package func encode<T: Encodable>(_ value: T) throws {
        try state.encodeSingleValue(value, in: id)
    }
}

// MARK: - Keyed container

package struct FastJSONKeyedEncodingContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    package let state: FastJSONEncodingState
    package let id: Int

    package var codingPath: [any CodingKey] { state.codingPath(of: id) }

    @inline(__always)
    private func member(_ key: Key) throws {
        try state.beginMember(of: id, key: key.stringValue)
    }

    package func encodeNil(forKey key: Key) throws {
        try member(key)
        state.appendASCII("null")
    }

    package func encode(_ value: Bool, forKey key: Key) throws {
        try member(key)
        state.appendBool(value)
    }

    package func encode(_ value: String, forKey key: Key) throws {
        try member(key)
        state.appendString(value)
    }

    package func encode(_ value: Double, forKey key: Key) throws {
        try member(key)
        try state.appendFloatingPoint(value)
    }

    package func encode(_ value: Float, forKey key: Key) throws {
        try member(key)
        try state.appendFloatingPoint(value)
    }

    package func encode(_ value: Int, forKey key: Key) throws { try integer(value, key) }
    package func encode(_ value: Int8, forKey key: Key) throws { try integer(value, key) }
    package func encode(_ value: Int16, forKey key: Key) throws { try integer(value, key) }
    package func encode(_ value: Int32, forKey key: Key) throws { try integer(value, key) }
    package func encode(_ value: Int64, forKey key: Key) throws { try integer(value, key) }
    package func encode(_ value: Int128, forKey key: Key) throws { try integer(value, key) }
    package func encode(_ value: UInt, forKey key: Key) throws { try integer(value, key) }
    package func encode(_ value: UInt8, forKey key: Key) throws { try integer(value, key) }
    package func encode(_ value: UInt16, forKey key: Key) throws { try integer(value, key) }
    package func encode(_ value: UInt32, forKey key: Key) throws { try integer(value, key) }
    package func encode(_ value: UInt64, forKey key: Key) throws { try integer(value, key) }
    package func encode(_ value: UInt128, forKey key: Key) throws { try integer(value, key) }

    @inline(__always)
    private func integer<T: FixedWidthInteger>(_ value: T, _ key: Key) throws {
        try member(key)
        state.appendInteger(value)
    }

    package func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try member(key)
        try state.encodeValue(value, key: key)
    }

    package func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type,
        forKey key: Key
    ) -> KeyedEncodingContainer<NestedKey> {
        KeyedEncodingContainer(
            FastJSONKeyedEncodingContainer<NestedKey>(state: state, id: state.openNested(.object, in: id, key: key))
        )
    }

    package func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        FastJSONUnkeyedEncodingContainer(state: state, id: state.openNested(.array, in: id, key: key))
    }

    package func superEncoder() -> any Encoder {
        FastJSONValueEncoder(state: state, id: state.openSuper(in: id, key: _CodingKey.super))
    }

    package func superEncoder(forKey key: Key) -> any Encoder {
        FastJSONValueEncoder(state: state, id: state.openSuper(in: id, key: key))
    }
}

// MARK: - Unkeyed container

package struct FastJSONUnkeyedEncodingContainer: UnkeyedEncodingContainer {
    package let state: FastJSONEncodingState
    package let id: Int

    package var codingPath: [any CodingKey] { state.codingPath(of: id) }
    package var count: Int { state.count(of: id) }

    package func encodeNil() throws {
        _ = try state.beginElement(of: id)
        state.appendASCII("null")
    }

    package func encode(_ value: Bool) throws {
        _ = try state.beginElement(of: id)
        state.appendBool(value)
    }

    package func encode(_ value: String) throws {
        _ = try state.beginElement(of: id)
        state.appendString(value)
    }

    package func encode(_ value: Double) throws {
        _ = try state.beginElement(of: id)
        try state.appendFloatingPoint(value)
    }

    package func encode(_ value: Float) throws {
        _ = try state.beginElement(of: id)
        try state.appendFloatingPoint(value)
    }

    package func encode(_ value: Int) throws { try integer(value) }
    package func encode(_ value: Int8) throws { try integer(value) }
    package func encode(_ value: Int16) throws { try integer(value) }
    package func encode(_ value: Int32) throws { try integer(value) }
    package func encode(_ value: Int64) throws { try integer(value) }
    package func encode(_ value: Int128) throws { try integer(value) }
    package func encode(_ value: UInt) throws { try integer(value) }
    package func encode(_ value: UInt8) throws { try integer(value) }
    package func encode(_ value: UInt16) throws { try integer(value) }
    package func encode(_ value: UInt32) throws { try integer(value) }
    package func encode(_ value: UInt64) throws { try integer(value) }
    package func encode(_ value: UInt128) throws { try integer(value) }

    @inline(__always)
    private func integer<T: FixedWidthInteger>(_ value: T) throws {
        _ = try state.beginElement(of: id)
        state.appendInteger(value)
    }

    package func encode<T: Encodable>(_ value: T) throws {
        let element = try state.beginElement(of: id)
        try state.encodeValue(value, key: _CodingKey.index(element))
    }

    package func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<
        NestedKey
    > {
        KeyedEncodingContainer(
            FastJSONKeyedEncodingContainer<NestedKey>(state: state, id: state.openNestedElement(.object, in: id))
        )
    }

    package func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        FastJSONUnkeyedEncodingContainer(state: state, id: state.openNestedElement(.array, in: id))
    }

    /// JSONEncoder inserts the super value where the container's end was when the super encoder
    /// was made, once the encoder is released, and counts it only from then: not reproduced.
    package func superEncoder() -> any Encoder {
        state.fail("superEncoder() of an unkeyed container")
        return FastJSONValueEncoder(state: state, id: FastJSONEncodingState.invalidID)
    }
}

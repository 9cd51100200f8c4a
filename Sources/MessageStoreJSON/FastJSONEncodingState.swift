#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// What a frame of the encoding stack stands for.
package enum FastJSONFrameKind: UInt8 {
    /// A value being encoded by an `encode(to:)` call; it ends when that call returns.
    case value
    /// The value of a super encoder; it ends when its container is written to again, as nothing
    /// says when the super encoder is done (`JSONEncoder` writes it when the encoder is released).
    case superValue
    case object
    case array
}

/// A value or container still open.
///
/// The frames form one path from the top-level value to the innermost open container, each
/// written inside the frame below it: a container is only written to once everything above it
/// is closed, and containers and super values close as soon as something below them is written
/// to. Values do not close that way: their `encode(to:)` is still running.
package struct FastJSONEncodingFrame {
    /// Identifies the frame to the encoders and containers writing into it; ids grow up the stack.
    package var id: Int
    package var kind: FastJSONFrameKind
    /// A container opened by a container (`nestedContainer`), not by an encoder.
    package var nested: Bool
    /// The members or elements written so far, for containers.
    package var count: Int
    /// For values: ``FastJSONEncodingState/empty``, ``FastJSONEncodingState/sealed`` or the id of
    /// the container opened in the value.
    package var content: Int
    /// Where an object's keys start in ``FastJSONEncodingState/keys``.
    package var keysStart: Int
    /// The index of an object's set of keys in ``FastJSONEncodingState/keySets``, or -1.
    package var keySet: Int
    /// The key the frame was opened under, for coding paths.
    package var key: (any CodingKey)?
}

/// The output and the stack of open frames of one encoding.
package final class FastJSONEncodingState {
    /// The deepest nesting of containers `JSONEncoder` writes is one less.
    package static let maximumDepth = 512
    /// Frame contents: nothing written yet, or one value written.
    package static let empty = 0
    package static let sealed = -1
    /// The id of the containers handed out when the encoding has failed.
    package static let invalidID = -1
    /// Objects with more keys look duplicates up in a set rather than one by one.
    package static let linearKeyLimit = 16

    // Unchecked exclusivity: the properties are only accessed by this class's methods, which
    // never run user code (`encode(to:)`, `CodingKey.stringValue`) while an access is in progress;
    // the checks would cost a fair share of the time spent on small values.
    @exclusivity(unchecked) private var bytes: [UInt8] = []
    @exclusivity(unchecked) private var frames: [FastJSONEncodingFrame] = []
    /// The keys of the open objects that have no set, in order.
    @exclusivity(unchecked) private var keys: [(string: String, ascii: Bool)] = []
    @exclusivity(unchecked) private var keySets: [Set<String>] = []
    /// The id of the top frame, or 0.
    private var topID = 0
    private var nextID = 1
    /// The number of open containers.
    package private(set) var depth = 0
    /// The types written by their own direct encoding.
    private let directTypes: [FastJSONDirectType]
    /// Why the output cannot be `JSONEncoder`'s, once known: everything fails from then on.
    private(set) var failure: String?

    package init(taking output: inout [UInt8], directTypes: [FastJSONDirectType]) {
        self.directTypes = directTypes
        swap(&bytes, &output)
        frames.reserveCapacity(8)
        keys.reserveCapacity(16)
    }

    package func giveBack(_ output: inout [UInt8]) {
        swap(&bytes, &output)
    }

    /// Records that the output cannot be `JSONEncoder`'s and returns the error to throw.
    @discardableResult
    package func fail(_ reason: String) -> FastJSONEncodingFallback {
        if failure == nil {
            failure = reason
            // No frame has this id: every write goes the slow way, which throws.
            topID = Int.min
        }
        return FastJSONEncodingFallback(reason: failure ?? reason)
    }

    // MARK: Values

    package func encodeTopLevel<T: Encodable>(_ value: T) throws {
        if try appendKnown(value) { return }
        let id = push(.value, key: nil)
        do {
            try value.encode(to: FastJSONValueEncoder(state: self, id: id))
        } catch {
            fail("encode(to:) threw")
            throw error
        }
        let index = try makeTop(id)
        // JSONEncoder throws for this.
        guard frames[index].content != Self.empty else { throw fail("the top-level value encoded nothing") }
        pop()
        if let failure { throw FastJSONEncodingFallback(reason: failure) }
    }

    /// Writes `value` where a member's or an element's value goes; `key` is its last coding path key.
    package func encodeValue<T: Encodable, Key: CodingKey>(_ value: T, key: Key) throws {
        if try appendKnown(value) { return }
        let id = push(.value, key: key)
        do {
            try value.encode(to: FastJSONValueEncoder(state: self, id: id))
        } catch {
            fail("encode(to:) threw")
            throw error
        }
        let index = try makeTop(id)
        // A value that encodes nothing is an empty object to JSONEncoder.
        if frames[index].content == Self.empty { appendASCII("{}") }
        pop()
    }

    /// Writes `value` as the single value of the value `id`.
    package func encodeSingleValue<T: Encodable>(_ value: T, in id: Int) throws {
        var index = try beginSingleValue(in: id)
        if try appendKnown(value) {
            frames[index].content = Self.sealed
            return
        }
        // As JSONEncoder does, the value encodes itself with the same encoder.
        do {
            try value.encode(to: FastJSONValueEncoder(state: self, id: id))
        } catch {
            fail("encode(to:) threw")
            throw error
        }
        index = try makeTop(id)
        if frames[index].content == Self.empty { appendASCII("{}") }
        frames[index].content = Self.sealed
    }

    /// Writes the values whose types `JSONEncoder` encodes itself (`Date`, `Data`, `URL`,
    /// `Decimal`) as it does, the common types whose `encode(to:)` encodes one single value
    /// directly, and the `directTypes`. Returns false for other types.
    @inline(__always)
    private func appendKnown<T: Encodable>(_ value: T) throws -> Bool {
        if T.self == String.self {
            appendString(Self.same(value, as: String.self))
        } else if T.self == Int.self {
            appendInteger(Self.same(value, as: Int.self))
        } else if T.self == Bool.self {
            appendBool(Self.same(value, as: Bool.self))
        } else if T.self == Double.self {
            try appendFloatingPoint(Self.same(value, as: Double.self))
        } else {
            return try appendLessCommon(value)
        }
        return true
    }

    private func appendLessCommon<T: Encodable>(_ value: T) throws -> Bool {
        for direct in directTypes where direct.valueType == T.self {
            try encodeDirectly(value, with: direct.coding)
            return true
        }
        if T.self == Date.self {
            appendString(Self.same(value, as: Date.self).formatted(.iso8601))
        } else if T.self == Data.self {
            appendString(Self.same(value, as: Data.self).base64EncodedString())
        } else if T.self == URL.self {
            appendString(Self.same(value, as: URL.self).absoluteString)
        } else if T.self == Decimal.self {
            // A number however it reads, "NaN" included, as in JSONEncoder.
            appendUTF8(Self.same(value, as: Decimal.self).description)
        } else if T.self == Float.self {
            try appendFloatingPoint(Self.same(value, as: Float.self))
        } else if T.self == Int64.self {
            appendInteger(Self.same(value, as: Int64.self))
        } else if T.self == UInt64.self {
            appendInteger(Self.same(value, as: UInt64.self))
        } else if T.self == Int32.self {
            appendInteger(Self.same(value, as: Int32.self))
        } else if T.self == UInt32.self {
            appendInteger(Self.same(value, as: UInt32.self))
        } else if T.self == Int16.self {
            appendInteger(Self.same(value, as: Int16.self))
        } else if T.self == UInt16.self {
            appendInteger(Self.same(value, as: UInt16.self))
        } else if T.self == Int8.self {
            appendInteger(Self.same(value, as: Int8.self))
        } else if T.self == UInt8.self {
            appendInteger(Self.same(value, as: UInt8.self))
        } else if T.self == UInt.self {
            appendInteger(Self.same(value, as: UInt.self))
        } else {
            return false
        }
        return true
    }

    /// Writes `value` with `Coding`'s direct encoding; the caller checked that `T` is `Coding.Value`.
    private func encodeDirectly<T, Coding: FastJSONDirectCoding>(_ value: T, with _: Coding.Type) throws {
        try Coding.encode(Self.same(value, as: Coding.Value.self), into: self)
    }

    /// `value` as `U`, which the caller checked `T` is.
    @inline(__always)
    package static func same<T, U>(_ value: T, as _: U.Type) -> U {
        unsafeBitCast(value, to: U.self)
    }

    // MARK: Frames

    private func push(_ kind: FastJSONFrameKind, nested: Bool = false, key: (any CodingKey)?) -> Int {
        let id = nextID
        nextID += 1
        frames.append(
            FastJSONEncodingFrame(
                id: id,
                kind: kind,
                nested: nested,
                count: 0,
                content: Self.empty,
                keysStart: keys.count,
                keySet: -1,
                key: key
            )
        )
        if kind == .object || kind == .array { depth += 1 }
        if failure == nil { topID = id }
        return id
    }

    /// Removes the top frame, which the caller has closed.
    private func pop() {
        let last = frames.count - 1
        switch frames[last].kind {
        case .object:
            keys.removeSubrange(frames[last].keysStart...)
            if frames[last].keySet >= 0 { keySets.removeLast() }
            depth -= 1
        case .array:
            depth -= 1
        case .value, .superValue:
            break
        }
        frames.removeLast()
        if failure == nil { topID = frames.isEmpty ? 0 : frames[frames.count - 1].id }
    }

    /// Closes the top frame, which must be a container or a super value.
    private func closeTop() throws {
        let last = frames.count - 1
        switch frames[last].kind {
        case .object:
            appendByte(UInt8(ascii: "}"))
        case .array:
            appendByte(UInt8(ascii: "]"))
        case .superValue:
            // JSONEncoder's super encoders write an empty object when nothing was encoded.
            if frames[last].content == Self.empty { appendASCII("{}") }
        case .value:
            throw fail("a container was written to while a value inside it was being encoded")
        }
        pop()
    }

    /// The index of the frame `id`, closing the frames above it; throws when it is closed.
    @inline(__always)
    private func makeTop(_ id: Int) throws -> Int {
        if id == topID { return frames.count - 1 }
        return try makeTopClosingFrames(id)
    }

    private func makeTopClosingFrames(_ id: Int) throws -> Int {
        if let failure { throw FastJSONEncodingFallback(reason: failure) }
        guard let index = index(of: id) else {
            throw fail("a container or encoder was used after its value was finished")
        }
        while frames.count - 1 > index { try closeTop() }
        return index
    }

    private func index(of id: Int) -> Int? {
        var index = frames.count - 1
        while index >= 0 {
            let frameID = frames[index].id
            if frameID == id { return index }
            if frameID < id { return nil }
            index -= 1
        }
        return nil
    }

    /// The number of members or elements written to the container `id`.
    package func count(of id: Int) -> Int {
        guard let index = index(of: id) else {
            fail("the count of a finished container was asked for")
            return 0
        }
        return frames[index].count
    }

    // MARK: Writing into frames

    /// Writes the separator, the key and the colon of a new member of the object `id`.
    package func beginMember(of id: Int, key: String) throws {
        let index = try makeTop(id)
        if frames[index].count > 0 { appendByte(UInt8(ascii: ",")) }
        frames[index].count += 1
        let ascii = appendString(key)
        appendByte(UInt8(ascii: ":"))
        try checkUnique(key, ascii: ascii, object: index)
    }

    /// Writes the separator of a new element of the array `id` and returns the element's index.
    package func beginElement(of id: Int) throws -> Int {
        let index = try makeTop(id)
        let count = frames[index].count
        if count > 0 { appendByte(UInt8(ascii: ",")) }
        frames[index].count = count + 1
        return count
    }

    /// Checks that the value `id` has nothing in it yet, before its single value is written.
    package func beginSingleValue(in id: Int) throws -> Int {
        let index = try makeTop(id)
        guard frames[index].content == Self.empty else {
            throw fail("a value was encoded where something was already encoded")
        }
        return index
    }

    /// Marks the value `id`, made top by ``beginSingleValue(in:)``, as written.
    package func endSingleValue(_ id: Int) {
        if id == topID { frames[frames.count - 1].content = Self.sealed }
    }

    /// JSONEncoder keeps the last value of a key encoded twice (or merges nested containers), so
    /// the first one written here would be wrong. Keys are compared as Swift strings, as
    /// JSONEncoder's dictionary compares them ("\u{212A}" is "K"): as bytes when both are ASCII.
    private func checkUnique(_ key: String, ascii: Bool, object index: Int) throws {
        let set = frames[index].keySet
        if set >= 0 {
            guard keySets[set].insert(key).inserted else { throw fail("a key was encoded twice in an object") }
            return
        }
        let start = frames[index].keysStart
        let length = key.utf8.count
        for other in keys[start...] {
            let same =
                ascii && other.ascii ? other.string.utf8.count == length && other.string == key : other.string == key
            if same { throw fail("a key was encoded twice in an object") }
        }
        if keys.count - start < Self.linearKeyLimit {
            keys.append((key, ascii))
        } else {
            var names = Set(keys[start...].lazy.map(\.string))
            names.insert(key)
            keys.removeSubrange(start...)
            frames[index].keySet = keySets.count
            keySets.append(names)
        }
    }

    /// Opens a container in the value `id`, or returns the one already opened there, as
    /// `JSONEncoder` does when an encoder is asked for a container twice.
    package func openContainer(in id: Int, kind: FastJSONFrameKind) -> Int {
        guard failure == nil, let index = index(of: id) else {
            fail("an encoder was used after its value was finished")
            return Self.invalidID
        }
        let content = frames[index].content
        if content == Self.empty {
            do {
                _ = try makeTop(id)
            } catch {
                return Self.invalidID
            }
            let container = open(kind, nested: false, key: nil)
            frames[index].content = container
            return container
        }
        let next = index + 1
        if content > 0, next < frames.count, frames[next].id == content, frames[next].kind == kind {
            do {
                _ = try makeTop(content)
            } catch {
                return Self.invalidID
            }
            return content
        }
        fail("an encoder was asked for a container after it encoded something else")
        return Self.invalidID
    }

    /// Opens a container as the value of a new member `key` of the object `id`.
    package func openNested<Key: CodingKey>(_ kind: FastJSONFrameKind, in id: Int, key: Key) -> Int {
        let name = key.stringValue
        do {
            try beginMember(of: id, key: name)
        } catch {
            return Self.invalidID
        }
        return open(kind, nested: true, key: key)
    }

    /// Opens a container as a new element of the array `id`.
    package func openNestedElement(_ kind: FastJSONFrameKind, in id: Int) -> Int {
        let element: Int
        do {
            element = try beginElement(of: id)
        } catch {
            return Self.invalidID
        }
        return open(kind, nested: true, key: _CodingKey.index(element))
    }

    /// Starts the value of a super encoder as a new member `key` of the object `id`.
    package func openSuper<Key: CodingKey>(in id: Int, key: Key) -> Int {
        let name = key.stringValue
        do {
            try beginMember(of: id, key: name)
        } catch {
            return Self.invalidID
        }
        return push(.superValue, key: key)
    }

    private func open(_ kind: FastJSONFrameKind, nested: Bool, key: (any CodingKey)?) -> Int {
        guard depth + 1 < Self.maximumDepth else {
            fail("nesting too deep for JSONEncoder")
            return Self.invalidID
        }
        appendByte(kind == .object ? UInt8(ascii: "{") : UInt8(ascii: "["))
        return push(kind, nested: nested, key: key)
    }

    // MARK: Coding paths

    /// The coding path `JSONEncoder` gives the encoder or container of the frame `id`.
    package func codingPath(of id: Int) -> [any CodingKey] {
        guard let index = index(of: id) else {
            // Only a finished value's encoder or container; JSONEncoder would still answer.
            fail("the coding path of a finished value was asked for")
            return []
        }
        return codingPath(at: index)
    }

    private func codingPath(at index: Int) -> [any CodingKey] {
        guard index > 0 else { return [] }
        switch frames[index].kind {
        case .value, .superValue:
            // JSONEncoder makes the encoder of a member or element, and a super encoder, from
            // the encoder of the outermost container of a nest, so the keys of the nested
            // containers in between are not in its path.
            var container = index - 1
            while container > 0 && frames[container].nested { container -= 1 }
            var path = container > 0 ? codingPath(at: container - 1) : []
            if let key = frames[index].key { path.append(key) }
            return path
        case .object, .array:
            var path = codingPath(at: index - 1)
            if frames[index].nested, let key = frames[index].key { path.append(key) }
            return path
        }
    }

    // MARK: Output

    @inline(__always)
    package func appendByte(_ byte: UInt8) {
        bytes.append(byte)
    }

    package func appendASCII(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    private func appendUTF8(_ text: String) {
        var text = text
        text.withUTF8 { bytes.append(contentsOf: $0) }
    }

    @discardableResult
    package func appendString(_ string: String) -> Bool {
        FastJSONEncoder.appendString(string, to: &bytes)
    }

    package func appendBool(_ value: Bool) {
        if value { appendASCII("true") } else { appendASCII("false") }
    }

    /// Writes the decimal digits of `value`, as its `description` reads.
    package func appendInteger<T: FixedWidthInteger>(_ value: T) {
        guard T.bitWidth <= 64 else {
            appendUTF8(value.description)
            return
        }
        let negative = value < 0
        var magnitude = negative ? UInt64(truncatingIfNeeded: 0 &- Int64(value)) : UInt64(value)
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var start = digits.count
            repeat {
                start -= 1
                digits[start] = UInt8(truncatingIfNeeded: magnitude % 10) &+ UInt8(ascii: "0")
                magnitude /= 10
            } while magnitude != 0
            if negative { appendByte(UInt8(ascii: "-")) }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: digits[start...]))
        }
    }

    /// Writes `value` as JSONEncoder does: its `description` without a trailing ".0".
    package func appendFloatingPoint<T: BinaryFloatingPoint & CustomStringConvertible>(_ value: T) throws {
        guard value.isFinite else { throw fail("NaN or an infinity, which JSONEncoder does not encode") }
        var text = value.description
        text.withUTF8 { utf8 in
            var count = utf8.count
            if count >= 2 && utf8[count - 2] == UInt8(ascii: ".") && utf8[count - 1] == UInt8(ascii: "0") {
                count -= 2
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[..<count]))
        }
    }
}

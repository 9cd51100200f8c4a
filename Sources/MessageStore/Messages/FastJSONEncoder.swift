#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// An `Encoder` that writes JSON text straight into a byte array, several times faster than
/// `JSONEncoder` on message payloads.
///
/// `JSONEncoder` first builds a tree of values, with a `Dictionary` for every object, and then
/// writes the tree out. This encoder writes each value as it is encoded and keeps only a stack of
/// the values and containers still open.
///
/// It is meant as a fast path in front of a `JSONEncoder` configured like
/// ``Envelope/makeEncoder()`` (ISO 8601 dates, slashes not escaped, every other option at its
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
/// as `JSONEncoder` does, and it writes this module's `JSONValue` and `MessageMetadata` itself,
/// giving what their `encode(to:)` gives.
struct FastJSONEncoder: Sendable {
    init() {}

    /// The JSON text of `value`.
    ///
    /// - Throws: ``FastJSONEncodingFallback`` when the output could differ from `JSONEncoder`'s,
    ///   or the error an `encode(to:)` threw.
    func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        var bytes: [UInt8] = []
        try encode(value, appendingTo: &bytes)
        return bytes
    }

    /// Appends the JSON text of `value` to `bytes`, which are left as they were when it throws.
    ///
    /// - Throws: ``FastJSONEncodingFallback`` when the output could differ from `JSONEncoder`'s,
    ///   or the error an `encode(to:)` threw.
    func encode<T: Encodable>(_ value: T, appendingTo bytes: inout [UInt8]) throws {
        let start = bytes.count
        // The state writes into the caller's array itself, saving a copy of the output.
        let state = FastJSONEncodingState(taking: &bytes)
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
    /// `foundation` must be configured like ``Envelope/makeEncoder()``. `encode(to:)` runs twice
    /// for a value the fast encoder gives up on, so it should have no side effects.
    static func encodeWithFallback<T: Encodable>(
        _ value: T,
        appendingTo bytes: inout [UInt8],
        fast: FastJSONEncoder = FastJSONEncoder(),
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
    static func encodeWithFallback<T: Encodable>(
        _ value: T,
        fast: FastJSONEncoder = FastJSONEncoder(),
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
    static func appendString(_ string: String, to bytes: inout [UInt8]) -> Bool {
        var string = string
        return string.withUTF8 { utf8 in
            bytes.append(UInt8(ascii: "\""))
            var bits: UInt8 = 0
            var mark = 0
            for index in utf8.indices {
                let byte = utf8[index]
                bits |= byte
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                if index > mark {
                    bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[mark..<index]))
                }
                appendEscape(byte, to: &bytes)
                mark = index + 1
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
struct FastJSONEncodingFallback: Error, CustomStringConvertible {
    var reason: String
    var description: String { "FastJSONEncoder cannot encode this value exactly as JSONEncoder does: \(reason)" }
}

// MARK: - Encoding state

/// What a frame of the encoding stack stands for.
enum FastJSONFrameKind: UInt8 {
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
struct FastJSONEncodingFrame {
    /// Identifies the frame to the encoders and containers writing into it; ids grow up the stack.
    var id: Int
    var kind: FastJSONFrameKind
    /// A container opened by a container (`nestedContainer`), not by an encoder.
    var nested: Bool
    /// The members or elements written so far, for containers.
    var count: Int
    /// For values: ``FastJSONEncodingState/empty``, ``FastJSONEncodingState/sealed`` or the id of
    /// the container opened in the value.
    var content: Int
    /// Where an object's keys start in ``FastJSONEncodingState/keys``.
    var keysStart: Int
    /// The index of an object's set of keys in ``FastJSONEncodingState/keySets``, or -1.
    var keySet: Int
    /// The key the frame was opened under, for coding paths.
    var key: (any CodingKey)?
}

/// The output and the stack of open frames of one encoding.
final class FastJSONEncodingState {
    /// The deepest nesting of containers `JSONEncoder` writes is one less.
    static let maximumDepth = 512
    /// Frame contents: nothing written yet, or one value written.
    static let empty = 0
    static let sealed = -1
    /// The id of the containers handed out when the encoding has failed.
    static let invalidID = -1
    /// Objects with more keys look duplicates up in a set rather than one by one.
    static let linearKeyLimit = 16

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
    private var depth = 0
    /// Why the output cannot be `JSONEncoder`'s, once known: everything fails from then on.
    private(set) var failure: String?

    init(taking output: inout [UInt8]) {
        swap(&bytes, &output)
        frames.reserveCapacity(8)
        keys.reserveCapacity(16)
    }

    func giveBack(_ output: inout [UInt8]) {
        swap(&bytes, &output)
    }

    /// Records that the output cannot be `JSONEncoder`'s and returns the error to throw.
    @discardableResult
    func fail(_ reason: String) -> FastJSONEncodingFallback {
        if failure == nil {
            failure = reason
            // No frame has this id: every write goes the slow way, which throws.
            topID = Int.min
        }
        return FastJSONEncodingFallback(reason: failure ?? reason)
    }

    // MARK: Values

    func encodeTopLevel<T: Encodable>(_ value: T) throws {
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
    func encodeValue<T: Encodable, Key: CodingKey>(_ value: T, key: Key) throws {
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
    func encodeSingleValue<T: Encodable>(_ value: T, in id: Int) throws {
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
    /// directly, and this module's `JSONValue` and `MessageMetadata`. Returns false for other types.
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
        if T.self == JSONValue.self {
            try appendJSONValue(Self.same(value, as: JSONValue.self), openContainers: depth)
        } else if T.self == MessageMetadata.self {
            try appendMetadata(Self.same(value, as: MessageMetadata.self))
        } else if T.self == Date.self {
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

    /// `value` as `U`, which the caller checked `T` is.
    @inline(__always)
    static func same<T, U>(_ value: T, as _: U.Type) -> U {
        unsafeBitCast(value, to: U.self)
    }

    // MARK: Direct encoding of this module's types

    // `JSONValue` and `MessageMetadata` are encoded with every message that has metadata; going
    // through their `encode(to:)` costs mostly Codable's own machinery (a boxed container per
    // object, an encoder per member). These functions write what those methods write, members in
    // the order they encode them. Keep them in step with `JSONValue.encode(to:)` and
    // `MessageMetadata.encode(to:)`; the differential tests check them against JSONEncoder, which
    // uses those methods.

    /// What `JSONValue.encode(to:)` writes, inside `openContainers` containers.
    private func appendJSONValue(_ value: JSONValue, openContainers: Int) throws {
        switch value {
        case .null:
            appendASCII("null")
        case .bool(let value):
            appendBool(value)
        case .int(let value):
            appendInteger(value)
        case .double(let value):
            try appendFloatingPoint(value)
        case .string(let value):
            appendString(value)
        case .array(let items):
            guard openContainers + 1 < Self.maximumDepth else { throw fail("nesting too deep for JSONEncoder") }
            appendByte(UInt8(ascii: "["))
            var first = true
            for item in items {
                if !first { appendByte(UInt8(ascii: ",")) }
                first = false
                try appendJSONValue(item, openContainers: openContainers + 1)
            }
            appendByte(UInt8(ascii: "]"))
        case .object(let members):
            guard openContainers + 1 < Self.maximumDepth else { throw fail("nesting too deep for JSONEncoder") }
            appendByte(UInt8(ascii: "{"))
            var first = true
            // A dictionary's keys are distinct by String equality, as JSONEncoder's keys must be.
            for (key, member) in members {
                if !first { appendByte(UInt8(ascii: ",")) }
                first = false
                appendString(key)
                appendByte(UInt8(ascii: ":"))
                try appendJSONValue(member, openContainers: openContainers + 1)
            }
            appendByte(UInt8(ascii: "}"))
        }
    }

    /// What `MessageMetadata.encode(to:)` writes: the additional keys in sorted order, except
    /// the two it knows, then `originSubject` and `traceId` when set.
    private func appendMetadata(_ metadata: MessageMetadata) throws {
        guard depth + 1 < Self.maximumDepth else { throw fail("nesting too deep for JSONEncoder") }
        appendByte(UInt8(ascii: "{"))
        var first = true
        func member(_ key: String) {
            if !first { appendByte(UInt8(ascii: ",")) }
            first = false
            appendString(key)
            appendByte(UInt8(ascii: ":"))
        }
        // Sorting the pairs by key gives the order of `keys.sorted()`: the keys are distinct.
        for (key, value) in metadata.additionalFields.sorted(by: { $0.key < $1.key })
        where key != "originSubject" && key != "traceId" {
            member(key)
            try appendJSONValue(value, openContainers: depth + 1)
        }
        if let originSubject = metadata.originSubject {
            member("originSubject")
            appendString(originSubject)
        }
        if let traceId = metadata.traceId {
            member("traceId")
            appendString(traceId)
        }
        appendByte(UInt8(ascii: "}"))
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
    func count(of id: Int) -> Int {
        guard let index = index(of: id) else {
            fail("the count of a finished container was asked for")
            return 0
        }
        return frames[index].count
    }

    // MARK: Writing into frames

    /// Writes the separator, the key and the colon of a new member of the object `id`.
    func beginMember(of id: Int, key: String) throws {
        let index = try makeTop(id)
        if frames[index].count > 0 { appendByte(UInt8(ascii: ",")) }
        frames[index].count += 1
        let ascii = appendString(key)
        appendByte(UInt8(ascii: ":"))
        try checkUnique(key, ascii: ascii, object: index)
    }

    /// Writes the separator of a new element of the array `id` and returns the element's index.
    func beginElement(of id: Int) throws -> Int {
        let index = try makeTop(id)
        let count = frames[index].count
        if count > 0 { appendByte(UInt8(ascii: ",")) }
        frames[index].count = count + 1
        return count
    }

    /// Checks that the value `id` has nothing in it yet, before its single value is written.
    func beginSingleValue(in id: Int) throws -> Int {
        let index = try makeTop(id)
        guard frames[index].content == Self.empty else {
            throw fail("a value was encoded where something was already encoded")
        }
        return index
    }

    /// Marks the value `id`, made top by ``beginSingleValue(in:)``, as written.
    func endSingleValue(_ id: Int) {
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
    func openContainer(in id: Int, kind: FastJSONFrameKind) -> Int {
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
    func openNested<Key: CodingKey>(_ kind: FastJSONFrameKind, in id: Int, key: Key) -> Int {
        let name = key.stringValue
        do {
            try beginMember(of: id, key: name)
        } catch {
            return Self.invalidID
        }
        return open(kind, nested: true, key: key)
    }

    /// Opens a container as a new element of the array `id`.
    func openNestedElement(_ kind: FastJSONFrameKind, in id: Int) -> Int {
        let element: Int
        do {
            element = try beginElement(of: id)
        } catch {
            return Self.invalidID
        }
        return open(kind, nested: true, key: _CodingKey.index(element))
    }

    /// Starts the value of a super encoder as a new member `key` of the object `id`.
    func openSuper<Key: CodingKey>(in id: Int, key: Key) -> Int {
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
    func codingPath(of id: Int) -> [any CodingKey] {
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
    func appendByte(_ byte: UInt8) {
        bytes.append(byte)
    }

    func appendASCII(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    private func appendUTF8(_ text: String) {
        var text = text
        text.withUTF8 { bytes.append(contentsOf: $0) }
    }

    @discardableResult
    func appendString(_ string: String) -> Bool {
        FastJSONEncoder.appendString(string, to: &bytes)
    }

    func appendBool(_ value: Bool) {
        if value { appendASCII("true") } else { appendASCII("false") }
    }

    /// Writes the decimal digits of `value`, as its `description` reads.
    func appendInteger<T: FixedWidthInteger>(_ value: T) {
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
    func appendFloatingPoint<T: BinaryFloatingPoint & CustomStringConvertible>(_ value: T) throws {
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

// MARK: - Encoder and single value container

/// The encoder of one value; also its single value container.
struct FastJSONValueEncoder: Encoder, SingleValueEncodingContainer {
    let state: FastJSONEncodingState
    let id: Int

    var codingPath: [any CodingKey] { state.codingPath(of: id) }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        KeyedEncodingContainer(
            FastJSONKeyedEncodingContainer<Key>(state: state, id: state.openContainer(in: id, kind: .object))
        )
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        FastJSONUnkeyedEncodingContainer(state: state, id: state.openContainer(in: id, kind: .array))
    }

    func singleValueContainer() -> any SingleValueEncodingContainer { self }

    /// Checks that nothing was written yet, writes with `write`, then marks the value as written.
    @inline(__always)
    private func single(_ write: (FastJSONEncodingState) throws -> Void) throws {
        _ = try state.beginSingleValue(in: id)
        try write(state)
        state.endSingleValue(id)
    }

    func encodeNil() throws { try single { $0.appendASCII("null") } }
    func encode(_ value: Bool) throws { try single { $0.appendBool(value) } }
    func encode(_ value: String) throws { try single { $0.appendString(value) } }
    func encode(_ value: Double) throws { try single { try $0.appendFloatingPoint(value) } }
    func encode(_ value: Float) throws { try single { try $0.appendFloatingPoint(value) } }
    func encode(_ value: Int) throws { try single { $0.appendInteger(value) } }
    func encode(_ value: Int8) throws { try single { $0.appendInteger(value) } }
    func encode(_ value: Int16) throws { try single { $0.appendInteger(value) } }
    func encode(_ value: Int32) throws { try single { $0.appendInteger(value) } }
    func encode(_ value: Int64) throws { try single { $0.appendInteger(value) } }
    func encode(_ value: Int128) throws { try single { $0.appendInteger(value) } }
    func encode(_ value: UInt) throws { try single { $0.appendInteger(value) } }
    func encode(_ value: UInt8) throws { try single { $0.appendInteger(value) } }
    func encode(_ value: UInt16) throws { try single { $0.appendInteger(value) } }
    func encode(_ value: UInt32) throws { try single { $0.appendInteger(value) } }
    func encode(_ value: UInt64) throws { try single { $0.appendInteger(value) } }
    func encode(_ value: UInt128) throws { try single { $0.appendInteger(value) } }

    func encode<T: Encodable>(_ value: T) throws {
        try state.encodeSingleValue(value, in: id)
    }
}

// MARK: - Keyed container

struct FastJSONKeyedEncodingContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let state: FastJSONEncodingState
    let id: Int

    var codingPath: [any CodingKey] { state.codingPath(of: id) }

    @inline(__always)
    private func member(_ key: Key) throws {
        try state.beginMember(of: id, key: key.stringValue)
    }

    func encodeNil(forKey key: Key) throws {
        try member(key)
        state.appendASCII("null")
    }

    func encode(_ value: Bool, forKey key: Key) throws {
        try member(key)
        state.appendBool(value)
    }

    func encode(_ value: String, forKey key: Key) throws {
        try member(key)
        state.appendString(value)
    }

    func encode(_ value: Double, forKey key: Key) throws {
        try member(key)
        try state.appendFloatingPoint(value)
    }

    func encode(_ value: Float, forKey key: Key) throws {
        try member(key)
        try state.appendFloatingPoint(value)
    }

    func encode(_ value: Int, forKey key: Key) throws { try integer(value, key) }
    func encode(_ value: Int8, forKey key: Key) throws { try integer(value, key) }
    func encode(_ value: Int16, forKey key: Key) throws { try integer(value, key) }
    func encode(_ value: Int32, forKey key: Key) throws { try integer(value, key) }
    func encode(_ value: Int64, forKey key: Key) throws { try integer(value, key) }
    func encode(_ value: Int128, forKey key: Key) throws { try integer(value, key) }
    func encode(_ value: UInt, forKey key: Key) throws { try integer(value, key) }
    func encode(_ value: UInt8, forKey key: Key) throws { try integer(value, key) }
    func encode(_ value: UInt16, forKey key: Key) throws { try integer(value, key) }
    func encode(_ value: UInt32, forKey key: Key) throws { try integer(value, key) }
    func encode(_ value: UInt64, forKey key: Key) throws { try integer(value, key) }
    func encode(_ value: UInt128, forKey key: Key) throws { try integer(value, key) }

    @inline(__always)
    private func integer<T: FixedWidthInteger>(_ value: T, _ key: Key) throws {
        try member(key)
        state.appendInteger(value)
    }

    func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try member(key)
        try state.encodeValue(value, key: key)
    }

    func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type,
        forKey key: Key
    ) -> KeyedEncodingContainer<NestedKey> {
        KeyedEncodingContainer(
            FastJSONKeyedEncodingContainer<NestedKey>(state: state, id: state.openNested(.object, in: id, key: key))
        )
    }

    func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        FastJSONUnkeyedEncodingContainer(state: state, id: state.openNested(.array, in: id, key: key))
    }

    func superEncoder() -> any Encoder {
        FastJSONValueEncoder(state: state, id: state.openSuper(in: id, key: _CodingKey.super))
    }

    func superEncoder(forKey key: Key) -> any Encoder {
        FastJSONValueEncoder(state: state, id: state.openSuper(in: id, key: key))
    }
}

// MARK: - Unkeyed container

struct FastJSONUnkeyedEncodingContainer: UnkeyedEncodingContainer {
    let state: FastJSONEncodingState
    let id: Int

    var codingPath: [any CodingKey] { state.codingPath(of: id) }
    var count: Int { state.count(of: id) }

    func encodeNil() throws {
        _ = try state.beginElement(of: id)
        state.appendASCII("null")
    }

    func encode(_ value: Bool) throws {
        _ = try state.beginElement(of: id)
        state.appendBool(value)
    }

    func encode(_ value: String) throws {
        _ = try state.beginElement(of: id)
        state.appendString(value)
    }

    func encode(_ value: Double) throws {
        _ = try state.beginElement(of: id)
        try state.appendFloatingPoint(value)
    }

    func encode(_ value: Float) throws {
        _ = try state.beginElement(of: id)
        try state.appendFloatingPoint(value)
    }

    func encode(_ value: Int) throws { try integer(value) }
    func encode(_ value: Int8) throws { try integer(value) }
    func encode(_ value: Int16) throws { try integer(value) }
    func encode(_ value: Int32) throws { try integer(value) }
    func encode(_ value: Int64) throws { try integer(value) }
    func encode(_ value: Int128) throws { try integer(value) }
    func encode(_ value: UInt) throws { try integer(value) }
    func encode(_ value: UInt8) throws { try integer(value) }
    func encode(_ value: UInt16) throws { try integer(value) }
    func encode(_ value: UInt32) throws { try integer(value) }
    func encode(_ value: UInt64) throws { try integer(value) }
    func encode(_ value: UInt128) throws { try integer(value) }

    @inline(__always)
    private func integer<T: FixedWidthInteger>(_ value: T) throws {
        _ = try state.beginElement(of: id)
        state.appendInteger(value)
    }

    func encode<T: Encodable>(_ value: T) throws {
        let element = try state.beginElement(of: id)
        try state.encodeValue(value, key: _CodingKey.index(element))
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        KeyedEncodingContainer(
            FastJSONKeyedEncodingContainer<NestedKey>(state: state, id: state.openNestedElement(.object, in: id))
        )
    }

    func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        FastJSONUnkeyedEncodingContainer(state: state, id: state.openNestedElement(.array, in: id))
    }

    /// JSONEncoder inserts the super value where the container's end was when the super encoder
    /// was made, once the encoder is released, and counts it only from then: not reproduced.
    func superEncoder() -> any Encoder {
        state.fail("superEncoder() of an unkeyed container")
        return FastJSONValueEncoder(state: state, id: FastJSONEncodingState.invalidID)
    }
}

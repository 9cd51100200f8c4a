#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Finds a key that appears twice in one JSON object.
///
/// Decoders disagree on such objects: `JSONDecoder` keeps the first value, Python's `json` the
/// last. So that Swift and Python workers sharing a stream can never read one body two ways, the
/// store reads no body with a duplicate key: it is not a valid envelope (poison, dead-lettered
/// by a worker; `decodingFailed` for a read). ``FastJSONParser`` already rejects duplicates;
/// this looks again before a body falls back to `JSONDecoder`, which would accept them.
///
/// The scan is lenient (it does not validate the JSON, which the decoder does anyway): it keeps
/// a set of keys per open object and compares keys as Swift strings compare, after unescaping,
/// as `JSONDecoder` matches keys.
package enum JSONDuplicateKeys {
    /// The first key found twice in one object of `bytes`, or nil.
    package static func first(in bytes: [UInt8]) -> String? {
        bytes.withUnsafeBufferPointer { buffer -> String? in
            // One entry per open container: the keys seen so far for an object, nil for an array.
            var open: [Set<String>?] = []
            var expectingKey = false
            var i = 0
            let n = buffer.count
            while i < n {
                switch buffer[i] {
                case UInt8(ascii: "{"):
                    open.append([])
                    expectingKey = true
                case UInt8(ascii: "["):
                    open.append(nil)
                    expectingKey = false
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    if !open.isEmpty { open.removeLast() }
                    expectingKey = false
                case UInt8(ascii: ","):
                    expectingKey = open.last.map { $0 != nil } ?? false
                case UInt8(ascii: ":"):
                    expectingKey = false
                case UInt8(ascii: "\""):
                    let start = i + 1
                    var end = start
                    var flags: UInt8 = 0
                    while end < n && buffer[end] != UInt8(ascii: "\"") {
                        if buffer[end] == UInt8(ascii: "\\") {
                            flags = FastJSONNode.hasEscapes
                            end += 1
                        }
                        end += 1
                    }
                    end = min(end, n)
                    if expectingKey, let last = open.indices.last, open[last] != nil {
                        let node = FastJSONNode(
                            a: Int32(clamping: start),
                            b: Int32(clamping: end),
                            kind: .string,
                            flags: flags
                        )
                        let key =
                            FastJSONDecodingState.string(of: node, in: buffer)
                            ?? String(decoding: UnsafeBufferPointer(rebasing: buffer[start..<end]), as: UTF8.self)
                        if open[last]!.insert(key).inserted == false { return key }
                    }
                    expectingKey = false
                    i = end
                default:
                    break
                }
                i += 1
            }
            return nil
        }
    }
}

/// An NKey seed (`SU…` for a user), decoded and checked, and the public key it belongs to.
///
/// cnats signs the server's nonce with the seed but must also be told the public key, which it
/// cannot derive; the nats CLI and nats.go take the seed alone. Here the public key is derived
/// with Ed25519 (libcrypto, see ``Ed25519``), so a seed alone is enough too.
struct NKeySeed: Sendable {
    /// The public key, such as `UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4`.
    let publicKey: String

    /// Decodes `text` (surrounding white space ignored), or says why it is not a seed, in words
    /// that never repeat the seed.
    init(_ text: String) throws(MessageStoreError) {
        let trimmed = Substring(text).trimmingWhitespace()
        guard var raw = Base32.decode(trimmed) else { throw Self.invalid("it is not a base32-encoded NKey seed") }
        // The decoded seed holds the private key: wiped however this ends.
        defer { SecretBytes.wipe(&raw) }
        guard raw.count == 36 else { throw Self.invalid("it is not a base32-encoded NKey seed") }
        let checksum = UInt16(raw[34]) | UInt16(raw[35]) << 8
        guard CRC16.xmodem(raw[0..<34]) == checksum else {
            throw Self.invalid("its checksum does not match")
        }
        // Byte 0: the seed marker (18 << 3) and the high bits of the key type; byte 1 the rest.
        guard raw[0] & 0xF8 == 18 << 3 else { throw Self.invalid("it is not a seed (it does not start with S)") }
        let keyType = (raw[0] & 0x07) << 5 | (raw[1] & 0xF8) >> 3
        guard keyType == 20 << 3 else {
            throw Self.invalid("it is not a user seed (a user seed starts with SU)")
        }
        guard let key = Ed25519.publicKey(of: raw[2..<34]) else {
            throw Self.invalid("its key is not a valid Ed25519 seed")
        }
        publicKey = Base32.encodeWithChecksum([keyType] + key)
    }

    private static func invalid(_ reason: String) -> MessageStoreError {
        MessageStoreError(code: .invalidConfiguration, message: "the NKey seed cannot be used: \(reason)")
    }
}

/// RFC 4648 base32 without padding, as NKeys use it. Package-wide: the test helpers that make
/// keys and credentials encode them the same way.
package enum Base32 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".utf8)

    /// `bytes` and their CRC-16/XMODEM (little-endian), encoded: an NKey's text form.
    package static func encodeWithChecksum(_ bytes: [UInt8]) -> String {
        let crc = CRC16.xmodem(bytes[...])
        return encode(bytes + [UInt8(crc & 0xFF), UInt8(crc >> 8)])
    }

    static func decode(_ text: String) -> [UInt8]? {
        var bytes: [UInt8] = []
        var buffer: UInt32 = 0
        var bits = 0
        for character in text.utf8 {
            let value: UInt8
            switch character {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = character - UInt8(ascii: "A")
            case UInt8(ascii: "2")...UInt8(ascii: "7"): value = character - UInt8(ascii: "2") + 26
            default: return nil
            }
            buffer = buffer << 5 | UInt32(value)
            bits += 5
            if bits >= 8 {
                bits -= 8
                bytes.append(UInt8(truncatingIfNeeded: buffer >> UInt32(bits)))
                buffer &= (1 << UInt32(bits)) - 1
            }
        }
        return bytes
    }

    package static func encode(_ bytes: [UInt8]) -> String {
        var output: [UInt8] = []
        var buffer: UInt32 = 0
        var bits = 0
        for byte in bytes {
            buffer = buffer << 8 | UInt32(byte)
            bits += 8
            while bits >= 5 {
                bits -= 5
                output.append(alphabet[Int(buffer >> UInt32(bits) & 31)])
            }
            buffer &= (1 << UInt32(bits)) - 1
        }
        if bits > 0 {
            output.append(alphabet[Int(buffer << UInt32(5 - bits) & 31)])
        }
        return String(decoding: output, as: UTF8.self)
    }
}

/// CRC-16/XMODEM, the checksum of NKeys.
package enum CRC16 {
    package static func xmodem(_ bytes: ArraySlice<UInt8>) -> UInt16 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc ^= UInt16(byte) << 8
            for _ in 0..<8 {
                crc = crc & 0x8000 != 0 ? crc << 1 ^ 0x1021 : crc << 1
            }
        }
        return crc
    }
}

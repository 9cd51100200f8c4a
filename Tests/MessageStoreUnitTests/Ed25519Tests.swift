import MessageStoreTesting
import Testing

@testable import MessageStore

/// The Ed25519 of NKeys (libcrypto underneath): RFC 8032's test vectors, and what it refuses.
@Suite("Ed25519 (unit)")
struct Ed25519Tests {
    /// RFC 8032, section 7.1: TEST 1 (an empty message) and TEST 2 (one byte).
    static let vectors: [(privateKey: String, publicKey: String, message: String, signature: String)] = [
        (
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
            "",
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        ),
        (
            "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
            "72",
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
        ),
    ]

    @Test(arguments: 0..<vectors.count)
    func rfc8032TestVectors(_ index: Int) throws {
        let vector = Self.vectors[index]
        let privateKey = hex(vector.privateKey)
        let message = hex(vector.message)
        let publicKey = try #require(Ed25519.publicKey(of: privateKey[...]))
        #expect(publicKey == hex(vector.publicKey))
        let signature = try #require(Ed25519.sign(message, with: privateKey[...]))
        #expect(signature == hex(vector.signature))
        #expect(Ed25519.isValidSignature(signature, of: message, publicKey: publicKey))
    }

    @Test func signaturesOfGeneratedKeysVerifyAndNothingElseDoes() throws {
        let message = Array("a nonce from the server".utf8)
        let key = NKeyPair.generate(.user)
        let signature = key.sign(message)
        #expect(signature.count == Ed25519.signatureLength)
        // The public key inside the NKey: its prefix byte, 32 bytes of key, a 2-byte checksum.
        let decoded = try #require(Base32.decode(key.publicKey))
        let publicKey = Array(decoded[1..<33])
        #expect(Ed25519.isValidSignature(signature, of: message, publicKey: publicKey))

        var tampered = signature
        tampered[5] ^= 1
        #expect(!Ed25519.isValidSignature(tampered, of: message, publicKey: publicKey))
        #expect(!Ed25519.isValidSignature(signature, of: message + [0], publicKey: publicKey))
        let other = try #require(Base32.decode(NKeyPair.generate(.user).publicKey))
        #expect(!Ed25519.isValidSignature(signature, of: message, publicKey: Array(other[1..<33])))
        #expect(!Ed25519.isValidSignature(Array(signature.prefix(63)), of: message, publicKey: publicKey))
    }

    @Test func keysOfTheWrongLengthAreRefused() {
        #expect(Ed25519.publicKey(of: [UInt8](repeating: 1, count: 31)[...]) == nil)
        #expect(Ed25519.publicKey(of: [UInt8](repeating: 1, count: 33)[...]) == nil)
        #expect(Ed25519.sign([1, 2, 3], with: [][...]) == nil)
        #expect(!Ed25519.isValidSignature([UInt8](repeating: 0, count: 64), of: [], publicKey: [1, 2, 3]))
    }

    @Test func wipingZeroesTheBytes() {
        var secret: [UInt8] = Array("SUAM-not-a-real-seed".utf8)
        SecretBytes.wipe(&secret)
        #expect(secret == [UInt8](repeating: 0, count: 20))
        var empty: [CChar] = []
        SecretBytes.wipe(&empty)
        #expect(empty.isEmpty)
    }
}

private func hex(_ text: String) -> [UInt8] {
    let digits = Array(text.utf8).map { $0 <= UInt8(ascii: "9") ? $0 - UInt8(ascii: "0") : $0 - UInt8(ascii: "a") + 10 }
    return stride(from: 0, to: digits.count, by: 2).map { digits[$0] << 4 | digits[$0 + 1] }
}

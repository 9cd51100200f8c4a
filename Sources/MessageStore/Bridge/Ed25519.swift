import CLibCrypto

/// Ed25519 (RFC 8032) from OpenSSL's libcrypto, which cnats links too: the public key of a
/// private key (the 32 bytes inside an NKey seed), signatures, and their check. Package-wide:
/// the test helpers make keys and sign JWTs with it.
///
/// A private key goes to libcrypto for one call only; libcrypto clears its own copy when it
/// frees the key. The caller's bytes stay the caller's to wipe (``SecretBytes/wipe(_:)``).
package enum Ed25519 {
    /// The length of a private key, and of a public key.
    package static let keyLength = 32
    /// The length of a signature.
    package static let signatureLength = 64

    /// The public key of `privateKey`, or nil when it is not 32 bytes (or libcrypto fails).
    package static func publicKey(of privateKey: ArraySlice<UInt8>) -> [UInt8]? {
        withPrivateKey(privateKey) { key in
            var publicKey = [UInt8](repeating: 0, count: keyLength)
            var length = keyLength
            let status = publicKey.withUnsafeMutableBufferPointer {
                EVP_PKEY_get_raw_public_key(key, $0.baseAddress, &length)
            }
            return status == 1 && length == keyLength ? publicKey : nil
        }
    }

    /// The signature of `message` with `privateKey`, or nil when the key is not 32 bytes (or
    /// libcrypto fails).
    package static func sign(_ message: [UInt8], with privateKey: ArraySlice<UInt8>) -> [UInt8]? {
        withPrivateKey(privateKey) { key in
            guard let context = EVP_MD_CTX_new() else { return nil }
            defer { EVP_MD_CTX_free(context) }
            // Ed25519 hashes the message itself: no digest is named, and it signs in one call.
            guard EVP_DigestSignInit(context, nil, nil, nil, key) == 1 else { return nil }
            var signature = [UInt8](repeating: 0, count: signatureLength)
            var length = signatureLength
            let status = signature.withUnsafeMutableBufferPointer { output in
                withBytes(message) { EVP_DigestSign(context, output.baseAddress, &length, $0, message.count) }
            }
            return status == 1 && length == signatureLength ? signature : nil
        }
    }

    /// Whether `signature` is the signature of `message` by the private key of `publicKey`.
    package static func isValidSignature(_ signature: [UInt8], of message: [UInt8], publicKey: [UInt8]) -> Bool {
        guard publicKey.count == keyLength, signature.count == signatureLength,
            let key = publicKey.withUnsafeBufferPointer({
                EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nil, $0.baseAddress, keyLength)
            })
        else { return false }
        defer { EVP_PKEY_free(key) }
        guard let context = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(context) }
        guard EVP_DigestVerifyInit(context, nil, nil, nil, key) == 1 else { return false }
        let status = signature.withUnsafeBufferPointer { signature in
            withBytes(message) { EVP_DigestVerify(context, signature.baseAddress, signatureLength, $0, message.count) }
        }
        return status == 1
    }

    /// Calls `body` with libcrypto's key made from `privateKey`, freed (and cleared) afterwards.
    private static func withPrivateKey<Result>(
        _ privateKey: ArraySlice<UInt8>,
        _ body: (OpaquePointer) -> Result?
    ) -> Result? {
        guard privateKey.count == keyLength,
            let key = privateKey.withUnsafeBufferPointer({
                EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nil, $0.baseAddress, keyLength)
            })
        else { return nil }
        defer { EVP_PKEY_free(key) }
        return body(key)
    }

    /// Calls `body` with the address of `bytes`, never nil (an empty message is signed too).
    private static func withBytes<Result>(_ bytes: [UInt8], _ body: (UnsafePointer<UInt8>) -> Result) -> Result {
        guard !bytes.isEmpty else {
            var none: UInt8 = 0
            return body(&none)
        }
        return bytes.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}

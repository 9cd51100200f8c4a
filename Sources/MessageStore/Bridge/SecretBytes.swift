import CLibCrypto

/// Bytes that held a secret (a seed, a file holding one) are overwritten before they are freed.
enum SecretBytes {
    /// Zeroes `bytes` with libcrypto's `OPENSSL_cleanse`, which the optimiser cannot drop as a
    /// store to memory about to be freed.
    static func wipe<Element: FixedWidthInteger>(_ bytes: inout [Element]) {
        bytes.withUnsafeMutableBytes { buffer in
            guard let base = buffer.baseAddress else { return }
            OPENSSL_cleanse(base, buffer.count)
        }
    }
}

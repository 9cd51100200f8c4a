import CNATS
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Signs the server's nonce for NKey and JWT (credentials file) authentication, and notices
/// the signatures cnats would drop.
///
/// cnats 3.4 encodes the signature for its CONNECT with a function that takes a binary
/// signature whose first byte is zero for an empty string: it sends no signature, and the
/// server refuses a valid user ("Authorization Violation"). A signature starts with zero once
/// in 256 connections (the nonce is random). Signing here, rather than letting cnats sign from
/// the file itself, lets the connect see that this happened and simply connect again (a new
/// connection gets a new nonce). Seeds in files are read at every signature, as cnats does, so
/// a rotated file is picked up by the next reconnect; the bytes read are wiped after use.
///
/// Kept alive by every connection that may still call it (each connection's
/// ``ConnectionEvents``, released by its closed callback).
final class ConnectionSigner: Sendable {
    enum Source: Sendable {
        /// A seed held in memory.
        case seed(String)
        /// A file holding a seed.
        case seedFile(String)
        /// A credentials file: a user JWT and its seed.
        case credentialsFile(String)
    }

    let source: Source
    /// Whether a signature made since the last ``takeDroppedSignature()`` starts with a zero byte.
    private let droppedSignature = Atomic<Bool>(false)

    init(_ source: Source) {
        self.source = source
    }

    /// Whether cnats dropped a signature since the last call (see the type's documentation);
    /// clears the mark.
    func takeDroppedSignature() -> Bool {
        droppedSignature.exchange(false, ordering: .acquiringAndReleasing)
    }

    /// Signs `nonce` into a signature cnats frees; on failure sets `errorText` (malloc'd, no secret).
    func sign(
        _ nonce: UnsafePointer<CChar>,
        into signature: UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>?,
        length: UnsafeMutablePointer<Int32>?,
        errorText: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
    ) -> natsStatus {
        let status: natsStatus
        switch source {
        case .seed(let seed):
            status = nats_Sign(seed, nonce, signature, length)
        case .seedFile(let path):
            status = Self.withFileContents(path, errorText: errorText) { contents in
                Self.withSeed(in: contents, isCredentials: false) { seed in nats_Sign(seed, nonce, signature, length) }
            }
        case .credentialsFile(let path):
            status = Self.withFileContents(path, errorText: errorText) { contents in
                Self.withSeed(in: contents, isCredentials: true) { seed in nats_Sign(seed, nonce, signature, length) }
            }
        }
        if status == NATS_OK, let bytes = signature?.pointee, let length, length.pointee > 0, bytes[0] == 0 {
            droppedSignature.store(true, ordering: .releasing)
        }
        if status != NATS_OK, let errorText, errorText.pointee == nil {
            errorText.pointee = strdup("signing the server's nonce failed: the seed cannot be used")
        }
        return status
    }

    /// The user JWT of a credentials file, malloc'd for cnats.
    func userJWT(
        into jwt: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
        errorText: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
    ) -> natsStatus {
        guard case .credentialsFile(let path) = source else { return NATS_ILLEGAL_STATE }
        return Self.withFileContents(path, errorText: errorText) { contents in
            guard let range = CredentialsFile.item(0, in: contents) else {
                errorText?.pointee = strdup("the credentials file \(path) holds no user JWT")
                return NATS_ERR
            }
            let copy = malloc(range.count + 1)!.assumingMemoryBound(to: CChar.self)
            for (offset, index) in range.enumerated() { copy[offset] = CChar(bitPattern: contents[index]) }
            copy[range.count] = 0
            jwt?.pointee = copy
            return NATS_OK
        }
    }

    /// Calls `body` with the NUL-terminated seed in `contents` (the whole file for a seed file,
    /// the second item of a credentials file), in a buffer wiped afterwards.
    private static func withSeed(
        in contents: [UInt8],
        isCredentials: Bool,
        _ body: (UnsafePointer<CChar>) -> natsStatus
    ) -> natsStatus {
        let range: Range<Int>
        if isCredentials {
            guard let item = CredentialsFile.item(1, in: contents) else { return NATS_ERR }
            range = item
        } else {
            guard let line = CredentialsFile.seedLine(in: contents) else { return NATS_ERR }
            range = line
        }
        var seed = [CChar](repeating: 0, count: range.count + 1)
        for (offset, index) in range.enumerated() { seed[offset] = CChar(bitPattern: contents[index]) }
        defer { SecretBytes.wipe(&seed) }
        return seed.withUnsafeBufferPointer { body($0.baseAddress!) }
    }

    /// Reads `path` and calls `body` with its bytes, wiped afterwards.
    private static func withFileContents(
        _ path: String,
        errorText: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
        _ body: ([UInt8]) -> natsStatus
    ) -> natsStatus {
        var contents: [UInt8]
        do {
            contents = try ConnectionOptions.readBytes(path, what: "file")
        } catch {
            errorText?.pointee = strdup(error.message)
            return NATS_ERR
        }
        defer { SecretBytes.wipe(&contents) }
        return body(contents)
    }
}

/// The parts of a NATS credentials file (`nsc` writes them): a user JWT and the user's seed,
/// each between a `-----BEGIN …-----` and a `------END …------` line.
enum CredentialsFile {
    /// The byte range of item `index` (0: the JWT, 1: the seed), or nil.
    static func item(_ index: Int, in contents: [UInt8]) -> Range<Int>? {
        let lines = self.lines(contents)
        var found = 0
        var position = 0
        while position + 2 < lines.count {
            if isDelimiter(lines[position], in: contents), isDelimiter(lines[position + 2], in: contents),
                !lines[position + 1].isEmpty
            {
                if found == index { return lines[position + 1] }
                found += 1
                position += 3
            } else {
                position += 1
            }
        }
        return nil
    }

    /// The seed in a seed file: its first line that starts with `S` (nsc writes the seed alone).
    static func seedLine(in contents: [UInt8]) -> Range<Int>? {
        lines(contents).first { contents[$0.lowerBound] == UInt8(ascii: "S") }
    }

    /// `range` of `contents` without white space around it.
    static func trimmed(_ contents: [UInt8], in range: Range<Int>) -> Range<Int> {
        var lower = range.lowerBound
        var upper = range.upperBound
        while lower < upper, isSpace(contents[lower]) { lower += 1 }
        while upper > lower, isSpace(contents[upper - 1]) { upper -= 1 }
        return lower..<upper
    }

    /// The non-empty lines, trimmed.
    private static func lines(_ contents: [UInt8]) -> [Range<Int>] {
        var lines: [Range<Int>] = []
        var start = 0
        for index in 0...contents.count where index == contents.count || contents[index] == UInt8(ascii: "\n") {
            let line = trimmed(contents, in: start..<index)
            if !line.isEmpty { lines.append(line) }
            start = index + 1
        }
        return lines
    }

    /// A line that starts and ends with at least three dashes.
    private static func isDelimiter(_ line: Range<Int>, in contents: [UInt8]) -> Bool {
        let dash = UInt8(ascii: "-")
        guard line.count >= 6 else { return false }
        return contents[line.lowerBound..<line.lowerBound + 3].allSatisfy { $0 == dash }
            && contents[line.upperBound - 3..<line.upperBound].allSatisfy { $0 == dash }
    }

    private static func isSpace(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\r")
            || byte == UInt8(ascii: "\n")
    }
}

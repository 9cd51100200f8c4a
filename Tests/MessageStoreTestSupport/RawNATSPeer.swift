import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A hostile peer that speaks the NATS protocol by hand over a socket, so a test can store what
/// no well-behaved client would send: malformed header blocks, subjects at the server's limits.
package enum RawNATSPeer {
    package struct Failure: Error, CustomStringConvertible {
        package var description: String

        package init(description: String) {
            self.description = description
        }
    }

    /// Connects to `port` on loopback, sends `HPUB subject <header block> body` without a reply
    /// subject (a JetStream stream stores it all the same), and waits for the server's PONG, so
    /// the server has read the message when this returns (a stream may store it a moment later:
    /// nats-server 2.10+ hands it to the stream through a queue).
    package static func publish(port: Int, subject: String, headerBlock: String, body: [UInt8]) async throws {
        try await Task.detached {
            try send(port: port, subject: subject, headerBlock: Array(headerBlock.utf8), body: body)
        }.value
    }

    private static func send(port: Int, subject: String, headerBlock: [UInt8], body: [UInt8]) throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw Failure(description: "socket() failed") }
        defer { close(descriptor) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
        guard connected else { throw Failure(description: "connect() failed: \(errno)") }
        _ = try readLine(descriptor)  // INFO
        var out = Array(#"CONNECT {"verbose":false,"pedantic":false,"headers":true,"protocol":1}"#.utf8) + [13, 10]
        out += Array("HPUB \(subject) \(headerBlock.count) \(headerBlock.count + body.count)\r\n".utf8)
        out += headerBlock + body + [13, 10]
        out += Array("PING\r\n".utf8)
        var sent = 0
        while sent < out.count {
            let written = out[sent...].withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            guard written > 0 else { throw Failure(description: "write() failed: \(errno)") }
            sent += written
        }
        while true {
            let line = try readLine(descriptor)
            if line.hasPrefix("PONG") { return }
            if line.hasPrefix("-ERR") { throw Failure(description: "the server refused: \(line)") }
        }
    }

    private static func readLine(_ descriptor: Int32) throws -> String {
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while true {
            guard read(descriptor, &byte, 1) == 1 else {
                throw Failure(
                    description: "the server closed the connection after \(String(decoding: line, as: UTF8.self))"
                )
            }
            if byte == 10 { return String(decoding: line, as: UTF8.self) }
            if byte != 13 { line.append(byte) }
        }
    }
}

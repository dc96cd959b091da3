import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A WebSocket handshake over a plain socket that reads *every* byte the server sends until it
/// closes: the 101 response, then each frame. For the refusals a server sends right after the
/// upgrade (bad token, wrong server, server full): a server's first frame often arrives in the
/// same TCP segment as the 101, and client stacks that drop bytes trailing the upgrade response
/// lose it (swift-nio#741-style; it made the Hummingbird-client-based checks flaky under load).
enum RawWebSocketProbe {
    struct Answer: Sendable {
        var status: Int
        var texts: [String]
        var closeCode: Int?

        var firstJSON: [String: Any]? {
            texts.first.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        }
    }

    static func open(port: Int, path: String, timeoutSeconds: Int = 15) async throws -> Answer {
        try await offCooperativeThread { try exchange(port: port, path: path, timeoutSeconds: timeoutSeconds) }
    }

    /// Upgrades, then sends the start of one text frame that declares `declaredLength` bytes:
    /// its header and `sentBytes` of masked payload, the rest never, then reads what the server
    /// answers. A server that closes with the payload unread resets the connection: the send
    /// fails (ECONNRESET or EPIPE), or the read does and the close frame is lost with it.
    static func oversizedFrame(
        port: Int, path: String, declaredLength: Int, sentBytes: Int
    ) async throws -> Answer {
        var frame: [UInt8] =
            [0x81, 0x80 | 127] + (0..<8).map { UInt8(truncatingIfNeeded: declaredLength >> (56 - 8 * $0)) }
        frame += [1, 2, 3, 4] + [UInt8](repeating: UInt8(ascii: "x") ^ 1, count: sentBytes)
        let start = frame
        return try await offCooperativeThread {
            try exchange(port: port, path: path, timeoutSeconds: 15, afterUpgrade: start)
        }
    }

    private static func exchange(
        port: Int, path: String, timeoutSeconds: Int, afterUpgrade: [UInt8]? = nil
    ) throws -> Answer {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket(): errno \(errno)") }
        defer { close(fd) }
        var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw TestFailure("connect to \(port): errno \(errno)") }
        let request =
            "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        try writeAll(fd, Array(request.utf8))

        var bytes: [UInt8] = []
        var answer = Answer(status: 0, texts: [], closeCode: nil)
        var headEnd: Int?
        var offset = 0
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 { break }  // EOF, reset or timeout: report what arrived
            bytes += buffer[0..<n]
            if headEnd == nil, let end = find(Array("\r\n\r\n".utf8), in: bytes) {
                headEnd = end + 4
                offset = end + 4
                let statusLine = String(decoding: bytes[0..<end], as: UTF8.self).split(separator: "\r\n").first ?? ""
                answer.status = Int(statusLine.split(separator: " ").dropFirst().first ?? "") ?? 0
                guard answer.status == 101 else { return answer }
                if let bytes = afterUpgrade { try writeAll(fd, bytes) }
            }
            guard headEnd != nil else { continue }
            // Frames from the server are unmasked: FIN/opcode, length (7, 16 or 64 bits), payload.
            while bytes.count - offset >= 2 {
                let opcode = bytes[offset] & 0x0F
                var length = Int(bytes[offset + 1] & 0x7F)
                var header = 2
                if length == 126 {
                    guard bytes.count - offset >= 4 else { break }
                    length = Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3])
                    header = 4
                } else if length == 127 {
                    guard bytes.count - offset >= 10 else { break }
                    length = (0..<8).reduce(0) { $0 << 8 | Int(bytes[offset + 2 + $1]) }
                    header = 10
                }
                guard bytes.count - offset >= header + length else { break }
                let payload = Array(bytes[(offset + header)..<(offset + header + length)])
                offset += header + length
                switch opcode {
                case 0x1: answer.texts.append(String(decoding: payload, as: UTF8.self))
                case 0x8:
                    answer.closeCode = payload.count >= 2 ? Int(payload[0]) << 8 | Int(payload[1]) : 1005
                    // Answer the close (masked, as a client must), then stop.
                    try? writeAll(
                        fd, [0x88, 0x82, 1, 2, 3, 4] + payload.prefix(2).enumerated().map { $1 ^ [1, 2, 3, 4][$0] })
                    return answer
                default: break
                }
            }
        }
        return answer
    }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            // MSG_NOSIGNAL: a reset connection answers EPIPE instead of killing the test process.
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw TestFailure("write: errno \(errno)") }
            sent += n
        }
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for i in 0...(haystack.count - needle.count) where haystack[i..<(i + needle.count)].elementsEqual(needle) {
            return i
        }
        return nil
    }
}

import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A blocking HTTP/1.1 GET to a loopback operations endpoint (`/ready` of a chat server or a
/// node), for the CLI's waits. Deliberately tiny: one request, `Connection: close`, read to EOF,
/// bounded by a timeout — no HTTP client library for a status code and a small JSON body.
package enum HTTPProbe {
    package struct Answer: Sendable {
        package var status: Int
        package var body: Data
    }

    /// GET `url` ("http://host:port/path"); nil when nothing answers within `timeout` seconds.
    package static func get(_ url: String, timeout: Double = 2) -> Answer? {
        guard let parsed = URL(string: url), let host = parsed.host, let port = parsed.port else { return nil }
        let path = parsed.path.isEmpty ? "/" : parsed.path
        #if os(Linux)
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #else
            let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var tv = timeval()
        tv.tv_sec = .init(Int(timeout))
        tv.tv_usec = .init(Int((timeout - Double(Int(timeout))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr(host == "localhost" ? "127.0.0.1" : host)
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
        guard connected else { return nil }
        let request = "GET \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nConnection: close\r\n\r\n"
        let sent = request.utf8CString.withUnsafeBufferPointer { send(fd, $0.baseAddress, $0.count - 1, 0) }
        guard sent > 0 else { return nil }
        var response = Data()
        var buffer = [UInt8](repeating: 0, count: 16384)
        while response.count < 4 << 20 {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { break }
            response.append(contentsOf: buffer[0..<n])
        }
        guard let split = response.range(of: Data("\r\n\r\n".utf8)),
            let head = String(data: response[..<split.lowerBound], encoding: .utf8)
        else { return nil }
        let statusLine = head.split(separator: "\r\n").first ?? ""
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, let status = Int(parts[1]) else { return nil }
        return Answer(status: status, body: Data(response[split.upperBound...]))
    }
}

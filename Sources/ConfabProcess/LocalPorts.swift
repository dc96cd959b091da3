import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Ports on this machine for servers a command is about to start.
package enum LocalPorts {
    /// A TCP port on `host` that nobody listens on right now (bind to port 0, read it, close).
    /// Another process may take it before the server binds it; the server then fails with a clear
    /// "address in use" in its log.
    package static func free(host: String = "127.0.0.1") throws(RingCommandError) -> Int {
        try probe(host: host, port: 0)
    }

    /// Whether `port` on `host` can be bound now.
    package static func isFree(_ port: Int, host: String = "127.0.0.1") -> Bool {
        (try? probe(host: host, port: port)) != nil
    }

    private static func probe(host: String, port: Int) throws(RingCommandError) -> Int {
        #if os(Linux)
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #else
            let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw RingCommandError(.io, "socket(): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr(host)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard bound else {
            throw RingCommandError(.io, "cannot bind \(host):\(port): \(String(cString: strerror(errno)))")
        }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}

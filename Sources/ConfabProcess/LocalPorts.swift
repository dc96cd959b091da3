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
    /// "address in use" in its log (`confab ring start` then moves a new ring's node to fresh ports).
    package static func free(host: String = "127.0.0.1") throws(RingCommandError) -> Int {
        try probe(host: host, port: 0)
    }

    /// Whether `port` on `host` can be bound now.
    package static func isFree(_ port: Int, host: String = "127.0.0.1") -> Bool {
        (try? probe(host: host, port: port)) != nil
    }

    /// Binds and listens on `port` and keeps it until the returned descriptor is closed: how a
    /// test plays "another process took the port first".
    package static func hold(_ port: Int, host: String = "127.0.0.1") throws(RingCommandError) -> Int32 {
        let fd = try probe(host: host, port: port, keep: true).fd
        listen(fd, 1)
        return fd
    }

    private static func probe(host: String, port: Int) throws(RingCommandError) -> Int {
        try probe(host: host, port: port, keep: false).port
    }

    /// Binds `host:port`; returns the bound port, and the descriptor when `keep` (else closed).
    private static func probe(host: String, port: Int, keep: Bool) throws(RingCommandError) -> (port: Int, fd: Int32) {
        #if os(Linux)
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #else
            let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw RingCommandError(.io, "socket(): \(String(cString: strerror(errno)))") }
        var kept = false
        defer { if !kept { close(fd) } }
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
        kept = keep
        return (Int(UInt16(bigEndian: addr.sin_port)), keep ? fd : -1)
    }
}

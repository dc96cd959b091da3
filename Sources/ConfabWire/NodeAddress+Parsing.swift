import ConfabRing
import Foundation

extension NodeAddress {
    /// The default port of `confab node`.
    package static let defaultPort = 7400

    /// Parses "host:port", "host" (default port), "[::1]:port" or ":port" (127.0.0.1); nil when the
    /// port is not a number in 1...65535 (0 is accepted: "any free port", for listening).
    package init?(hostPort text: String, defaultPort: Int = NodeAddress.defaultPort) {
        var host = Substring(text.trimmingCharacters(in: .whitespaces))
        var port = defaultPort
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return nil }
            let rest = host[host.index(after: close)...]
            host = host[host.index(after: host.startIndex)..<close]
            if !rest.isEmpty {
                guard rest.hasPrefix(":"), let p = Int(rest.dropFirst()) else { return nil }
                port = p
            }
        } else if let colon = host.lastIndex(of: ":"), host.firstIndex(of: ":") == colon {
            guard let p = Int(host[host.index(after: colon)...]) else { return nil }
            port = p
            host = host[..<colon]
        }
        guard (0...65535).contains(port) else { return nil }
        self.init(host: host.isEmpty ? "127.0.0.1" : String(host), port: port)
    }
}

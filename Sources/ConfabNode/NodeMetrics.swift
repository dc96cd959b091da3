import ConfabWire
import Metrics

/// The node's swift-metrics instruments. Names follow Prometheus conventions; with no metrics
/// backend bootstrapped they cost next to nothing.
///
/// - `confab_node_requests_total{type}`: requests received, by message type.
/// - `confab_node_errors_total{type,code}`: Error frames sent, by request type and error code.
/// - `confab_node_request_duration_seconds{type}`: time from a decoded frame to its response.
/// - `confab_node_connections_total`, `confab_node_connections_closed_total`.
struct NodeMetrics: Sendable {
    private let requests: [UInt8: Counter]
    private let latencies: [UInt8: Timer]
    let connectionsOpened = Counter(label: "confab_node_connections_total")
    let connectionsClosed = Counter(label: "confab_node_connections_closed_total")

    init() {
        var requests: [UInt8: Counter] = [:]
        var latencies: [UInt8: Timer] = [:]
        for type in MessageType.implemented {
            let name = Self.label(type)
            requests[type.rawValue] = Counter(label: "confab_node_requests_total", dimensions: [("type", name)])
            latencies[type.rawValue] = Timer(
                label: "confab_node_request_duration_seconds", dimensions: [("type", name)],
                preferredDisplayUnit: .milliseconds)
        }
        self.requests = requests
        self.latencies = latencies
    }

    private static func label(_ type: MessageType) -> String { type.name?.lowercased() ?? "unknown" }

    func request(_ type: MessageType) {
        (requests[type.rawValue] ?? Counter(label: "confab_node_requests_total", dimensions: [("type", "unknown")]))
            .increment()
    }

    func error(_ type: MessageType, _ code: WireError.Code) {
        Counter(
            label: "confab_node_errors_total",
            dimensions: [("type", Self.label(type)), ("code", code.description.replacingSpaces())]
        ).increment()
    }

    func latency(_ type: MessageType, _ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        let nanos = seconds * 1_000_000_000 + attoseconds / 1_000_000_000
        latencies[type.rawValue]?.recordNanoseconds(nanos)
    }
}

extension String {
    fileprivate func replacingSpaces() -> String { String(map { $0 == " " ? "_" : $0 }) }
}

import NIOHTTP1

extension Node {
    /// The node's answer on its operations port (`OperationsHTTPServer`). `exposition` renders
    /// the process's metrics registry; the executable passes the Prometheus one it bootstrapped,
    /// so this module stays free of a metrics backend (in-process tests run without one).
    public func operationsResponse(path: String, exposition: @Sendable () -> [UInt8]) async
        -> OperationsHTTPServer.Response
    {
        switch path {
        case "/metrics":
            return .init(status: .ok, contentType: OperationsHTTPServer.prometheusContentType, body: exposition())
        case "/health":
            return .json(.ok, ["status": "up", "node_id": nodeID ?? NSNullText.value])
        case "/ready":
            let r = await readiness()
            return .json(
                r.ready ? .ok : .serviceUnavailable,
                [
                    "ready": r.ready, "reasons": r.reasons, "node_id": nodeID ?? NSNullText.value,
                    "live_nodes": r.liveNodes, "down_nodes": r.downNodes,
                ])
        default:
            return .json(.notFound, ["error": "not found; this port serves /metrics, /health and /ready"])
        }
    }
}

/// The id shown before the node has one (it is read from its data directory at startup).
private enum NSNullText { static let value = "" }

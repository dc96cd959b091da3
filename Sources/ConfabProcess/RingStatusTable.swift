import ConfabWire
import Foundation

/// Renders a `RingStatus` the way `nodetool status` does, plus which recorded node processes
/// run on this machine. Pure formatting.
package enum RingStatusTable {
    /// nodetool's two letters: U/D (failure detector) and N/J/L/M (membership state).
    package static func code(_ node: RingNodeStatus) -> String {
        let state: String
        switch node.state {
        case "normal": state = "N"
        case "joining": state = "J"
        case "leaving": state = "L"
        case "moving": state = "M"
        case "left": state = "X"
        default: state = "?"
        }
        return (node.isUp ? "U" : "D") + state
    }

    /// Bytes in nodetool's units: "512 bytes", "1.21 KiB", "3.4 MiB"…
    package static func load(_ bytes: UInt64) -> String {
        if bytes < 1024 { return "\(bytes) bytes" }
        var value = Double(bytes)
        for unit in ["KiB", "MiB", "GiB", "TiB"] {
            value /= 1024
            if value < 1024 || unit == "TiB" { return String(format: "%.2f", value) + " " + unit }
        }
        return "\(bytes) bytes"
    }

    package static func owns(_ fraction: Double) -> String { String(format: "%.1f%%", fraction * 100) }

    /// The table. `answeredBy` is the node that reported `status`.
    package static func render(_ status: RingStatus, answeredBy: String) -> String {
        var lines: [String] = []
        let name = status.clusterName.isEmpty ? "confab" : status.clusterName
        lines.append("Cluster: \(name)   Replication factor: \(status.replicationFactor)   (as seen by \(answeredBy))")
        if !status.keyspaces.isEmpty {
            lines.append(
                "Keyspaces: "
                    + status.keyspaces.map { "\($0.name) (RF \($0.replicationFactor))" }.joined(separator: ", "))
        }
        lines.append("Status=Up/Down")
        lines.append("|/ State=Normal/Leaving/Joining/Moving")
        var rows: [[String]] = [["--", "Address", "Load", "Tokens", "Owns (effective)", "Host ID"]]
        for n in status.nodes {
            let address =
                n.host.isEmpty ? "?" : (n.host.contains(":") ? "[\(n.host)]:\(n.port)" : "\(n.host):\(n.port)")
            rows.append([code(n), address, load(n.loadBytes), String(n.tokens), owns(n.ownership), n.id])
        }
        lines += columns(rows)
        for n in status.nodes where n.quarantinedTables > 0 {
            lines.append("")
            lines.append(
                """
                Warning: \(n.host):\(n.port) quarantined \(n.quarantinedTables) corrupt SSTable\(n.quarantinedTables == 1 ? "" : "s"); \
                its rows there are missing until `confab repair` restores them from the other replicas
                """)
        }
        return lines.joined(separator: "\n")
    }

    /// "Processes (ring.json): node 1 127.0.0.1:7400 pid 123 running…"
    package static func render(processes state: RingFile, alive: (RingFile.Node) -> Bool, directory: String) -> String {
        var rows: [[String]] = [["Node", "Address", "PID", "Process", "Metrics", "Log"]]
        for node in state.nodes {
            let running = alive(node)
            let pid = node.pid.map(String.init) ?? "-"
            let process = running ? "running" : "not running (\(node.state == "running" ? "exited" : node.state))"
            rows.append([String(node.index), node.addressText, pid, process, node.metricsURL ?? "-", node.log])
        }
        return (["Local node processes (\(RingFile.path(in: directory))):"] + columns(rows)).joined(separator: "\n")
    }

    /// Left-aligned columns two spaces apart; the last column is not padded.
    package static func columns(_ rows: [[String]]) -> [String] {
        guard let width = rows.map(\.count).max() else { return [] }
        var widths = [Int](repeating: 0, count: width)
        for r in rows { for (i, cell) in r.enumerated() { widths[i] = max(widths[i], cell.count) } }
        return rows.map { r in
            r.enumerated().map { i, cell in
                i == r.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
    }
}

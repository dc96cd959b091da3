import Foundation

/// Grouped bars, one group per metric, each system's value divided by RocksDB's (or by the first
/// system's when RocksDB is not in the run), on a log scale centred on 1.0. Hand-written SVG.
struct SVGChart {
    let systems: [SystemReport]
    let title: String

    static let metrics: [(label: String, key: String, higherIsBetter: Bool)] = [
        ("ingest msg/s", "ingest_per_s", true),
        ("durable msg/s", "durable_ingest_per_s", true),
        ("durable ack p99", "durable_ack_p99_us", false),
        ("latest50 p99", "latest50_p99_us", false),
        ("deep50 p99", "deep50_p99_us", false),
        ("bytes/message", "bytes_per_message", false),
        ("write amp.", "write_amplification", false),
        ("recovery ms", "recovery_ms", false),
    ]
    static let colors = ["confab": "#d9480f", "rocksdb": "#1864ab", "leveldb": "#2b8a3e", "sqlite": "#5f3dc4"]

    func render() -> String {
        let baseline = systems.first { $0.name == "rocksdb" } ?? systems.first
        let baseName = baseline?.name ?? "-"
        let groupWidth = max(120.0, 40.0 + 26.0 * Double(systems.count))
        let left = 70.0
        let top = 70.0
        let plotHeight = 360.0
        let width = left + groupWidth * Double(SVGChart.metrics.count) + 30
        let height = top + plotHeight + 110
        // log10 scale from 1/100 to 100.
        let decades = 2.0
        func y(_ ratio: Double) -> Double {
            let l = min(decades, max(-decades, log10(ratio)))
            return top + plotHeight / 2 - l / decades * (plotHeight / 2)
        }
        var s = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" font-family="Helvetica, Arial, sans-serif" font-size="11">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(left)" y="24" font-size="15" font-weight="bold">\(esc(title))</text>
            <text x="\(left)" y="42" fill="#555">Each value divided by \(esc(baseName))'s (log scale); labels show raw values. ▲ higher is better, ▼ lower is better.</text>

            """
        for r in [0.01, 0.1, 1, 10, 100] {
            let yy = y(r)
            s +=
                "<line x1=\"\(left)\" x2=\"\(width - 20)\" y1=\"\(yy)\" y2=\"\(yy)\" stroke=\"\(r == 1 ? "#333" : "#ddd")\"/>\n"
            s +=
                "<text x=\"\(left - 8)\" y=\"\(yy + 4)\" text-anchor=\"end\" fill=\"#555\">\(r < 1 ? String(r) : String(Int(r)))×</text>\n"
        }
        for (gi, m) in SVGChart.metrics.enumerated() {
            let gx = left + Double(gi) * groupWidth + 20
            let base = baseline?.metrics[m.key]
            for (si, sys) in systems.enumerated() {
                guard let v = sys.metrics[m.key], let base, base > 0, v > 0 else { continue }
                let ratio = v / base
                let x = gx + Double(si) * 26
                let y1 = y(1)
                let y2 = y(ratio)
                let color = SVGChart.colors[sys.name] ?? "#868e96"
                // A bar at about 1.0 (the baseline system) is drawn 3 px tall across the axis.
                let barTop = abs(y2 - y1) < 3 ? y1 - 1.5 : min(y1, y2)
                s +=
                    "<rect x=\"\(x)\" y=\"\(barTop)\" width=\"22\" height=\"\(max(3, abs(y2 - y1)))\" fill=\"\(color)\"><title>\(sys.name) \(m.label): \(fmt(v)) (\(String(format: "%.2f", ratio))×)</title></rect>\n"
                // Value labels run vertically: above an upward bar, below a downward one, inside
                // the bar when it reaches the bottom of the plot.
                let nearBottom = y2 > top + plotHeight - 45
                let (ly, anchor, fill): (Double, String, String) =
                    ratio >= 1
                    ? (y2 - 4, "start", "#222") : nearBottom ? (y2 - 4, "start", "white") : (y2 + 4, "end", "#222")
                s +=
                    "<text x=\"\(x + 15)\" y=\"\(ly)\" text-anchor=\"\(anchor)\" fill=\"\(fill)\" font-size=\"9\" transform=\"rotate(-90 \(x + 15) \(ly))\">\(short(v))</text>\n"
            }
            let lx = gx + Double(systems.count) * 13
            s += "<text x=\"\(lx)\" y=\"\(top + plotHeight + 20)\" text-anchor=\"middle\">\(esc(m.label))</text>\n"
            s +=
                "<text x=\"\(lx)\" y=\"\(top + plotHeight + 34)\" text-anchor=\"middle\" fill=\"#555\">\(m.higherIsBetter ? "▲ higher" : "▼ lower") is better</text>\n"
        }
        var lx = left
        for sys in systems {
            s +=
                "<rect x=\"\(lx)\" y=\"\(height - 36)\" width=\"14\" height=\"14\" fill=\"\(SVGChart.colors[sys.name] ?? "#868e96")\"/>\n"
            s += "<text x=\"\(lx + 20)\" y=\"\(height - 25)\" font-size=\"12\">\(esc(sys.name))</text>\n"
            lx += 110
        }
        s += "</svg>\n"
        return s
    }

    private func short(_ v: Double) -> String {
        if v >= 1_000_000 { return String(format: "%.1fM", v / 1_000_000) }
        if v >= 10_000 { return String(format: "%.0fk", v / 1000) }
        return fmt(v)
    }

    private func esc(_ t: String) -> String {
        t.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
    }
}

import Foundation

/// The chat benchmark's chart, hand-written SVG in the style of `SVGChart`: three panels —
/// latency percentiles per send rate (log scale, the 20 ms target dashed), fan-out deliveries per
/// second over time per rate (the 50,000/s target dashed), and idle connections with their memory
/// against the 100,000-connection and 10 KiB targets.
struct ChatChart {
    let report: ChatReport

    static let percentileColors = ["#74c0fc", "#1864ab", "#0b3d6e"]
    static let runColors = ["#d9480f", "#2b8a3e", "#5f3dc4", "#e67700", "#c2255c"]

    func render() -> String {
        let panelW = 360.0
        let panelH = 260.0
        let top = 80.0
        let gap = 70.0
        let left = 70.0
        let width = left + 3 * panelW + 2 * gap + 30
        let height = top + panelH + 110
        var s = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" font-family="Helvetica, Arial, sans-serif" font-size="11">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(left)" y="24" font-size="15" font-weight="bold">Confab chat benchmark (\(report.config.quick ? "quick" : "full"); 3-node RF-3 ring, 2 chat servers, \(ProcessInfo.processInfo.activeProcessorCount) cores)</text>
            <text x="\(left)" y="42" fill="#555">Dashed lines are the issue's targets. Latency is \(esc(report.modeLabel)), open loop from the scheduled send time.</text>

            """
        s += latencyPanel(x: left, y: top, w: panelW, h: panelH)
        s += fanoutPanel(x: left + panelW + gap, y: top, w: panelW, h: panelH)
        s += idlePanel(x: left + 2 * (panelW + gap), y: top, w: panelW, h: panelH)
        s += "</svg>\n"
        return s
    }

    private func latencyPanel(x: Double, y: Double, w: Double, h: Double) -> String {
        var s =
            "<text x=\"\(x)\" y=\"\(y - 12)\" font-size=\"13\" font-weight=\"bold\">1:1 end-to-end latency (ms, log)</text>\n"
        // log10 from 0.1 ms up to the decade above the largest value (at least 1,000 ms).
        let largest = report.latencyRuns.map { $0.latency.p999 / 1000 }.max() ?? 1
        let topDecade = max(3.0, ceil(log10(max(largest, 1))))
        let topMs = pow(10, topDecade)
        func yy(_ ms: Double) -> Double { y + h - (log10(max(0.1, min(topMs, ms))) + 1) / (topDecade + 1) * h }
        for v in stride(from: -1.0, through: topDecade, by: 1).map({ pow(10, $0) }) {
            s += "<line x1=\"\(x)\" x2=\"\(x + w)\" y1=\"\(yy(v))\" y2=\"\(yy(v))\" stroke=\"#ddd\"/>\n"
            s +=
                "<text x=\"\(x - 6)\" y=\"\(yy(v) + 4)\" text-anchor=\"end\" fill=\"#555\">\(v < 1 ? String(v) : String(Int(v)))</text>\n"
        }
        let runs = report.latencyRuns
        let gw = runs.isEmpty ? w : w / Double(runs.count)
        for (i, r) in runs.enumerated() {
            let gx = x + Double(i) * gw + gw / 2 - 45
            for (j, (label, v)) in [("p50", r.latency.p50), ("p99", r.latency.p99), ("p99.9", r.latency.p999)]
                .enumerated()
            {
                let ms = v / 1000
                let bx = gx + Double(j) * 30
                s +=
                    "<rect x=\"\(bx)\" y=\"\(yy(ms))\" width=\"26\" height=\"\(max(1, y + h - yy(ms)))\" fill=\"\(Self.percentileColors[j])\"><title>\(label) \(String(format: "%.2f", ms)) ms</title></rect>\n"
                s +=
                    "<text x=\"\(bx + 13)\" y=\"\(yy(ms) - 4)\" text-anchor=\"middle\" font-size=\"9\">\(short(ms))</text>\n"
            }
            s +=
                "<text x=\"\(gx + 43)\" y=\"\(y + h + 16)\" text-anchor=\"middle\">\(Int(r.ratePerSecond)) msg/s</text>\n"
            if r.unreceived > 0 {
                s +=
                    "<text x=\"\(gx + 43)\" y=\"\(y + h + 30)\" text-anchor=\"middle\" fill=\"#c92a2a\">\(r.unreceived) lost</text>\n"
            }
        }
        // The target over the bars, its label with the legend.
        s +=
            "<line x1=\"\(x)\" x2=\"\(x + w)\" y1=\"\(yy(20))\" y2=\"\(yy(20))\" stroke=\"#c92a2a\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>\n"
        s +=
            "<line x1=\"\(x + 190)\" x2=\"\(x + 214)\" y1=\"\(y + h + 50)\" y2=\"\(y + h + 50)\" stroke=\"#c92a2a\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>\n"
        s += "<text x=\"\(x + 218)\" y=\"\(y + h + 54)\" fill=\"#c92a2a\">p99 target 20 ms</text>\n"
        var lx = x
        for (j, label) in ["p50", "p99", "p99.9"].enumerated() {
            s +=
                "<rect x=\"\(lx)\" y=\"\(y + h + 44)\" width=\"12\" height=\"12\" fill=\"\(Self.percentileColors[j])\"/>\n"
            s += "<text x=\"\(lx + 16)\" y=\"\(y + h + 54)\">\(label)</text>\n"
            lx += 60
        }
        return s
    }

    private func fanoutPanel(x: Double, y: Double, w: Double, h: Double) -> String {
        var s =
            "<text x=\"\(x)\" y=\"\(y - 12)\" font-size=\"13\" font-weight=\"bold\">Fan-out deliveries/s, 100-member groups</text>\n"
        // Per-second rates from the 100 ms bins, smoothed over 500 ms.
        let series: [[Double]] = report.fanoutRuns.map { r in
            stride(from: 0, to: r.bins.count, by: 5).map { i in
                let chunk = r.bins[i..<min(i + 5, r.bins.count)]
                return Double(chunk.reduce(0, +)) / (Double(chunk.count) * 0.1)
            }
        }
        let maxY = max(
            60_000, (series.flatMap { $0 }.max() ?? 0) * 1.1,
            (report.fanoutRuns.map { $0.ratePerSecond * Double($0.expectedPerMessage) }.max() ?? 0) * 1.1)
        let maxT = max(1, Double(series.map(\.count).max() ?? 1) * 0.5)
        func yy(_ v: Double) -> Double { y + h - v / maxY * h }
        func xx(_ t: Double) -> Double { x + t / maxT * w }
        let step = maxY > 200_000 ? 50_000.0 : maxY > 100_000 ? 25_000 : 10_000
        var v = 0.0
        while v <= maxY {
            s += "<line x1=\"\(x)\" x2=\"\(x + w)\" y1=\"\(yy(v))\" y2=\"\(yy(v))\" stroke=\"#eee\"/>\n"
            s += "<text x=\"\(x - 6)\" y=\"\(yy(v) + 4)\" text-anchor=\"end\" fill=\"#555\">\(Int(v / 1000))k</text>\n"
            v += step
        }
        s +=
            "<line x1=\"\(x)\" x2=\"\(x + w)\" y1=\"\(yy(50_000))\" y2=\"\(yy(50_000))\" stroke=\"#c92a2a\" stroke-dasharray=\"6 4\"/>\n"
        s += "<text x=\"\(x + w)\" y=\"\(yy(50_000) - 4)\" text-anchor=\"end\" fill=\"#c92a2a\">target 50k/s</text>\n"
        s +=
            "<line x1=\"\(x)\" x2=\"\(x)\" y1=\"\(y)\" y2=\"\(y + h)\" stroke=\"#333\"/><line x1=\"\(x)\" x2=\"\(x + w)\" y1=\"\(y + h)\" y2=\"\(y + h)\" stroke=\"#333\"/>\n"
        let tickStep = maxT > 20 ? 5.0 : maxT > 8 ? 2 : 1
        for t in stride(from: 0, through: maxT, by: tickStep) {
            s += "<line x1=\"\(xx(t))\" x2=\"\(xx(t))\" y1=\"\(y + h)\" y2=\"\(y + h + 4)\" stroke=\"#333\"/>\n"
            s += "<text x=\"\(xx(t))\" y=\"\(y + h + 14)\" text-anchor=\"middle\" fill=\"#555\">\(Int(t))</text>\n"
        }
        s +=
            "<text x=\"\(x + w / 2)\" y=\"\(y + h + 28)\" text-anchor=\"middle\" fill=\"#555\">seconds since the first send (receipts per 0.5 s, as a rate)</text>\n"
        for (i, points) in series.enumerated() where !points.isEmpty {
            let color = Self.runColors[i % Self.runColors.count]
            let path = points.enumerated().map { k, p in "\(k == 0 ? "M" : "L")\(xx(Double(k) * 0.5 + 0.25)) \(yy(p))" }
                .joined(separator: " ")
            s += "<path d=\"\(path)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"/>\n"
            let r = report.fanoutRuns[i]
            s +=
                "<rect x=\"\(x + Double(i) * 120)\" y=\"\(y + h + 40)\" width=\"12\" height=\"12\" fill=\"\(color)\"/>\n"
            s +=
                "<text x=\"\(x + Double(i) * 120 + 16)\" y=\"\(y + h + 50)\">\(Int(r.ratePerSecond)) msg/s: \(short(r.deliveriesPerSecond))/s</text>\n"
        }
        return s
    }

    private func idlePanel(x: Double, y: Double, w: Double, h: Double) -> String {
        var s =
            "<text x=\"\(x)\" y=\"\(y - 12)\" font-size=\"13\" font-weight=\"bold\">Idle WebSocket connections, one server</text>\n"
        let i = report.idle
        guard !report.config.skipIdle else { return s + "<text x=\"\(x)\" y=\"\(y + 20)\">skipped</text>\n" }
        // Left: connections held vs the 100,000 target. Right: KiB per connection vs 10 KiB.
        let held = Double(i.opened + i.warmupConnections)
        let bars: [(String, Double, Double, String)] = [
            ("connections", held, 100_000, "target 100,000"),
            ("KiB / connection", i.bytesPerConnection.map { $0 / 1024 } ?? 0, 10, "target ≤ 10 KiB"),
        ]
        let bw = w / 2
        for (k, (label, value, target, targetText)) in bars.enumerated() {
            let bx = x + Double(k) * bw + 30
            let top = max(value, target) * 1.15
            func yy(_ v: Double) -> Double { y + h - v / top * h }
            s += "<line x1=\"\(bx - 10)\" x2=\"\(bx + bw - 50)\" y1=\"\(y + h)\" y2=\"\(y + h)\" stroke=\"#333\"/>\n"
            s +=
                "<rect x=\"\(bx + 10)\" y=\"\(yy(value))\" width=\"60\" height=\"\(max(1, y + h - yy(value)))\" fill=\"#d9480f\"/>\n"
            s +=
                "<text x=\"\(bx + 40)\" y=\"\(yy(value) - 5)\" text-anchor=\"middle\">\(k == 0 ? short(value) : String(format: "%.2f", value))</text>\n"
            s +=
                "<line x1=\"\(bx - 10)\" x2=\"\(bx + bw - 50)\" y1=\"\(yy(target))\" y2=\"\(yy(target))\" stroke=\"#c92a2a\" stroke-dasharray=\"6 4\"/>\n"
            s +=
                "<text x=\"\(bx + bw - 50)\" y=\"\(yy(target) - 4)\" text-anchor=\"end\" fill=\"#c92a2a\">\(targetText)</text>\n"
            s += "<text x=\"\(bx + 40)\" y=\"\(y + h + 16)\" text-anchor=\"middle\">\(label)</text>\n"
        }
        let note = i.fdLimitError.map { "Limit here: \($0)" } ?? ""
        s +=
            "<text x=\"\(x)\" y=\"\(y + h + 40)\" fill=\"#555\" font-size=\"10\">\(esc(String(note.prefix(90))))</text>\n"
        if let raised = i.serverRaisedSoftLimit {
            s +=
                "<text x=\"\(x)\" y=\"\(y + h + 54)\" fill=\"#555\" font-size=\"10\">Server raises its soft descriptor limit at startup: \(raised ? "yes" : "no")</text>\n"
        }
        return s
    }

    private func short(_ v: Double) -> String {
        if v >= 1_000_000 { return String(format: "%.1fM", v / 1_000_000) }
        if v >= 10_000 { return String(format: "%.0fk", v / 1000) }
        if v >= 100 { return String(format: "%.0f", v) }
        if v >= 10 { return String(format: "%.1f", v) }
        return String(format: "%.2f", v)
    }

    private func esc(_ t: String) -> String {
        t.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
    }
}

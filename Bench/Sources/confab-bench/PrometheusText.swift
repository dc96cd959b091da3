/// Reads unlabelled samples out of a Prometheus text exposition (what the chat servers' /metrics
/// serve through swift-prometheus): `name value` lines; comments and labelled series are skipped.
enum PrometheusText {
    static func values(_ text: String) -> [String: Double] {
        var out: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") && !line.contains("{") {
            let parts = line.split(separator: " ")
            guard parts.count >= 2, let v = Double(parts[1]) else { continue }
            out[String(parts[0])] = v
        }
        return out
    }

    /// Every sample, labelled ones keyed by the series exactly as exposed (`name{label="v",…}`):
    /// the bench reads series of its own servers, whose label order is fixed.
    static func series(_ text: String) -> [String: Double] {
        var out: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let v = Double(line[line.index(after: space)...]) else {
                continue
            }
            out[String(line[..<space])] = v
        }
        return out
    }
}

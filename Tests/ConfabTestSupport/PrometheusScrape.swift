import Foundation

/// One scrape of a /metrics URL parsed by Python's prometheus_client (tools/prom_scrape.py): the
/// exposition is checked by the reference parser, not by ours.
package struct PrometheusScrape: Sendable {
    package struct Sample: Sendable {
        package var name: String
        package var labels: [String: String]
        package var value: Double
    }

    package let samples: [Sample]
    package let contentType: String

    package init(_ url: String) async throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("tools/prom_scrape.py").path
        let run = try await TestCommand.run("/usr/bin/env", ["python3", script, url])
        guard run.status == 0,
            let object = try JSONSerialization.jsonObject(with: Data(run.out.utf8)) as? [String: Any],
            let list = object["samples"] as? [[String: Any]]
        else {
            throw ProcessTestError("prom_scrape.py \(url) failed (\(run.status)): \(run.err)")
        }
        contentType = object["content_type"] as? String ?? ""
        samples = list.map {
            Sample(
                name: $0["name"] as? String ?? "", labels: $0["labels"] as? [String: String] ?? [:],
                value: ($0["value"] as? NSNumber)?.doubleValue ?? .nan)
        }
    }

    /// The sum of `name`'s samples whose labels include `labels`.
    package func sum(_ name: String, _ labels: [String: String] = [:]) -> Double {
        samples.filter { s in s.name == name && labels.allSatisfy { s.labels[$0.key] == $0.value } }.reduce(0) {
            $0 + $1.value
        }
    }

    package func has(_ name: String) -> Bool { samples.contains { $0.name == name } }
}

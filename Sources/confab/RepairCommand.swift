import ArgumentParser
import ConfabClient
import ConfabRing
import ConfabWire
import Foundation

/// `confab repair`: anti-entropy repair through one running node, as `nodetool repair` on it.
struct RepairCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "repair",
        abstract: "Make replicas agree: compare Merkle trees per token range and stream only the ranges that differ.",
        discussion: """
            The node that receives the request (the first of --node, else the first running node of \
            the ring in --dir) repairs every vnode range it replicates: each replica builds a Merkle \
            tree of its data in the range, every pair of trees is compared, and the differing \
            sub-ranges are streamed both ways, with their timestamps and tombstones (docs/repair.md). \
            Each table is repaired among the replicas of its keyspace (at the keyspace's replication \
            factor). While it runs the command shows progress per table (ranges compared, differing, \
            sub-ranges and rows streamed, percent done): a line rewritten in place on a terminal, a \
            line per table and per 10 % otherwise, a JSON object per update with --json \
            ("event": "progress"; the final report has "event": "report"). When it finishes, the \
            command prints one line per range (in sync, or how many sub-ranges were streamed) and a \
            summary. Every replica must be up: a down replica fails the repair \
            with a message naming it. In a ring with more nodes than the replication factor, run it \
            on each node (--node) to cover every range.
            """)

    @OptionGroup var targets: AdminTargetOptions

    @Option(
        help: ArgumentHelp(
            "Merkle tree depth: 2^depth leaves per range (1...16); more leaves stream less data per difference.",
            valueName: "n"))
    var depth: Int = 10

    @Flag(help: "Print only the summary line, not one line per range.")
    var quiet = false

    @Option(help: ArgumentHelp("Seconds to wait for the repair to finish.", valueName: "seconds"))
    var timeout: Double = 3600

    func validate() throws {
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
        guard (1...MerkleTreeLeaves.maxDepth).contains(depth) else {
            throw ValidationError("--depth must be in 1...\(MerkleTreeLeaves.maxDepth)")
        }
    }

    func run() throws {
        let addresses = try targets.addresses()
        let (depth, timeout) = (UInt8(depth), Duration.milliseconds(Int(self.timeout * 1000)))
        var configuration = ConfabClient.Configuration(nodes: addresses)
        configuration.clientName = "confab-cli"
        configuration.credentials = try targets.credentials()
        let client = ConfabClient(configuration: configuration)
        let json = targets.json
        if !json { print("repairing through \(addresses.first.map { "\($0)" } ?? "?") …") }
        let printer = RepairProgressPrinter(
            mode: json ? .json : RepairProgressPrinter.stdoutIsTerminal ? .terminal : .lines)
        let report: RepairReport
        defer { printer.finish() }
        do {
            report = try runBlocking {
                defer { Task { await client.shutdown() } }
                // Only connection failures move on to the next node: a node that answered with an
                // error (a replica down) would say the same from elsewhere.
                var lastError: (any Error)?
                for address in addresses {
                    do {
                        return try await client.repair(at: address, depth: depth, timeout: timeout) { printer.show($0) }
                    } catch let e as ConfabClientError where e.code == .noNodeReachable {
                        lastError = e
                    }
                }
                throw lastError ?? ValidationError("no node to repair through")
            }
        } catch {
            printer.finish()
            FileHandle.standardError.write(Data("confab repair: \(error)\n".utf8))
            throw ExitCode.failure
        }
        if json {
            let encoder = JSONEncoder()
            encoder.keyEncodingStrategy = .convertToSnakeCase
            encoder.outputFormatting = [.sortedKeys]
            var object = (try JSONSerialization.jsonObject(with: encoder.encode(report)) as? [String: Any]) ?? [:]
            object["event"] = "report"
            object["ranges_out_of_sync"] = report.rangesOutOfSync
            object["subranges_streamed"] = report.subrangesStreamed
            object["rows_streamed"] = Int(clamping: report.rowsStreamed)
            print(
                String(
                    decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
            )
            return
        }
        if !quiet {
            for (i, r) in report.ranges.enumerated() {
                let what =
                    r.subrangesStreamed == 0
                    ? "in sync" : "streamed \(r.subrangesStreamed) sub-range(s), \(r.rowsStreamed) row(s)"
                let table = r.table.isEmpty ? "" : "\(r.keyspace).\(r.table) "
                print(
                    "range \(i + 1)/\(report.ranges.count) \(table)\(r.range) (\(r.replicas) replicas): \(what) in \(Self.duration(r.elapsedMicros))"
                )
            }
        }
        print(
            "repair: \(report.ranges.count) ranges, \(report.rangesOutOfSync) out of sync, "
                + "\(report.subrangesStreamed) sub-ranges streamed (\(report.rowsStreamed) rows), \(Self.duration(report.elapsedMicros))"
        )
    }

    static func duration(_ micros: UInt64) -> String {
        micros >= 1_000_000
            ? String(format: "%.2f s", Double(micros) / 1e6) : String(format: "%.1f ms", Double(micros) / 1000)
    }
}

import ArgumentParser
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// `confab-bench chat`: the chat server under load, against a local 3-node RF-3 ring and two chat
/// servers started with the confab binary. Three measurements in one run: idle WebSocket
/// connections one server holds and their memory, end-to-end 1:1 latency from a send on server A
/// to receipt on server B (open loop), and fan-out deliveries per second into 100-member groups.
struct ChatBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat",
        abstract:
            "Chat server: idle connections and memory, cross-server 1:1 latency (open loop), 100-member group fan-out.",
        discussion: """
            Builds nothing: runs the main package's release binary (`swift build -c release --product confab` \
            in the repository root first). Starts a 3-node RF-3 ring and two `confab chat serve` processes, \
            all stopped at the end. See Bench/README.md.
            """)

    @Option(help: "The confab binary (default: ../.build/release/confab relative to the Bench package).")
    var confab: String?

    @Flag(help: "Short runs (finishes in under 2 minutes once built).")
    var quick = false

    @Option(help: "Write the results as JSON to this file.")
    var json: String?

    @Option(help: "Write the SVG chart here (default: next to --json, with .svg).")
    var svg: String?

    @Option(help: "1:1 pairs (sender on server A, receiver on server B) the latency runs rotate over.")
    var pairs = 125

    @Option(help: "Comma-separated send rates (messages/s) of the latency runs; the target is at 2000.")
    var latencyRates = "200,2000"

    @Option(help: "Seconds of each measured latency run (default 15, quick 3).")
    var latencySeconds: Double?

    @Option(
        help: "Comma-separated send rates (messages/s) into the 100-member groups (default 300,600,900; quick 600).")
    var fanoutRates: String?

    @Option(help: "Seconds of each fan-out run (default 10, quick 3).")
    var fanoutSeconds: Double?

    @Option(help: "Number of 100-member groups (all with the same members) the fan-out sends rotate over.")
    var groups = 10

    @Option(
        help:
            "Idle connections to open on server A (default: as many as its descriptor limit allows, at most 100,000; quick 10,000)."
    )
    var idleConnections: Int?

    @Option(help: "Child processes holding the idle connections (each from its own 127.0.0.x address).")
    var idleChildren = 2

    @Option(help: "auto: cross-server when forwarding works, else same-server; or force cross / same.")
    var mode = "auto"

    @Option(help: "Message text bytes.")
    var bodyBytes = 100

    @Option(
        help: "PBKDF2 rounds the chat servers use for the benchmark's accounts (registration is setup, not measured).")
    var passwordRounds = 1_000

    @Option(
        help:
            "Soft descriptor limit the first server starts with, to check that it raises it to the hard limit (0: do not lower)."
    )
    var serverSoftLimit = 1_024

    @Flag(help: "Skip the idle-connection phase.")
    var skipIdle = false

    @Option(
        help: """
            A node config file (key = value lines, as `confab node --config` reads, e.g. \
            `wal_group_quiet_us = 600`) for the ring's nodes, passed to `confab ring start \
            --node-config`: compares node settings with one binary.
            """)
    var nodeConfig: String?

    @Flag(help: "Keep the ring and server directories (everything is stopped either way).")
    var keepData = false

    func validate() throws {
        if pairs < 1 { throw ValidationError("--pairs must be ≥ 1") }
        if !["auto", "cross", "same"].contains(mode) { throw ValidationError("--mode is auto, cross or same") }
        if bodyBytes < 1 { throw ValidationError("--body-bytes must be ≥ 1") }
        if groups < 1 { throw ValidationError("--groups must be ≥ 1") }
        if idleChildren < 1 { throw ValidationError("--idle-children must be ≥ 1") }
        _ = try Self.rates(latencyRates, "--latency-rates")
        if let fanoutRates { _ = try Self.rates(fanoutRates, "--fanout-rates") }
    }

    static func rates(_ text: String, _ flag: String) throws -> [Double] {
        let r = text.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard !r.isEmpty, r.allSatisfy({ ($0 ?? 0) > 0 }) else {
            throw ValidationError("\(flag): comma-separated positive rates")
        }
        return r.map { $0! }
    }

    func run() throws {
        let wallStart = ProcessIO.nowNanos()
        ProcessIO.tightenTimerSlack()
        MachineStallProbe.shared.start(byDefault: false)
        let binary =
            confab.map { URL(fileURLWithPath: $0).standardizedFileURL.path } ?? RingBenchCommand.defaultConfabPath()
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw ChatBenchError(
                """
                confab binary not found (or not executable) at \(binary).
                Build it first, in the repository root: swift build -c release --product confab
                (or pass --confab PATH).
                """)
        }
        guard LocalRing.runConfabQuietly(binary, ["chat", "serve", "--help"]) == 0 else {
            throw ChatBenchError(
                "\(binary) has no `chat serve` command; rebuild it from a checkout with the chat server")
        }
        let config = ChatBenchConfig(
            quick: quick, confab: binary, pairs: pairs, latencyRates: try Self.rates(latencyRates, "--latency-rates"),
            latencySeconds: latencySeconds ?? (quick ? 3 : 15),
            fanoutRates: try Self.rates(fanoutRates ?? (quick ? "600" : "300,600,900"), "--fanout-rates"),
            fanoutSeconds: fanoutSeconds ?? (quick ? 3 : 10), groups: groups,
            idleConnections: idleConnections ?? (quick ? 10_000 : nil),
            idleChildren: idleChildren, mode: mode, bodyBytes: bodyBytes, passwordRounds: passwordRounds,
            serverSoftLimit: serverSoftLimit, skipIdle: skipIdle, warmupSeconds: quick ? 0.5 : 2,
            nodeConfig: nodeConfig.map { URL(fileURLWithPath: $0).standardizedFileURL.path })

        let root = NSTemporaryDirectory() + "confab-bench-chat-\(getpid())"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer {
            if keepData {
                Progress.log("kept directories under \(root)")
            } else {
                try? FileManager.default.removeItem(atPath: root)
            }
        }
        let run = ChatBenchRun(config: config, root: root)
        defer { run.shutdown() }
        var report = try run.execute()
        report.wallSeconds = Double(ProcessIO.nowNanos() - wallStart) / 1e9
        print(report.terminalText())
        if let json {
            try report.json().write(to: URL(fileURLWithPath: json))
            Progress.log("wrote \(json)")
        }
        if let svgPath = svg ?? json.map({ ($0 as NSString).deletingPathExtension + ".svg" }) {
            try ChatChart(report: report).render().write(toFile: svgPath, atomically: true, encoding: .utf8)
            Progress.log("wrote \(svgPath)")
        }
    }
}

struct ChatBenchConfig: Sendable {
    var quick: Bool
    var confab: String
    var pairs: Int
    var latencyRates: [Double]
    var latencySeconds: Double
    var fanoutRates: [Double]
    var fanoutSeconds: Double
    var groups: Int
    var idleConnections: Int?
    var idleChildren: Int
    var mode: String
    var bodyBytes: Int
    var passwordRounds: Int
    var serverSoftLimit: Int
    var skipIdle: Bool
    var warmupSeconds: Double
    /// `--node-config`, an absolute path.
    var nodeConfig: String?
    /// Members of each fan-out group (the limit, creator included).
    let groupMembers = 100
}

import ArgumentParser
import Foundation

@main
struct ConfabBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "confab-bench",
        abstract: "Benchmarks for Confab.",
        subcommands: [
            StorageCommand.self, RingBenchCommand.self, ChatBenchCommand.self, MachineCommand.self,
            RecoveryChildCommand.self,
            ChatIdleChildCommand.self,
        ])
}

/// `confab-bench storage`: the chat workload against Confab, RocksDB, LevelDB and SQLite.
struct StorageCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "storage",
        abstract:
            "Chat-shaped workload against Confab, RocksDB, LevelDB and SQLite side by side, at matched durability.",
        discussion:
            "Phases per system: bulk ingest, space and write amplification, open-loop latest-50 and deep-page reads, 64-writer durable ingest, single-writer fdatasync, recovery after SIGKILL. See Bench/README.md."
    )

    @Flag(help: "Small run (250k messages, deep offset 50k) that finishes in a few minutes on 2 cores.")
    var quick = false

    @Option(help: "Write the results as JSON to this file.")
    var json: String?

    @Option(help: "Write an SVG bar chart here (default: next to --json, with .svg).")
    var svg: String?

    @Option(help: "Comma-separated systems to run, in order: confab, rocksdb, leveldb, sqlite.")
    var systems = "confab,rocksdb,leveldb,sqlite"

    @Option(help: "Data root for the stores (default: a new temporary directory, removed afterwards).")
    var dir: String?

    @Option(help: "Seed of the workload generator; the same seed gives every system the same messages.")
    var seed: UInt64 = 42

    @Option(help: "Override the number of ingested messages.")
    var messages: Int?

    @Option(help: "Override the deep-page depth (messages back from the newest in the deep chat).")
    var deepOffset: Int?

    @Option(help: "Override the open-loop read rate (requests per second).")
    var readRate: Double?

    @Option(help: "Override the number of measured requests per read kind.")
    var readRequests: Int?

    @Option(help: "Number of concurrent durable writer threads.")
    var writerThreads = 64

    @Option(
        help:
            "Nice value for the benchmark process (negative = higher priority, needs root; 0 leaves it). Other work on a 2-core machine otherwise shows up in the latency tails."
    )
    var nice: Int32 = -10

    @Flag(help: "Keep each system's data directory instead of deleting it after its phases.")
    var keepData = false

    func validate() throws {
        for name in systemNames where Systems.named(name) == nil {
            throw ValidationError(
                "unknown system '\(name)'; choose from \(Systems.all.map { $0.name }.joined(separator: ", "))")
        }
        if systemNames.isEmpty { throw ValidationError("--systems is empty") }
        if writerThreads < 1 { throw ValidationError("--writer-threads must be ≥ 1") }
    }

    /// Chosen systems in the given order, each once.
    var systemNames: [String] {
        var seen = Set<String>()
        return systems.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            .filter { !$0.isEmpty && seen.insert($0).inserted }
    }

    func run() throws {
        let wallStart = ProcessIO.nowNanos()
        ProcessIO.tightenTimerSlack()
        // Before any thread exists, so library threads and the recovery child inherit it.
        let niceApplied = nice != 0 && setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, nice) == 0
        if nice != 0 && !niceApplied {
            Progress.log("note: could not set nice \(nice); running at the default priority")
        }
        MachineStallProbe.shared.start(byDefault: false)
        var config = BenchConfig.make(quick: quick, seed: seed)
        if let m = messages {
            config.workload.messages = m
            config.recoveryMessages = min(config.recoveryMessages, m)
        }
        if let d = deepOffset { config.workload.deepOffset = d }
        config.workload.deepChatMessages = config.workload.deepOffset + 2_000
        guard config.workload.deepChatMessages <= config.workload.messages else {
            throw ValidationError("the deep chat (deep offset + 2,000 messages) must fit in --messages")
        }
        if let r = readRate { config.readRatePerSecond = r }
        if let r = readRequests { config.readRequests = r }
        config.writerThreads = writerThreads

        let createdRoot = dir == nil
        let root = dir ?? (NSTemporaryDirectory() + "confab-bench-\(getpid())")
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { if createdRoot && !keepData { try? FileManager.default.removeItem(atPath: root) } }

        Progress.log(
            "generating workload: \(config.workload.messages) messages, \(config.workload.chats) chats, deep chat \(config.workload.deepChatMessages) messages, seed \(seed)"
        )
        let workload = Workload(config: config.workload)
        let types = systemNames.compactMap(Systems.named)
        let bench = StorageBenchmark(config: config, workload: workload, root: root, keepData: keepData)
        let results = bench.run(systems: types)
        let wall = Double(ProcessIO.nowNanos() - wallStart) / 1e9

        let report = Report(
            config: config, workload: workload, systems: results, wallSeconds: wall,
            nice: niceApplied ? Int(nice) : 0)
        print(report.terminalText())
        if let json {
            try report.json().write(to: URL(fileURLWithPath: json))
            Progress.log("wrote \(json)")
        }
        let svgPath = svg ?? json.map { ($0 as NSString).deletingPathExtension + ".svg" }
        if let svgPath {
            let title = "Confab storage benchmark (\(quick ? "quick" : "full"), \(workload.messages.count) messages)"
            try SVGChart(systems: results, title: title).render().write(
                toFile: svgPath, atomically: true, encoding: .utf8)
            Progress.log("wrote \(svgPath)")
        }
    }
}

/// Hidden: the child process of the recovery phase.
struct RecoveryChildCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recovery-child", abstract: "Internal: write without sync, print ready, wait for SIGKILL.",
        shouldDisplay: false)

    @Option(help: "System to write to.")
    var system: String
    @Option(help: "Store directory.")
    var dir: String
    @Option(help: "Messages to write from the start of the stream.")
    var count: Int
    @Option(help: "Workload configuration as JSON (from the parent).")
    var workload: String

    func run() throws {
        let config = try JSONDecoder().decode(WorkloadConfig.self, from: Data(workload.utf8))
        try RecoveryChild.run(system: system, directory: dir, count: count, workload: config)
    }
}

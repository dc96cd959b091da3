import ArgumentParser
import ConfabChat
import ConfabClient
import ConfabEngine
import ConfabRing
import Foundation
import Histogram
import NIOCore
import NIOPosix

/// `confab-bench ring`: QUORUM writes and latest-50 reads through the Swift client against a
/// 1-node RF-1 ring and a 3-node RF-3 ring on localhost, started with the confab binary.
struct RingBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ring",
        abstract: "QUORUM write/read throughput and open-loop latency: 1-node RF-1 vs 3-node RF-3 ring on localhost.",
        discussion: """
            Builds nothing: runs the main package's release binary (`swift build -c release --product confab` \
            in the repository root first). Per ring: closed-loop peak write throughput with 64 concurrent \
            writers and open-loop writes at half that peak, then the same for latest-50 reads (closed-loop \
            read peak, open-loop reads at half of it). See Bench/README.md.
            """)

    @Option(help: "The confab binary (default: ../.build/release/confab relative to the Bench package).")
    var confab: String?

    @Flag(help: "Short phases (about 1.5 s each) for a quick check.")
    var quick = false

    @Option(help: "Write the results as JSON to this file.")
    var json: String?

    @Option(help: "Concurrent closed-loop writers in the peak phase.")
    var writers = 64

    @Option(help: "Override the seconds of each measured phase (peak, open-loop writes, open-loop reads).")
    var seconds: Double?

    @Option(help: "Number of chats the writes spread over (reads pick among them).")
    var chats = 1_000

    @Option(help: "Message body bytes.")
    var bodyBytes = 160

    @Option(help: "Open-loop rate as a fraction of the measured peak (the issue's targets are at 0.5).")
    var rateFraction = 0.5

    @Flag(help: "Keep the ring directories (the rings are stopped either way).")
    var keepData = false

    @Option(
        help: """
            Write every open-loop request of each ring to DIR/<ring>-<writes|reads>.csv: when it was \
            due (µs after the phase began) and its latency in µs (empty for a failed request). For \
            finding when a tail happens, not just how large it is.
            """)
    var timeline: String?

    @Option(
        help: """
            What issues the open-loop requests: `loop` (a client of its own on one event loop, paced by \
            a timer there, through the client's callback API: 40-86 µs of CPU per write on 2 cores) or \
            `tasks` (a pacing thread and a task per request, as before 2026-12-07: 71-177 µs).
            """)
    var openLoopDriver: OpenLoopDriver = .loop

    @Option(
        help: """
            A node config file (key = value lines, as `confab node --config` reads, e.g. \
            `wal_group_quiet_us = 600`) for every ring node, passed to `confab ring start \
            --node-config`: compares node settings with one binary. The engine baseline keeps the \
            engine's defaults.
            """)
    var nodeConfig: String?

    func validate() throws {
        if writers < 1 { throw ValidationError("--writers must be ≥ 1") }
        if !(rateFraction > 0) { throw ValidationError("--rate-fraction must be positive") }
        if chats < 1 { throw ValidationError("--chats must be ≥ 1") }
        if let seconds, seconds <= 0 { throw ValidationError("--seconds must be positive") }
    }

    /// The default binary: `<Bench>/../.build/release/confab`, the Bench package found from this
    /// source file's path (the build machine's checkout).
    static func defaultConfabPath() -> String {
        let bench = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return bench.appendingPathComponent("../.build/release/confab").standardizedFileURL.path
    }

    func run() throws {
        let wallStart = ProcessIO.nowNanos()
        ProcessIO.tightenTimerSlack()
        MachineStallProbe.shared.start(byDefault: true)
        let binary = confab.map { URL(fileURLWithPath: $0).standardizedFileURL.path } ?? Self.defaultConfabPath()
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw RingBenchError(
                """
                confab binary not found (or not executable) at \(binary).
                Build it first, in the repository root: swift build -c release --product confab
                (or pass --confab PATH).
                """)
        }
        let phase = seconds ?? (quick ? 1.5 : 5.0)
        let config = RingBenchConfig(
            quick: quick, confab: binary, writers: writers, peakSeconds: phase,
            warmupSeconds: quick ? 0.5 : 1.0, openLoopSeconds: phase,
            chats: chats, bodyBytes: bodyBytes, rateFraction: rateFraction, timelineDirectory: timeline,
            openLoopDriver: openLoopDriver,
            nodeConfig: nodeConfig.map { URL(fileURLWithPath: $0).standardizedFileURL.path })
        if let timeline { try FileManager.default.createDirectory(atPath: timeline, withIntermediateDirectories: true) }
        Progress.log("confab-bench ring: \(binary); phases \(phase) s, \(writers) writers, \(chats) chats")

        let root = NSTemporaryDirectory() + "confab-bench-ring-\(getpid())"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer {
            if keepData {
                Progress.log("kept ring directories under \(root)")
            } else {
                try? FileManager.default.removeItem(atPath: root)
            }
        }

        // The engine alone first, on a quiet machine, with the same writers and messages: the
        // denominator of "single node ÷ engine" in this same run.
        let engine = try RingEngineBaseline(config: config).run(directory: "\(root)/engine")
        try? FileManager.default.removeItem(atPath: "\(root)/engine")

        // The disk's own fdatasync rate and latency, alone and shared by three syncers: the floor
        // under the rings' write latency (DiskSyncProbe).
        let probe = DiskSyncProbe(directory: "\(root)/sync-probe", seconds: quick ? 1 : 2)
        var diskSync: [DiskSyncProbe.Result] = []
        for syncers in [1, 3] {
            let r = try probe.run(syncers: syncers)
            Progress.log(
                String(
                    format: "[disk] %d syncer%@: %.0f fdatasyncs/s in all, each p50 %.2f ms, p99 %.2f ms", syncers,
                    syncers == 1 ? "" : "s", r.syncsPerSecond, r.latency.p50 / 1000, r.latency.p99 / 1000))
            diskSync.append(r)
        }

        var results: [RingResult] = []
        for (name, nodes, rf) in [("single", 1, 1), ("rf3", 3, 3)] {
            let dir = "\(root)/\(name)"
            let ring = LocalRing(binary: binary, directory: dir, nodeConfig: config.nodeConfig)
            // Stopped whatever happens below (also when start itself fails half-way).
            defer { ring.stop() }
            Progress.log("[\(name)] starting a \(nodes)-node RF-\(rf) ring in \(dir)")
            try ring.start(nodes: nodes, rf: rf)
            let addresses = try ring.addresses()
            Progress.log("[\(name)] nodes: \(addresses.map(\.description).joined(separator: ", "))")
            let bench = RingPhases(
                config: config, label: name, metrics: RingMetricsScraper(endpoints: try ring.metricsEndpoints()))
            var result = try bench.run(nodes: addresses)
            result.name = name
            result.nodes = nodes
            result.replicationFactor = rf
            results.append(result)
        }

        let report = RingReport(
            config: config, engine: engine, diskSync: diskSync, results: results,
            wallSeconds: Double(ProcessIO.nowNanos() - wallStart) / 1e9)
        print(report.terminalText())
        if let json {
            try report.json().write(to: URL(fileURLWithPath: json))
            Progress.log("wrote \(json)")
        }
    }
}

/// A failure of the ring benchmark, printed as is (without the usage text).
struct RingBenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

struct RingBenchConfig: Sendable {
    var quick: Bool
    var confab: String
    var writers: Int
    var peakSeconds: Double
    var warmupSeconds: Double
    var openLoopSeconds: Double
    var chats: Int
    var bodyBytes: Int
    var rateFraction: Double
    var timelineDirectory: String?
    var openLoopDriver: OpenLoopDriver = .loop
    /// `--node-config`, an absolute path.
    var nodeConfig: String?
}

/// What paces and issues the open-loop requests (`--open-loop-driver`).
enum OpenLoopDriver: String, ExpressibleByArgument, Sendable {
    /// A client of its own on one event loop, paced by a timer there, through its callback API.
    case loop
    /// A pacing thread and a task per request (the driver before 2026-12-07).
    case tasks
}

// MARK: - The ring processes

/// A ring in one directory, driven through `confab ring start/stop`.
struct LocalRing {
    let binary: String
    let directory: String
    /// Passed as `--node-config` (an absolute path), or nil for the nodes' defaults.
    var nodeConfig: String? = nil

    /// A report's `node_config`: the file's path and its lines, so a result says which node
    /// settings it measured (null: the defaults).
    static func configRecord(_ path: String?) -> Any {
        guard let path else { return NSNull() }
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return ["path": path, "lines": text.split(separator: "\n").map(String.init)] as [String: Any]
    }

    func start(nodes: Int, rf: Int) throws {
        var arguments = ["ring", "start", "--nodes", "\(nodes)", "--rf", "\(rf)", "--dir", directory]
        if let nodeConfig { arguments += ["--node-config", nodeConfig] }
        let status = Self.runConfab(binary, arguments)
        guard status == 0 else {
            throw RingBenchError(
                "`confab \(arguments.joined(separator: " "))` exited with \(status); node logs in \(directory)/nodeN/node.log"
            )
        }
    }

    func stop() {
        guard FileManager.default.fileExists(atPath: "\(directory)/ring.json") else { return }
        Progress.log("stopping the ring in \(directory)")
        let status = Self.runConfab(binary, ["ring", "stop", "--dir", directory])
        if status != 0 { Progress.log("warning: `confab ring stop --dir \(directory)` exited with \(status)") }
    }

    /// Each node's operations port (ring.json's `metrics_port`), for its /metrics.
    func metricsEndpoints() throws -> [(host: String, port: Int)] {
        struct State: Decodable {
            struct Node: Decodable {
                var host: String
                var metricsPort: Int?
            }
            var nodes: [Node]
        }
        let data = try Data(contentsOf: URL(fileURLWithPath: "\(directory)/ring.json"))
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(State.self, from: data).nodes.compactMap { node in
            node.metricsPort.map { (node.host, $0) }
        }
    }

    /// The node addresses from ring.json (format: Sources/ConfabProcess/RingFile.swift).
    func addresses() throws -> [NodeAddress] {
        struct State: Decodable {
            struct Node: Decodable {
                var host: String
                var port: Int
            }
            var nodes: [Node]
        }
        let data = try Data(contentsOf: URL(fileURLWithPath: "\(directory)/ring.json"))
        let state = try JSONDecoder().decode(State.self, from: data)
        guard !state.nodes.isEmpty else { throw RingBenchError("\(directory)/ring.json lists no nodes") }
        return state.nodes.map { NodeAddress(host: $0.host, port: $0.port) }
    }

    /// Runs confab with its stdout and stderr on our stderr (stdout is the report's).
    static func runConfab(_ binary: String, _ arguments: [String]) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.standardOutput = FileHandle.standardError
        process.standardError = FileHandle.standardError
        do { try process.run() } catch {
            Progress.log("cannot run \(binary): \(error)")
            return -1
        }
        process.waitUntilExit()
        return process.terminationStatus
    }
}

// MARK: - Phases

struct RingResult: Sendable {
    var name = ""
    var nodes = 0
    var replicationFactor = 0
    var peakWritesPerSecond = 0.0
    var peakWrites = 0
    var peakSeconds = 0.0
    var peakErrors = 0
    var rate = 0.0
    /// Closed-loop latest-50 QUORUM reads/s with the same writers count: reads are paced at the
    /// same fraction of this peak as writes are of theirs (a node serves fewer reads than writes,
    /// so pacing reads by the write peak ran them past capacity and measured queueing).
    var peakReadsPerSecond = 0.0
    var readRate = 0.0
    var writes: OpenLoopResult
    var reads: OpenLoopResult
    var readRowsAverage = 0.0
    var firstError: String?
    /// The nodes' own account of the closed-loop peak and of the open-loop writes (their /metrics).
    var peakNodes: RingPhaseBreakdown?
    var openLoopNodes: RingPhaseBreakdown?
}

struct OpenLoopResult: Sendable {
    var latency: LatencySummary
    var issued: Int
    var errors: Int
    var seconds: Double
    /// Completed requests per second (errors excluded), first due time to last completion.
    var achievedPerSecond: Double
    var firstError: String?
    /// Most requests in flight at once (grows when the ring falls behind the rate).
    var maxOutstanding = 0
    /// The benchmark process's own CPU per request in the phase (it shares the cores with the
    /// ring it measures).
    var generatorCPUMicrosPerRequest = 0.0
    /// The machine's stalls during the phase (`MachineStallProbe`; nil when it does not run).
    var stalls: MachineStallProbe.Summary?
    /// The latency of the requests that no stall overlapped: what the phase measured apart from
    /// the machine stopping. A diagnostic beside the real percentiles, never instead of them.
    var stallFreeLatency: LatencySummary?
}

/// The three phases against one running ring.
struct RingPhases {
    let config: RingBenchConfig
    let label: String
    let metrics: RingMetricsScraper

    func run(nodes: [NodeAddress]) throws -> RingResult {
        let client = ConfabClient(nodes: nodes, schema: ChatSchema.registry)
        defer { _ = try? blockOn { await client.shutdown() } }
        let ids = IDSource(prefix: "\(label)-\(getpid())")
        let body = String(repeating: "x", count: config.bodyBytes)
        let chats = config.chats
        let message: @Sendable () -> Mutation = {
            let n = ids.next()
            let chat = Int64(((UInt64(n) &* 0x9E37_79B9_7F4A_7C15) >> 20) % UInt64(chats))
            let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
            return PostedMessages.mutation(
                chatId: chat, timestamp: now, messageId: "\(ids.prefix)-\(n)", sender: "bench",
                body: body, writeTime: now)
        }
        let write: @Sendable (Int) async throws -> Void = { _ in
            try await client.write(message(), consistency: .quorum)
        }
        // The open-loop requests go through a client of their own on one event loop, which also
        // paces them: its connections, its timer and its answers share one thread, so a request
        // is written and answered with no hand-off between the generator's threads.
        let pacingGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let pacingLoop = pacingGroup.next()
        let paced = ConfabClient(
            configuration: {
                var c = ConfabClient.Configuration(nodes: nodes)
                c.schema = ChatSchema.registry
                c.connectionsPerNode = 1
                return c
            }(), eventLoopGroup: pacingGroup)
        defer {
            _ = try? blockOn { await paced.shutdown() }
            try? pacingGroup.syncShutdownGracefully()
        }

        Progress.log("[\(label)] warm-up: \(config.warmupSeconds) s closed-loop, \(config.writers) writers")
        _ = try blockOn { await Self.closedLoop(writers: config.writers, seconds: config.warmupSeconds, write) }
        if config.openLoopDriver == .loop {
            // The paced client opens its connections and learns the ring before it is timed.
            _ = try blockOn {
                for _ in 0..<64 { _ = try await paced.submitWrite(message(), consistency: .quorum).get() }
            }
        }
        Progress.log("[\(label)] peak: \(config.peakSeconds) s closed-loop QUORUM writes, \(config.writers) writers")
        let beforePeak = metrics.scrape()
        let peak = try blockOn { await Self.closedLoop(writers: config.writers, seconds: config.peakSeconds, write) }
        let peakRate = Double(peak.writes) / peak.seconds
        Progress.log(
            String(format: "[\(label)] peak %.0f writes/s (%d writes, %d errors)", peakRate, peak.writes, peak.errors))
        guard peak.writes > 0 else {
            throw RingBenchError("[\(label)] no write succeeded in the peak phase: \(peak.firstError ?? "?")")
        }

        let rate = peakRate * config.rateFraction
        let count = max(1, Int(rate * config.openLoopSeconds))
        Progress.log(
            String(format: "[\(label)] open-loop QUORUM writes at %.0f/s for %.1f s", rate, config.openLoopSeconds))
        let afterPeak = metrics.scrape()
        let writesTimeline = config.timelineDirectory.map { "\($0)/\(label)-writes.csv" }
        let writes =
            switch config.openLoopDriver {
            case .loop:
                OpenLoopOnEventLoop(ratePerSecond: rate, requests: count, timelinePath: writesTimeline)
                    .run(on: pacingLoop) { _ in paced.submitWrite(message(), consistency: .quorum) }
            case .tasks:
                OpenLoopAsync(ratePerSecond: rate, requests: count, timelinePath: writesTimeline).run(write)
            }
        let afterWrites = metrics.scrape()
        func breakdown(_ a: [[String: Double]], _ b: [[String: Double]]) -> RingPhaseBreakdown? {
            a.isEmpty || a.count != b.count ? nil : RingPhaseBreakdown(before: a, after: b)
        }
        let peakNodes = breakdown(beforePeak, afterPeak)
        let openLoopNodes = breakdown(afterPeak, afterWrites)
        for (phase, b) in [("peak", peakNodes), ("open-loop writes", openLoopNodes)] {
            guard let b else { continue }
            Progress.log(
                String(
                    format:
                        "[\(label)] nodes in the %@: coordinator %.2f ms mean, replica write %.2f ms, fdatasync %.2f ms (%.0f over 50 ms), %.1f writes per sync, %.0f writes stalled for %.0f ms, %@ µs of node CPU per write",
                    phase, b.coordinatorMeanMs, b.replicaMeanMs, b.syncMeanMs, b.slowSyncs, b.writesPerSync, b.stalls,
                    b.stallTotalMs, b.cpuMicrosPerWrite.map { String(format: "%.0f", $0) } ?? "n/a"))
        }

        let rows = Counter()
        let read: @Sendable (Int) async throws -> Void = { i in
            let result = try await client.read(Self.latestQuery(i, chats: chats), consistency: .quorum)
            rows.add(result.rows.count)
        }
        Progress.log(
            "[\(label)] read peak: \(config.peakSeconds) s closed-loop QUORUM latest-50 reads, \(config.writers) readers"
        )
        let readPeak = try blockOn { await Self.closedLoop(writers: config.writers, seconds: config.peakSeconds, read) }
        let readPeakRate = Double(readPeak.writes) / readPeak.seconds
        Progress.log(
            String(
                format: "[\(label)] read peak %.0f reads/s (%d reads, %d errors)", readPeakRate, readPeak.writes,
                readPeak.errors))
        rows.reset()
        let readRate = max(1, readPeakRate * config.rateFraction)
        let readCount = max(1, Int(readRate * config.openLoopSeconds))
        Progress.log(
            String(
                format: "[\(label)] open-loop QUORUM latest-50 reads at %.0f/s for %.1f s", readRate,
                config.openLoopSeconds))
        let readsTimeline = config.timelineDirectory.map { "\($0)/\(label)-reads.csv" }
        let reads =
            switch config.openLoopDriver {
            case .loop:
                OpenLoopOnEventLoop(ratePerSecond: readRate, requests: readCount, timelinePath: readsTimeline)
                    .run(on: pacingLoop) { i in
                        paced.submitRead(Self.latestQuery(i, chats: chats), consistency: .quorum).map {
                            rows.add($0.rows.count)
                        }
                    }
            case .tasks:
                OpenLoopAsync(ratePerSecond: readRate, requests: readCount, timelinePath: readsTimeline).run(read)
            }

        for (kind, r) in [("writes", writes), ("reads", reads)] {
            Progress.log(
                String(
                    format:
                        "[\(label)] %@: p50 %.0f µs, p99 %.0f µs, p999 %.0f µs, %d errors, achieved %.0f/s, generator CPU %.1f µs per request; machine stalls: %@",
                    kind, r.latency.p50, r.latency.p99, r.latency.p999, r.errors, r.achievedPerSecond,
                    r.generatorCPUMicrosPerRequest, r.stalls?.text ?? "not measured"))
        }
        return RingResult(
            peakWritesPerSecond: peakRate, peakWrites: peak.writes, peakSeconds: peak.seconds,
            peakErrors: peak.errors, rate: rate, peakReadsPerSecond: readPeakRate, readRate: readRate,
            writes: writes, reads: reads,
            readRowsAverage: reads.issued > reads.errors ? Double(rows.value) / Double(reads.issued - reads.errors) : 0,
            firstError: peak.firstError ?? writes.firstError ?? reads.firstError, peakNodes: peakNodes,
            openLoopNodes: openLoopNodes)
    }

    /// Read i's latest-50 page of one of the chats.
    static func latestQuery(_ i: Int, chats: Int) -> SliceQuery {
        let chat = Int64(((UInt64(i) &* 0xD1B5_4A32_D192_ED03) >> 20) % UInt64(chats))
        return PostedMessages.latest(chatId: chat, limit: 50)
    }

    /// `writers` tasks, each writing back to back until `seconds` have passed.
    static func closedLoop(writers: Int, seconds: Double, _ write: @escaping @Sendable (Int) async throws -> Void) async
        -> (writes: Int, errors: Int, seconds: Double, firstError: String?)
    {
        let t0 = ProcessIO.nowNanos()
        let deadline = t0 + UInt64(seconds * 1e9)
        let totals = await withTaskGroup(of: (Int, Int, String?).self) { group in
            for w in 0..<writers {
                group.addTask {
                    var ok = 0
                    var failed = 0
                    var first: String?
                    while ProcessIO.nowNanos() < deadline {
                        do {
                            try await write(w)
                            ok += 1
                        } catch {
                            failed += 1
                            if first == nil { first = "\(error)" }
                        }
                    }
                    return (ok, failed, first)
                }
            }
            var sum = (0, 0, String?.none)
            for await (ok, failed, first) in group {
                sum.0 += ok
                sum.1 += failed
                if sum.2 == nil { sum.2 = first }
            }
            return sum
        }
        return (totals.0, totals.1, Double(ProcessIO.nowNanos() - t0) / 1e9, totals.2)
    }
}

/// Open-loop with async requests: request i is due at start + i / rate and is started then as
/// its own task, whether or not earlier ones finished. Latency = completion − *intended* start
/// (no coordinated omission). The pacing thread (the caller's) nanosleeps until the next due
/// time and then starts every request that is due — it does not spin, which would take a core
/// from the nodes on a 2-core machine; a late wakeup is charged to the requests it delays.
struct OpenLoopAsync {
    var ratePerSecond: Double
    var requests: Int
    /// Where to write each request's due offset and latency (`--timeline`), or nil.
    var timelinePath: String? = nil

    func run(_ operation: @escaping @Sendable (Int) async throws -> Void) -> OpenLoopResult {
        let recorder = Recorder()
        let interval = 1e9 / ratePerSecond
        let start = ProcessIO.nowNanos() + 1_000_000
        var i = 0
        while i < requests {
            let now = ProcessIO.nowNanos()
            while i < requests {
                let intended = start + UInt64(Double(i) * interval)
                if intended > now { break }
                let index = i
                recorder.begin()
                Task.detached {
                    do {
                        try await operation(index)
                        recorder.finish(latency: ProcessIO.nowNanos() &- intended, error: nil, dueAt: intended &- start)
                    } catch {
                        recorder.finish(latency: nil, error: "\(error)", dueAt: intended &- start)
                    }
                }
                i += 1
            }
            if i < requests {
                let next = start + UInt64(Double(i) * interval)
                let now2 = ProcessIO.nowNanos()
                if next > now2 {
                    let nap = next - now2
                    var ts = timespec(tv_sec: Int(nap / 1_000_000_000), tv_nsec: Int(nap % 1_000_000_000))
                    nanosleep(&ts, nil)
                }
            }
        }
        return Self.result(of: recorder, start: start, requests: requests, timelinePath: timelinePath)
    }

    /// Waits for every request `recorder` counts, then summarizes them (and writes the timeline).
    static func result(of recorder: Recorder, start: UInt64, requests: Int, timelinePath: String?) -> OpenLoopResult {
        let (hist, errors) = recorder.waitAll()
        let cpu = ProcessIO.cpuNanos() - recorder.cpuAtStart
        if let timelinePath {
            var csv = "due_us,latency_us\n"
            for (due, latency) in recorder.timeline.sorted(by: { $0.0 < $1.0 }) {
                csv += "\(due / 1000),\(latency.map { "\($0 / 1000)" } ?? "")\n"
            }
            do {
                try csv.write(toFile: timelinePath, atomically: true, encoding: .utf8)
                Progress.log("wrote \(timelinePath)")
            } catch {
                Progress.log("cannot write the timeline \(timelinePath): \(error)")
            }
        }
        let end = ProcessIO.nowNanos()
        let seconds = Double(end - start) / 1e9
        let probe = MachineStallProbe.shared
        let stalls = probe.stalls(from: start, to: end)
        var clear = Latency.histogram()
        for (due, latency) in probe.isRunning ? recorder.timeline : [] {
            guard let latency else { continue }
            let from = start + due
            let to = from + latency
            if !stalls.contains(where: { $0.start < to && $0.end > from }) { _ = clear.record(max(1, latency)) }
        }
        return OpenLoopResult(
            latency: LatencySummary(hist), issued: requests, errors: errors, seconds: seconds,
            achievedPerSecond: Double(requests - errors) / seconds, firstError: recorder.firstError,
            maxOutstanding: recorder.maxOutstanding,
            generatorCPUMicrosPerRequest: Double(cpu) / 1000 / Double(max(1, requests)),
            stalls: probe.summary(of: stalls),
            stallFreeLatency: clear.totalCount > 0 ? LatencySummary(clear) : nil)
    }

    /// Outstanding count and the latency histogram, behind one condition variable.
    final class Recorder: @unchecked Sendable {
        private let cond = NSCondition()
        private var outstanding = 0
        private(set) var maxOutstanding = 0
        private var hist = Latency.histogram()
        private var errors = 0
        private(set) var firstError: String?
        let cpuAtStart = ProcessIO.cpuNanos()
        /// (due offset, latency or nil for a failure) in ns: for `--timeline`, and to tell the
        /// requests a machine stall overlapped from the others.
        private(set) var timeline: [(UInt64, UInt64?)] = []

        /// Requests are still being started (`waitAll` waits for this too when the pacing runs on
        /// another thread).
        private var issuing: Bool

        init(issuing: Bool = false) {
            self.issuing = issuing
        }

        func doneIssuing() {
            cond.lock()
            issuing = false
            cond.broadcast()
            cond.unlock()
        }

        func begin() {
            cond.lock()
            outstanding += 1
            maxOutstanding = max(maxOutstanding, outstanding)
            cond.unlock()
        }

        func finish(latency: UInt64?, error: String?, dueAt: UInt64) {
            cond.lock()
            if let latency { _ = hist.record(max(1, latency)) }
            timeline.append((dueAt, latency))
            if let error {
                errors += 1
                if firstError == nil {
                    firstError = error
                    Progress.log("request failed: \(error)")
                }
            }
            outstanding -= 1
            if outstanding == 0 && !issuing { cond.broadcast() }
            cond.unlock()
        }

        func waitAll() -> (Histogram<UInt64>, Int) {
            cond.lock()
            while outstanding > 0 || issuing { cond.wait() }
            let r = (hist, errors)
            cond.unlock()
            return r
        }
    }
}

/// Unique message numbers across tasks.
final class IDSource: @unchecked Sendable {
    let prefix: String
    private let lock = NSLock()
    private var n = 0
    init(prefix: String) { self.prefix = prefix }
    func next() -> Int {
        lock.withLock {
            n += 1
            return n
        }
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var total = 0
    func add(_ v: Int) { lock.withLock { total += v } }
    var value: Int { lock.withLock { total } }
    func reset() { lock.withLock { total = 0 } }
}

final class BlockOnBox<T>: @unchecked Sendable { var result: Result<T, any Error>? }

/// Runs async work from synchronous code (the command's thread) and waits for it.
func blockOn<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let box = BlockOnBox<T>()
    let done = DispatchSemaphore(value: 0)
    Task.detached {
        do { box.result = .success(try await body()) } catch { box.result = .failure(error) }
        done.signal()
    }
    done.wait()
    return try box.result!.get()
}

// MARK: - Report

struct RingReport {
    let config: RingBenchConfig
    let engine: RingEngineBaseline.Result
    let diskSync: [DiskSyncProbe.Result]
    let results: [RingResult]
    let wallSeconds: Double

    var single: RingResult? { results.first { $0.name == "single" } }
    var ring: RingResult? { results.first { $0.name == "rf3" } }

    var throughputRatio: Double? {
        guard let s = single, let r = ring, s.peakWritesPerSecond > 0 else { return nil }
        return r.peakWritesPerSecond / s.peakWritesPerSecond
    }

    /// Single-node acknowledged durable writes/s ÷ the engine's own with the same writers.
    var singleVsEngine: Double? {
        guard let s = single, engine.writesPerSecond > 0 else { return nil }
        return s.peakWritesPerSecond / engine.writesPerSecond
    }

    var targets: [(key: String, target: TargetResult)] {
        [
            (
                "single_vs_engine_durable",
                TargetResult(
                    name: "single node writes/s ÷ engine's own durable writes/s (\(config.writers) writers)",
                    value: singleVsEngine, threshold: 0.5, atLeast: true, unit: "×")
            ),
            (
                "rf3_write_throughput_vs_single",
                TargetResult(
                    name: "RF-3 QUORUM write throughput vs single node", value: throughputRatio,
                    threshold: 0.4, atLeast: true, unit: "×")
            ),
            (
                "rf3_write_p99",
                TargetResult(
                    name: "RF-3 QUORUM write p99 at open-loop rate", value: ring.map { $0.writes.latency.p99 / 1000 },
                    threshold: 5, atLeast: false, unit: "ms")
            ),
            (
                "rf3_read_p99",
                TargetResult(
                    name: "RF-3 QUORUM latest-50 read p99 at open-loop rate",
                    value: ring.map { $0.reads.latency.p99 / 1000 },
                    threshold: 5, atLeast: false, unit: "ms")
            ),
            (
                "single_write_p99",
                TargetResult(
                    name: "single-node write p99 at open-loop rate", value: single.map { $0.writes.latency.p99 / 1000 },
                    threshold: 5, atLeast: false, unit: "ms")
            ),
            (
                "single_read_p99",
                TargetResult(
                    name: "single-node latest-50 read p99 at open-loop rate",
                    value: single.map { $0.reads.latency.p99 / 1000 },
                    threshold: 5, atLeast: false, unit: "ms")
            ),
        ]
    }

    func terminalText() -> String {
        func f(_ v: Double, _ digits: Int = 0) -> String { String(format: "%.\(digits)f", v) }
        func ms(_ us: Double) -> String { String(format: "%.2f", us / 1000) }
        func stalls(_ s: MachineStallProbe.Summary?) -> String { s.map { "\($0.count) / " + f($0.totalMs) } ?? "n/a" }
        let rows: [(String, (RingResult) -> String)] = [
            ("peak QUORUM writes/s (closed, \(config.writers) writers)", { f($0.peakWritesPerSecond) }),
            ("open-loop write rate (\(config.rateFraction) × peak) /s", { f($0.rate) }),
            ("peak QUORUM latest-50 reads/s (closed)", { f($0.peakReadsPerSecond) }),
            ("open-loop read rate (\(config.rateFraction) × read peak) /s", { f($0.readRate) }),
            ("write p50 ms", { ms($0.writes.latency.p50) }),
            ("write p99 ms", { ms($0.writes.latency.p99) }),
            ("write p999 ms", { ms($0.writes.latency.p999) }),
            ("write max ms", { ms($0.writes.latency.max) }),
            ("write errors", { "\($0.writes.errors)" }),
            ("write p99 ms, requests no stall overlapped", { $0.writes.stallFreeLatency.map { ms($0.p99) } ?? "n/a" }),
            ("machine stalls in open-loop writes (n / ms)", { stalls($0.writes.stalls) }),
            ("latest-50 read p50 ms", { ms($0.reads.latency.p50) }),
            ("latest-50 read p99 ms", { ms($0.reads.latency.p99) }),
            ("latest-50 read p999 ms", { ms($0.reads.latency.p999) }),
            ("latest-50 read max ms", { ms($0.reads.latency.max) }),
            ("read errors", { "\($0.reads.errors)" }),
            ("read p99 ms, requests no stall overlapped", { $0.reads.stallFreeLatency.map { ms($0.p99) } ?? "n/a" }),
            ("machine stalls in open-loop reads (n / ms)", { stalls($0.reads.stalls) }),
            ("read rows avg", { f($0.readRowsAverage, 1) }),
            ("nodes at peak: coordinator mean ms", { $0.peakNodes.map { f($0.coordinatorMeanMs, 2) } ?? "n/a" }),
            ("nodes at peak: writes per fdatasync", { $0.peakNodes.map { f($0.writesPerSync, 1) } ?? "n/a" }),
            ("nodes at peak: CPU µs per write", { $0.peakNodes?.cpuMicrosPerWrite.map { f($0, 0) } ?? "n/a" }),
            ("nodes open-loop: coordinator mean ms", { $0.openLoopNodes.map { f($0.coordinatorMeanMs, 2) } ?? "n/a" }),
            ("nodes open-loop: replica write mean ms", { $0.openLoopNodes.map { f($0.replicaMeanMs, 2) } ?? "n/a" }),
            ("nodes open-loop: fdatasync mean ms", { $0.openLoopNodes.map { f($0.syncMeanMs, 2) } ?? "n/a" }),
            ("nodes open-loop: writes per fdatasync", { $0.openLoopNodes.map { f($0.writesPerSync, 1) } ?? "n/a" }),
            ("nodes open-loop: CPU µs per write", { $0.openLoopNodes?.cpuMicrosPerWrite.map { f($0, 0) } ?? "n/a" }),
        ]
        let headers = results.map {
            $0.name == "single" ? "1 node RF-1" : "\($0.nodes) nodes RF-\($0.replicationFactor)"
        }
        let w0 = rows.map(\.0.count).max() ?? 10
        var out =
            "\nConfab ring benchmark (\(config.quick ? "quick" : "full"), QUORUM, localhost, \(ProcessInfo.processInfo.activeProcessorCount) cores)\n"
        out += "metric".padding(toLength: w0, withPad: " ", startingAt: 0)
        for h in headers { out += "  " + String(repeating: " ", count: max(0, 14 - h.count)) + h }
        out += "\n"
        for (label, value) in rows {
            out += label.padding(toLength: w0, withPad: " ", startingAt: 0)
            for r in results {
                let v = value(r)
                out += "  " + String(repeating: " ", count: max(0, 14 - v.count)) + v
            }
            out += "\n"
        }
        out += "\nRF-3 / single-node peak write throughput: \(throughputRatio.map { f($0, 3) } ?? "n/a")\n"
        out +=
            "engine alone, \(config.writers) threads, SyncMode.group: \(f(engine.writesPerSecond)) durable writes/s"
            + " (ack p99 \(ms(engine.ack.p99)) ms); single node ÷ engine: \(singleVsEngine.map { f($0, 3) } ?? "n/a")\n"
        for d in diskSync {
            out +=
                "disk alone, \(d.syncers) fdatasync thread\(d.syncers == 1 ? "" : "s"): \(f(d.syncsPerSecond)) syncs/s in all,"
                + " each p50 \(ms(d.latency.p50)) ms, p99 \(ms(d.latency.p99)) ms\n"
        }
        out += "\nTargets:\n"
        for (_, t) in targets {
            let v = t.value.map { f($0, 3) } ?? "n/a"
            let mark = t.met.map { $0 ? "met" : "MISSED" } ?? "n/a"
            out += "  \(t.name): \(v) \(t.unit) (\(t.atLeast ? "≥" : "≤") \(f(t.threshold, 2))) \(mark)\n"
        }
        out += "\nwall \(f(wallSeconds, 1)) s\n"
        return out
    }

    func json() throws -> Data {
        func lat(_ prefix: String, _ r: OpenLoopResult) -> [String: Any] {
            [
                "\(prefix)_p50_us": r.latency.p50, "\(prefix)_p99_us": r.latency.p99,
                "\(prefix)_p999_us": r.latency.p999, "\(prefix)_max_us": r.latency.max,
                "\(prefix)_count": r.issued, "\(prefix)_errors": r.errors,
                "\(prefix)_seconds": r.seconds, "\(prefix)_max_in_flight": r.maxOutstanding,
                "\(prefix)_generator_cpu_us_per_request": r.generatorCPUMicrosPerRequest,
                "\(prefix)_achieved_per_s": r.achievedPerSecond,
                "\(prefix)_machine_stalls": r.stalls?.json as Any? ?? NSNull(),
                "\(prefix)_stall_free_p50_us": r.stallFreeLatency?.p50 as Any? ?? NSNull(),
                "\(prefix)_stall_free_p99_us": r.stallFreeLatency?.p99 as Any? ?? NSNull(),
                "\(prefix)_stall_free_count": r.stallFreeLatency?.count as Any? ?? NSNull(),
            ]
        }
        var rings: [String: Any] = [:]
        for r in results {
            var d: [String: Any] = [
                "nodes": r.nodes, "replication_factor": r.replicationFactor,
                "peak_write_per_s": r.peakWritesPerSecond, "peak_writes": r.peakWrites,
                "peak_seconds": r.peakSeconds, "peak_errors": r.peakErrors,
                "open_loop_rate_per_s": r.rate, "read_rows_avg": r.readRowsAverage,
                "peak_read_per_s": r.peakReadsPerSecond, "open_loop_read_rate_per_s": r.readRate,
            ]
            d.merge(lat("write", r.writes)) { a, _ in a }
            d.merge(lat("read", r.reads)) { a, _ in a }
            if let e = r.firstError { d["first_error"] = e }
            if let b = r.peakNodes { d["peak_nodes"] = b.json }
            if let b = r.openLoopNodes { d["open_loop_write_nodes"] = b.json }
            rings[r.name] = d
        }
        var targetsJSON: [String: Any] = [:]
        for (key, t) in targets {
            targetsJSON[key] =
                [
                    "value": t.value as Any? ?? NSNull(), "threshold": t.threshold,
                    "comparison": t.atLeast ? ">=" : "<=", "unit": t.unit, "met": t.met as Any? ?? NSNull(),
                ] as [String: Any]
        }
        var engineJSON: [String: Any] = [
            "durable_write_per_s": engine.writesPerSecond, "writes": engine.writes, "seconds": engine.seconds,
            "ack_p50_us": engine.ack.p50, "ack_p99_us": engine.ack.p99, "ack_p999_us": engine.ack.p999,
            "ack_max_us": engine.ack.max, "threads": config.writers, "sync_mode": "group",
        ]
        if let e = engine.firstError { engineJSON["first_error"] = e }
        let doc: [String: Any] = [
            "rings": rings,
            "engine": engineJSON,
            "disk_sync": diskSync.map {
                [
                    "syncers": $0.syncers, "syncs_per_s": $0.syncsPerSecond, "p50_us": $0.latency.p50,
                    "p99_us": $0.latency.p99, "p999_us": $0.latency.p999, "max_us": $0.latency.max,
                ] as [String: Any]
            },
            "single_vs_engine_ratio": singleVsEngine as Any? ?? NSNull(),
            "write_throughput_ratio": throughputRatio as Any? ?? NSNull(),
            "targets": targetsJSON,
            "config": [
                "quick": config.quick, "confab": config.confab, "consistency": "QUORUM",
                "writers": config.writers, "warmup_seconds": config.warmupSeconds,
                "peak_seconds": config.peakSeconds, "open_loop_seconds": config.openLoopSeconds,
                "chats": config.chats, "rate_fraction": config.rateFraction, "body_bytes": config.bodyBytes,
                "open_loop_driver": config.openLoopDriver.rawValue,
                "node_config": LocalRing.configRecord(config.nodeConfig),
                "read_limit": 50,
                "cores": ProcessInfo.processInfo.activeProcessorCount, "wall_seconds": wallSeconds,
            ] as [String: Any],
        ]
        return try JSONSerialization.data(withJSONObject: doc, options: [.prettyPrinted, .sortedKeys])
    }
}

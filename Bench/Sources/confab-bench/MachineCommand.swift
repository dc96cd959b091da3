import ArgumentParser
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// `confab-bench machine`: does this machine stop under load, and what sets it off?
///
/// Three stages of equal length, with `MachineStallProbe` watching: nothing running; one busy
/// thread per core; the busy threads plus one thread that writes 600 bytes and fdatasyncs in a
/// loop. On 2026-12-07 this VM stalled only in the last stage, 7 to 17 ms once every 100 ms at one
/// phase of the cycle — the host's CPU quota charging the disk work to the VM. The ring and chat
/// benchmarks load the machine the same way (busy cores and thousands of fdatasyncs a second), so
/// this explains the stalls the ring benchmark reports (and the chat benchmark's, with the probe
/// on).
struct MachineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "machine",
        abstract: "Checks whether this machine stalls when its cores are busy, alone and with fdatasyncs.",
        discussion:
            "Three stages: idle, one busy thread per core, busy threads plus an fdatasync loop. A real-time thread records every wake-up more than 2 ms late (the whole machine stopped). See Bench/README.md."
    )

    @Option(help: "Seconds per stage.")
    var seconds: Double = 3

    @Option(help: "Directory for the fdatasync file (default: a new temporary directory, removed afterwards).")
    var dir: String?

    @Option(help: "Write the results as JSON to this file.")
    var json: String?

    func validate() throws {
        if !(seconds > 0) { throw ValidationError("--seconds must be above 0") }
    }

    struct Stage {
        var name: String
        var stalls: MachineStallProbe.Summary
        var seconds: Double
        var syncs: Int
    }

    func run() throws {
        let probe = MachineStallProbe.shared
        probe.start(byDefault: true, always: true)
        let root = dir ?? (NSTemporaryDirectory() + "confab-bench-machine-\(getpid())")
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { if dir == nil { try? FileManager.default.removeItem(atPath: root) } }
        let cores = ProcessInfo.processInfo.activeProcessorCount
        var stages: [Stage] = []
        for (name, busy, syncing) in [
            ("idle", false, false), ("\(cores) busy threads", true, false),
            ("\(cores) busy threads + fdatasync loop", true, true),
        ] {
            Progress.log("stage: \(name), \(seconds) s")
            let stop = Flag()
            let done = DispatchGroup()
            if busy {
                for _ in 0..<cores { spawn(done) { Self.spin(until: stop) } }
            }
            let start = ProcessIO.nowNanos()
            // The disk probe's own loop (600-byte write + fdatasync on a preallocated file), run
            // for the stage's length; without it the stage just sleeps.
            let synced = Result {
                syncing ? try DiskSyncProbe(directory: root, seconds: seconds).run(syncers: 1).latency.count : nil
            }
            if !syncing {
                var ts = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
                nanosleep(&ts, nil)
            }
            let end = ProcessIO.nowNanos()
            stop.set()
            done.wait()
            stages.append(
                Stage(
                    name: name, stalls: probe.summary(from: start, to: end)!, seconds: Double(end - start) / 1e9,
                    syncs: Int(try synced.get() ?? 0)))
        }

        var out = "\nMachine stalls (a real-time thread woken more than 2 ms late), \(cores) cores\n"
        for s in stages {
            out += "  \(s.name.padding(toLength: 34, withPad: " ", startingAt: 0)) \(s.stalls.text)"
            if s.syncs > 0 { out += String(format: "; %.0f fdatasyncs/s", Double(s.syncs) / s.seconds) }
            out += "\n"
        }
        if let last = stages.last, last.syncs > 0, last.stalls.totalMs > 0 {
            // With a quota of `cores` CPUs per period, stalled time × cores is what the VM was
            // charged beyond its own threads' use.
            let micros = last.stalls.totalMs * 1000 * Double(cores) / Double(last.syncs)
            out += String(
                format:
                    "  if the host's quota is %d CPUs, each fdatasync cost the VM about %.0f µs of CPU (stalled time × cores ÷ syncs)\n",
                cores, micros)
        }
        if !(stages.first?.stalls.realtime ?? false) {
            out += "  note: the probe did not get SCHED_FIFO (not root?); busy stages then delay it too\n"
        }
        print(out)
        if let json {
            let doc: [String: Any] = [
                "cores": cores, "stage_seconds": seconds,
                "stages": stages.map {
                    [
                        "name": $0.name, "seconds": $0.seconds, "fdatasyncs": $0.syncs,
                        "machine_stalls": $0.stalls.json,
                    ] as [String: Any]
                },
            ]
            try JSONSerialization.data(withJSONObject: doc, options: [.prettyPrinted, .sortedKeys]).write(
                to: URL(fileURLWithPath: json))
            Progress.log("wrote \(json)")
        }
    }

    private func spawn(_ group: DispatchGroup, _ body: @escaping @Sendable () -> Void) {
        group.enter()
        Thread {
            body()
            group.leave()
        }.start()
    }

    private static func spin(until stop: Flag) {
        var x: UInt64 = 1
        while !stop.isSet {
            for _ in 0..<10_000 { x = x &* 6_364_136_223_846_793_005 &+ 1 }
        }
        if x == 42 { print("") }
    }

    final class Flag: @unchecked Sendable {
        private let lock = NSLock()
        private var value = false
        var isSet: Bool { lock.withLock { value } }
        func set() { lock.withLock { value = true } }
    }
}

import ConfabEngine
import Foundation
import Testing

/// In-process power-loss rounds (LevelDB `fault_injection_test` style): the engine runs on a
/// `FaultInjectingFileSystem`; writer threads record what was acknowledged; at a seeded random
/// moment the file system crashes and loses everything not covered by a sync, the old engine is
/// abandoned without `close()`, and a new engine recovers from what a rebooted machine would see.
@Suite("Power loss", .serialized)
struct PowerLossTests {
    static let rounds = 6
    static let writers = 4

    @Test(arguments: [SyncMode.batch, .group, .periodic(milliseconds: 20)])
    func powerLossRounds(mode: SyncMode) throws {
        try runPowerLossRounds(mode: mode, outOfOrderWriteback: false)
    }

    /// The same, with a disk whose writeback had persisted a random subset of the unsynced pages
    /// of every file (later pages before earlier ones): recovery must still open, cut the WAL at
    /// its unsynced tail, and keep every acknowledged write.
    @Test(arguments: [SyncMode.batch, .group, .periodic(milliseconds: 20)])
    func powerLossRoundsWithOutOfOrderWriteback(mode: SyncMode) throws {
        try runPowerLossRounds(mode: mode, outOfOrderWriteback: true)
    }

    func runPowerLossRounds(mode: SyncMode, outOfOrderWriteback: Bool) throws {
        let name = outOfOrderWriteback ? "powerLossRoundsWithOutOfOrderWriteback" : "powerLossRounds"
        let seed = testSeed("PowerLossTests.\(name)(\(mode))")
        var rng = SplitMix64(seed: seed)
        let dir = try TestDirectory(prefix: "powerloss")
        var dataDir = dir.file("data-0")
        var history = WriteHistory()
        var totalAcked = 0
        var totalLost = 0
        let started = Date()

        for round in 0..<Self.rounds {
            let context = "mode \(mode), seed \(seed), round \(round)"
            let fs = try FaultInjectingFileSystem(root: dir.path)
            let engine = try StorageEngine.open(directory: dataDir, options: crashTestOptions(mode, fileSystem: fs))
            let run = WriterRun(engine: engine, start: Int64(round + 1) * 100_000_000, writers: Self.writers)
            run.start()
            Thread.sleep(forTimeInterval: Double(Int.random(in: 30...400, using: &rng)) / 1000)
            fs.crash()
            let stopped = run.waitForWriters(timeout: 20)
            if !stopped {
                Issue.record(
                    "\(context): writer threads still blocked in write() 20 s after the file system died (engine hangs on I/O errors)"
                )
            }
            // Any error is allowed after the crash, as long as the engine did not trap; count them.
            let codes = Dictionary(grouping: run.errors(), by: { "\($0.code)" }).mapValues(\.count)
            if round == 0 {
                print(
                    "\(context): writes failed after the crash with \(codes) (e.g. \(run.errors().first.map { "\($0)" } ?? "none"))"
                )
            }
            history.addRun(
                acked: run.acknowledgedPerWriter(), inFlight: run.inFlightPerWriter(), failed: run.failedPerWriter())
            totalAcked += run.acknowledgedPerWriter().joined().count
            // Power loss; the old engine and its threads are abandoned (they still hold its LOCK).
            dataDir = try powerLoss(
                fs, dataDir: dataDir, next: dir.file("data-\(round + 1)"), abandoning: engine,
                unsynced: outOfOrderWriteback ? .randomPages(seed: seed &+ UInt64(round)) : .dropped)

            let fresh = try FaultInjectingFileSystem(root: dir.path)
            let recovered: StorageEngine
            do {
                recovered = try StorageEngine.open(
                    directory: dataDir, options: crashTestOptions(mode, fileSystem: fresh))
            } catch {
                Issue.record("\(context): recovery after power loss failed: \(error)")
                return
            }
            let (found, readProblems) = try readAllMessages(recovered)
            let (problems, lost) = history.verify(found, durableAcks: mode.acknowledgesDurably)
            totalLost += lost
            try recovered.close()
            recordProblems(readProblems + problems, context: context)
            if !(readProblems + problems).isEmpty { return }
            if !stopped { return }
        }
        print(
            "PowerLossTests.\(name)(\(mode)): \(Self.rounds) rounds, \(totalAcked) acknowledged, \(totalLost) acknowledged-but-lost, "
                + "\(history.recovered.count) rows recovered, "
                + String(format: "%.1f s", Date().timeIntervalSince(started)))
    }

    /// ENOSPC in the middle of a run: writes fail with `.diskFull` (not a trap, not a vague error),
    /// and after the disk has room again and the machine loses power, nothing acknowledged is lost
    /// — including writes acknowledged after the disk-full episode, which a WAL that kept appending
    /// after a torn record would lose.
    @Test(arguments: [SyncMode.batch, .group])
    func diskFullMidRun(mode: SyncMode) throws {
        let seed = testSeed("PowerLossTests.diskFullMidRun(\(mode))")
        var rng = SplitMix64(seed: seed)
        let dir = try TestDirectory(prefix: "diskfull")
        let dataDir = dir.file("data")
        let context = "mode \(mode), seed \(seed)"
        let fs = try FaultInjectingFileSystem(root: dir.path)
        let engine = try StorageEngine.open(directory: dataDir, options: crashTestOptions(mode, fileSystem: fs))

        let run = WriterRun(engine: engine, start: 100_000_000, writers: Self.writers, continueAfterErrors: true)
        run.start()
        Thread.sleep(forTimeInterval: Double(Int.random(in: 50...300, using: &rng)) / 1000)
        let budget = Int.random(in: 10_000...400_000, using: &rng)
        fs.failWrites(afterBytes: budget)
        // Let every writer run into the full disk.
        let deadline = Date().addingTimeInterval(20)
        while run.errors().count < Self.writers * 3 && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        let errorsWhileFull = run.errors()
        #expect(errorsWhileFull.count >= Self.writers, "\(context): writes kept succeeding on a full disk")
        let vague = errorsWhileFull.filter { $0.code != .diskFull }
        #expect(
            vague.isEmpty,
            "\(context): writes on a full disk failed with other codes than .diskFull: \(vague.prefix(3))")
        if let first = errorsWhileFull.first {
            #expect(first.code == .diskFull, "\(context): first error on a full disk: \(first)")
        }

        // Free space: the engine may recover or stay failed; either way nothing acknowledged may be lost.
        fs.clearWriteFailures()
        let ackedBefore = run.acknowledgedPerWriter().joined().count
        let errorsBefore = run.errors().count
        // Let the writers try the freed disk: wait until one more write was acknowledged or failed
        // (the engine may recover or stay fail-stopped).
        let retryDeadline = Date().addingTimeInterval(20)
        while run.acknowledgedPerWriter().joined().count == ackedBefore && run.errors().count == errorsBefore
            && Date() < retryDeadline
        {
            Thread.sleep(forTimeInterval: 0.005)
        }
        run.stop()
        #expect(run.waitForWriters(timeout: 20), "\(context): writers blocked after disk-full")
        let ackedAfter = run.acknowledgedPerWriter().joined().count
        print(
            "\(context): budget \(budget) bytes; \(ackedBefore) acknowledged before freeing space, \(ackedAfter - ackedBefore) after; "
                + "\(errorsWhileFull.count) errors while full, \(run.errors().count - errorsWhileFull.count) after")
        do { try engine.close() } catch { print("\(context): close after disk-full: \(error)") }

        var history = WriteHistory()
        history.addRun(
            acked: run.acknowledgedPerWriter(), inFlight: run.inFlightPerWriter(), failed: run.failedPerWriter())
        let rebooted = try powerLoss(fs, dataDir: dataDir, next: dir.file("data-rebooted"), abandoning: engine)
        let recovered = try StorageEngine.open(
            directory: rebooted,
            options: crashTestOptions(mode, fileSystem: try FaultInjectingFileSystem(root: dir.path)))
        defer { try? recovered.close() }
        let (found, readProblems) = try readAllMessages(recovered)
        let (problems, _) = history.verify(found, durableAcks: true)
        recordProblems(readProblems + problems, context: context)
    }

    /// EIO from fdatasync of the log: the write that needed it must fail, not be acknowledged, and
    /// nothing acknowledged before may be lost.
    @Test func walSyncFailureIsNotAcknowledged() throws {
        let dir = try TestDirectory(prefix: "synceio")
        let dataDir = dir.file("data")
        let fs = try FaultInjectingFileSystem(root: dir.path)
        let engine = try StorageEngine.open(directory: dataDir, options: crashTestOptions(.batch, fileSystem: fs))
        var acked: [Int64] = []
        for id in Int64(1)...50 {
            try engine.write(CrashWorkload.mutation(id))
            acked.append(id)
        }
        fs.failSyncs(count: 1)
        var failedIds: [Int64] = []
        do {
            try engine.write(CrashWorkload.mutation(51))
            acked.append(51)
            Issue.record("a write whose fdatasync failed was acknowledged")
        } catch let e as StorageError {
            failedIds.append(51)
            #expect(e.code == .io, "\(e)")
        }
        let rebooted = try powerLoss(fs, dataDir: dataDir, next: dir.file("data-rebooted"), abandoning: engine)
        let recovered = try StorageEngine.open(
            directory: rebooted,
            options: crashTestOptions(.batch, fileSystem: try FaultInjectingFileSystem(root: dir.path)))
        defer { try? recovered.close() }
        var history = WriteHistory()
        history.addRun(acked: [acked], inFlight: [nil], failed: [failedIds])
        let (found, readProblems) = try readAllMessages(recovered)
        let (problems, _) = history.verify(found, durableAcks: true)
        recordProblems(readProblems + problems, context: "fdatasync EIO")
    }
}

extension PowerLossTests {
    /// Crash + power loss at every single disk-changing step of a flush (and of a major
    /// compaction), one fresh directory per step: whatever step the machine dies at, every
    /// acknowledged write is there after recovery. This covers the windows a random kill rarely
    /// hits, such as the first flush's SSTable being durable before any MANIFEST is.
    @Test(arguments: ["flush", "compact"])
    func crashAtEveryStep(of operation: String) throws {
        var failing: [Int] = []
        var k = 1
        while true {
            let scenario = try CrashPointScenario(operation: operation)
            scenario.fs.startTrace()
            scenario.fs.crash(afterOperations: k)
            let crashed: Bool
            do {
                try scenario.runStep()
                crashed = scenario.fs.isCrashed
            } catch {
                crashed = true
            }
            if !crashed { break }  // the step finished before disk operation k: all points covered
            let problems = try scenario.recoverAndVerify()
            if !problems.isEmpty {
                failing.append(k)
                // Name the operation the crash prevented and the ones just before it.
                let trace = scenario.fs.operationTrace.map {
                    $0.replacingOccurrences(of: scenario.dir.path + "/", with: "")
                }
                let steps = trace.suffix(4).joined(separator: "; ")
                recordProblems(
                    problems, context: "\(operation), crash before disk operation \(k) [\(steps) ← not done]",
                    limit: failing.count <= 3 ? 3 : 0)
            }
            k += 1
            if k > 500 {
                Issue.record("\(operation) never finished")
                break
            }
        }
        print("PowerLossTests.crashAtEveryStep(\(operation)): \(k - 1) crash points, failing at \(failing)")
    }
}

/// An engine with acknowledged data and one step (flush or major compaction) about to run.
struct CrashPointScenario {
    let dir: TestDirectory
    let fs: FaultInjectingFileSystem
    let engine: StorageEngine
    let options: EngineOptions
    let operation: String
    let acked: [Int64]

    init(operation: String) throws {
        self.operation = operation
        dir = try TestDirectory(prefix: "crashpoint")
        fs = try FaultInjectingFileSystem(root: dir.path)
        var options = crashTestOptions(.batch, fileSystem: fs)
        options.backgroundWork = false
        options.memtableBytes = 64 << 20
        options.compaction.minThreshold = 2
        self.options = options
        engine = try StorageEngine.open(directory: dir.file("data"), options: options)
        var acked: [Int64] = []
        for round in 0..<(operation == "compact" ? 4 : 1) {
            for _ in 0..<60 {
                let id = Int64(acked.count + 1)
                try engine.write(CrashWorkload.mutation(id))
                acked.append(id)
            }
            if operation == "compact" && round < 3 { try engine.flush() }
        }
        self.acked = acked
    }

    func runStep() throws {
        if operation == "compact" { try engine.compact() } else { try engine.flush() }
    }

    func recoverAndVerify() throws -> [String] {
        let rebooted = try powerLoss(fs, dataDir: dir.file("data"), next: dir.file("rebooted"), abandoning: engine)
        var recoveredOptions = options
        recoveredOptions.fileSystem = try FaultInjectingFileSystem(root: dir.path)
        let recovered: StorageEngine
        do {
            recovered = try StorageEngine.open(directory: rebooted, options: recoveredOptions)
        } catch {
            return ["recovery failed: \(error)"]
        }
        defer { try? recovered.close() }
        var history = WriteHistory()
        history.addRun(acked: [acked], inFlight: [nil])
        let (found, readProblems) = try readAllMessages(recovered)
        return readProblems + history.verify(found, durableAcks: true).problems
    }
}

extension PowerLossTests {
    /// The harness can fail: on a disk that ignores syncs, a power loss must lose acknowledged
    /// writes and the same verification must say so.
    @Test func verificationCatchesLostAcknowledgedWrites() throws {
        let dir = try TestDirectory(prefix: "lyingdisk")
        let fs = try FaultInjectingFileSystem(root: dir.path)
        let engine = try StorageEngine.open(
            directory: dir.file("data"), options: crashTestOptions(.group, fileSystem: fs))
        fs.makeSyncsNoOps()
        let run = WriterRun(engine: engine, start: 1_000, writers: 2)
        run.start()
        // Crash once enough writes were acknowledged that losing them must show.
        let deadline = Date().addingTimeInterval(20)
        while run.acknowledgedPerWriter().joined().count < 200 && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.005)
        }
        #expect(run.acknowledgedPerWriter().joined().count >= 200, "the writers acknowledged too little to test with")
        fs.crash()
        #expect(run.waitForWriters(timeout: 20))
        var history = WriteHistory()
        history.addRun(
            acked: run.acknowledgedPerWriter(), inFlight: run.inFlightPerWriter(), failed: run.failedPerWriter())
        let rebooted = try powerLoss(fs, dataDir: dir.file("data"), next: dir.file("rebooted"), abandoning: engine)
        let recovered = try StorageEngine.open(
            directory: rebooted,
            options: crashTestOptions(.group, fileSystem: try FaultInjectingFileSystem(root: dir.path)))
        defer { try? recovered.close() }
        let (found, _) = try readAllMessages(recovered)
        let (problems, lost) = history.verify(found, durableAcks: true)
        #expect(run.acknowledgedPerWriter().joined().count > 0)
        #expect(lost > 0 && !problems.isEmpty, "a disk that drops every sync lost nothing?")
    }
}

/// Simulates a power loss on `fs` and returns where the rebooted machine's copy of `dataDir` is.
///
/// The abandoned engine cannot be killed in-process: its background threads keep it alive, and
/// with it the flock on `LOCK` that a dead process would have dropped. So the durable state is
/// copied to `next` (with its `LOCK` file, unlocked) and recovery runs there.
func powerLoss(
    _ fs: FaultInjectingFileSystem, dataDir: String, next: String, abandoning engine: StorageEngine,
    unsynced: FaultInjectingFileSystem.UnsyncedData = .dropped
) throws -> String {
    try fs.simulatePowerLoss(unsynced: unsynced)
    // Stop the dead engine's threads (its file system refuses every call, so nothing more is
    // written); the copy below still stands in for what a rebooted machine sees.
    try? engine.close()
    try FileManager.default.copyItem(atPath: dataDir, toPath: next)
    return next
}

/// Writer threads on an in-process engine, writing `CrashWorkload` ids (writer w: start + w + N·i)
/// and recording which were acknowledged, which failed, and which was in flight.
final class WriterRun: @unchecked Sendable {
    let engine: StorageEngine
    let firstId: Int64
    let writers: Int
    let continueAfterErrors: Bool
    private struct State {
        var acked: [[Int64]]
        var failed: [[Int64]]
        var inFlight: [Int64?]
        var errors: [StorageError] = []
        var stop = false
    }
    private let state: Locked<State>
    private let group = DispatchGroup()

    init(engine: StorageEngine, start: Int64, writers: Int, continueAfterErrors: Bool = false) {
        self.engine = engine
        self.firstId = start
        self.writers = writers
        self.continueAfterErrors = continueAfterErrors
        state = Locked(
            State(
                acked: Array(repeating: [], count: writers), failed: Array(repeating: [], count: writers),
                inFlight: Array(repeating: nil, count: writers)))
    }

    func start() {
        for w in 0..<writers {
            group.enter()
            Thread { [self] in
                var index = 0
                while !state.withLock({ $0.stop }) {
                    let id = CrashWorkload.id(start: firstId, writers: writers, writer: w, index: index)
                    state.withLock { $0.inFlight[w] = id }
                    do {
                        try engine.write(CrashWorkload.mutation(id))
                        state.withLock {
                            $0.acked[w].append(id)
                            $0.inFlight[w] = nil
                        }
                    } catch {
                        let e = error as? StorageError ?? StorageError(.io, "non-StorageError: \(error)")
                        state.withLock {
                            $0.failed[w].append(id)
                            $0.inFlight[w] = nil
                            $0.errors.append(e)
                        }
                        if !continueAfterErrors { break }
                        Thread.sleep(forTimeInterval: 0.002)
                    }
                    index += 1
                }
                group.leave()
            }.start()
        }
    }

    func stop() { state.withLock { $0.stop = true } }

    func waitForWriters(timeout: Double) -> Bool {
        group.wait(timeout: .now() + timeout) == .success
    }

    func acknowledgedPerWriter() -> [[Int64]] { state.current.acked }
    func failedPerWriter() -> [[Int64]] { state.current.failed }
    func inFlightPerWriter() -> [Int64?] { state.current.inFlight }
    func errors() -> [StorageError] { state.current.errors }
}

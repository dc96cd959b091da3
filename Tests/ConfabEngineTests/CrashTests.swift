import ConfabEngine
import Foundation
import Testing

/// Kill loops with real processes (RocksDB `db_crashtest.py` style): a `confab-crash-writer`
/// child writes from several threads and prints every acknowledged id; the test SIGKILLs it at a
/// seeded random moment, recovers the directory in-process and checks the recovered data against
/// the acknowledged ids. The next child continues on the same directory, so recovery of recovered
/// data (and crashes during recovery itself) is exercised.
///
/// A process kill keeps the page cache, so even `periodic` loses nothing that reached `write(2)`;
/// what it checks there is the weaker promise (a prefix per writer, no holes).
@Suite("Crash tests (SIGKILL loops)", .serialized)
struct CrashTests {
    static let cyclesPerMode = 12
    static let writers = 4

    @Test(arguments: ["batch", "group", "periodic:20"])
    func killLoop(mode: String) throws {
        let syncMode = try #require(SyncMode(parsing: mode))
        let binary = try #require(Self.crashWriterBinary(), "confab-crash-writer was not found next to the test bundle")
        let seed = testSeed("CrashTests.killLoop(\(mode))")
        var rng = SplitMix64(seed: seed)
        let dir = try TestDirectory(prefix: "crash-\(mode.replacingOccurrences(of: ":", with: "-"))")
        let dataDir = dir.file("data")
        var history = WriteHistory()
        let started = Date()
        var totalAcked = 0
        var totalLost = 0
        var earlyKills = 0

        for cycle in 0..<Self.cyclesPerMode {
            let context = "mode \(mode), seed \(seed), cycle \(cycle)"
            let start = Int64(cycle + 1) * 100_000_000
            let child = try CrashWriterProcess(
                binary: binary, dataDir: dataDir, mode: mode, writers: Self.writers, startId: start,
                stderrPath: dir.file("child-\(cycle).stderr"))
            defer { child.killAndWait() }

            // Mostly kill while writes stream; sometimes right after start, during recovery.
            if Int.random(in: 0..<5, using: &rng) == 0 {
                earlyKills += 1
                Thread.sleep(forTimeInterval: Double(Int.random(in: 0...150, using: &rng)) / 1000)
            } else {
                guard child.waitForFirstAck(timeout: 60) else {
                    Issue.record("\(context): no acknowledgement within 60 s; child stderr: \(child.stderr())")
                    return
                }
                Thread.sleep(forTimeInterval: Double(Int.random(in: 50...600, using: &rng)) / 1000)
            }
            child.killAndWait()
            if let problem = child.unexpectedExit() {
                Issue.record("\(context): \(problem); child stderr: \(child.stderr())")
                return
            }

            // Per writer: its acknowledged ids in order, and the one it may have had in flight.
            let acks = child.acknowledged()
            var perWriter = Array(repeating: [Int64](), count: Self.writers)
            for id in acks { perWriter[Int((id - start) % Int64(Self.writers))].append(id) }
            var inFlight: [Int64?] = []
            for w in 0..<Self.writers {
                let next = perWriter[w].count
                let expectedOrder = (0..<next).map {
                    CrashWorkload.id(start: start, writers: Self.writers, writer: w, index: $0)
                }
                if perWriter[w] != expectedOrder {
                    Issue.record("\(context): writer \(w) acknowledged ids out of order: \(perWriter[w].prefix(20))")
                }
                inFlight.append(CrashWorkload.id(start: start, writers: Self.writers, writer: w, index: next))
            }
            history.addRun(acked: perWriter, inFlight: inFlight)
            totalAcked += acks.count

            // Recover in-process and check.
            let engine: StorageEngine
            do {
                engine = try StorageEngine.open(directory: dataDir, options: crashTestOptions(syncMode))
            } catch {
                Issue.record("\(context): recovery failed after \(acks.count) acknowledged writes: \(error)")
                return
            }
            let (found, readProblems) = try readAllMessages(engine)
            let (problems, lost) = history.verify(found, durableAcks: syncMode.acknowledgesDurably)
            totalLost += lost
            try engine.close()
            recordProblems(readProblems + problems, context: context + " (\(acks.count) acknowledged this cycle)")
            if !(readProblems + problems).isEmpty { return }
        }
        let elapsed = Date().timeIntervalSince(started)
        print(
            "CrashTests.killLoop(\(mode)): \(Self.cyclesPerMode) kill cycles (\(earlyKills) early), \(totalAcked) acknowledged writes, "
                + "\(totalLost) acknowledged-but-lost (allowed only in periodic), \(history.recovered.count) rows recovered, "
                + String(format: "%.1f s", elapsed))
    }

    /// The sanity check of the harness itself: a child that runs to completion exits cleanly and
    /// everything it acknowledged is there.
    @Test func cleanExitKeepsEverything() throws {
        let binary = try #require(Self.crashWriterBinary())
        let dir = try TestDirectory(prefix: "crash-clean")
        let child = try CrashWriterProcess(
            binary: binary, dataDir: dir.file("data"), mode: "group", writers: 2, startId: 1_000,
            stderrPath: dir.file("child.stderr"), extraArguments: ["--limit", "150"])
        defer { child.killAndWait() }
        child.waitForExit()
        #expect(child.process.terminationReason == .exit && child.process.terminationStatus == 0, "\(child.stderr())")
        let acks = child.acknowledged()
        #expect(acks.count == 300)
        let engine = try StorageEngine.open(directory: dir.file("data"), options: crashTestOptions(.group))
        defer { try? engine.close() }
        let (found, readProblems) = try readAllMessages(engine)
        var history = WriteHistory()
        var perWriter: [[Int64]] = [[], []]
        for id in acks { perWriter[Int((id - 1_000) % 2)].append(id) }
        history.addRun(acked: perWriter, inFlight: [nil, nil])
        let (problems, _) = history.verify(found, durableAcks: true)
        recordProblems(readProblems + problems, context: "clean exit")
        #expect(found.count == 300)
    }

    /// The test-only `confab-crash-writer` built with the tests, next to the test bundle.
    static func crashWriterBinary() -> String? { builtExecutablePath(named: "confab-crash-writer") }
}

/// A running `confab-crash-writer` and the ids it has acknowledged so far.
final class CrashWriterProcess: @unchecked Sendable {
    let process = Process()
    private let stdout = Pipe()
    private let stderrPath: String
    private let state = Locked((acks: [Int64](), partial: [UInt8](), eof: false, garbage: [String]()))
    private let firstAck = DispatchSemaphore(value: 0)
    private let readerDone = DispatchSemaphore(value: 0)
    private var killed = false

    init(
        binary: String, dataDir: String, mode: String, writers: Int, startId: Int64, stderrPath: String,
        extraArguments: [String] = []
    ) throws {
        self.stderrPath = stderrPath
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments =
            [
                "--dir", dataDir, "--sync", mode,
                "--writers", "\(writers)", "--start-id", "\(startId)",
            ] + extraArguments
        process.standardOutput = stdout
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let handle = stdout.fileHandleForReading
        let thread = Thread { [self] in
            var signalled = false
            while true {
                let data = handle.availableData
                if data.isEmpty { break }
                let newAcks: Int = state.withLock { s in
                    s.partial += data
                    var count = 0
                    while let nl = s.partial.firstIndex(of: UInt8(ascii: "\n")) {
                        let line = String(decoding: s.partial[..<nl], as: UTF8.self)
                        s.partial.removeSubrange(...nl)
                        if let id = Int64(line) {
                            s.acks.append(id)
                            count += 1
                        } else {
                            s.garbage.append(line)
                        }
                    }
                    return count
                }
                if newAcks > 0 && !signalled {
                    signalled = true
                    firstAck.signal()
                }
            }
            state.withLock { $0.eof = true }
            readerDone.signal()
        }
        thread.start()
    }

    func waitForFirstAck(timeout: Double) -> Bool {
        firstAck.wait(timeout: .now() + timeout) == .success
    }

    /// SIGKILL (once) and wait for the process and for its stdout to drain.
    func killAndWait() {
        if !killed {
            killed = true
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        waitForExit()
    }

    func waitForExit() {
        process.waitUntilExit()
        if !state.current.eof { _ = readerDone.wait(timeout: .now() + 10) }
    }

    /// Every id the child printed, in print order (complete lines only).
    func acknowledged() -> [Int64] { state.current.acks }

    /// Why the child's end was not our SIGKILL, or nil.
    func unexpectedExit() -> String? {
        let garbage = state.current.garbage
        if !garbage.isEmpty { return "child printed unexpected lines: \(garbage.prefix(3))" }
        if process.terminationReason == .uncaughtSignal && process.terminationStatus == SIGKILL { return nil }
        return
            "child ended by itself before the kill (reason \(process.terminationReason.rawValue), status \(process.terminationStatus))"
    }

    func stderr() -> String {
        let text = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
        return text.isEmpty ? "(empty)" : String(text.suffix(2000))
    }
}

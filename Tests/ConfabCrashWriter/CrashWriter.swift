import ArgumentParser
import ConfabEngine
import ConfabTestSupport
import Foundation

/// `confab-crash-writer` (test-only, not shipped): writes `CrashWorkload` messages from N threads until killed, and
/// prints each id on its own stdout line only after `write` returned for it (one `write(2)` per
/// line, unbuffered), so the line is the acknowledgement a killing test may rely on.
///
/// Writer `w` writes ids `start + w`, `start + w + N`, `start + w + 2N`, …, one at a time, so a
/// verifier knows for every id which writer wrote it and that at most one id per writer was in
/// flight when the process died.
@main
struct CrashWriter: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "confab-crash-writer",
        abstract: "Write test messages from many threads, printing acknowledged ids, until killed.")

    @Option(help: "Engine data directory.")
    var dir: String

    @Option(help: "batch, group, periodic or periodic:MS.")
    var sync: String = "group"

    @Option(help: "Writer threads.")
    var writers: Int = 4

    @Option(name: .customLong("start-id"), help: "First message id.")
    var startId: Int64 = 0

    @Option(name: .customLong("memtable-bytes"), help: "Memtable size; small, so flushes and compactions run.")
    var memtableBytes: Int = 256 << 10

    @Option(name: .customLong("wal-segment-bytes"), help: "WAL segment size; small, so segments roll.")
    var walSegmentBytes: Int = 1 << 20

    @Option(help: "Stop after this many writes per writer (default: never).")
    var limit: Int?

    func validate() throws {
        guard SyncMode(parsing: sync) != nil else { throw ValidationError("unknown sync mode \(sync)") }
        guard writers > 0 else { throw ValidationError("--writers must be positive") }
    }

    func run() throws {
        var options = EngineOptions()
        options.syncMode = SyncMode(parsing: sync)!
        options.memtableBytes = memtableBytes
        options.walSegmentBytes = walSegmentBytes
        let engine = try StorageEngine.open(directory: dir, options: options)
        let done = DispatchGroup()
        for w in 0..<writers {
            done.enter()
            let thread = Thread { [writers, startId, limit] in
                var index = 0
                while limit.map({ index < $0 }) ?? true {
                    let id = CrashWorkload.id(start: startId, writers: writers, writer: w, index: index)
                    do {
                        try engine.write(CrashWorkload.mutation(id))
                    } catch {
                        FileHandle.standardError.write(Data("writer \(w): write of id \(id) failed: \(error)\n".utf8))
                        Foundation.exit(3)
                    }
                    FileHandle.standardOutput.write(Data("\(id)\n".utf8))
                    index += 1
                }
                done.leave()
            }
            thread.start()
        }
        done.wait()
        try engine.close()
    }
}

import ConfabEngine
import Foundation
import Testing

/// A fresh directory per test (named with a UUID), removed at the end.
final class TestDirectory: Sendable {
    let path: String
    init(prefix: String) throws {
        path = FileManager.default.temporaryDirectory.path + "/confab-\(prefix)-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    func file(_ name: String) -> String { path + "/" + name }
}

/// A thread-safe counter for tests.
final class LockedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func add(_ n: Int = 1) { lock.withLock { count += n } }
    var value: Int { lock.withLock { count } }
}

/// A value shared between test threads.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func withLock<T>(_ body: (inout Value) throws -> T) rethrows -> T {
        try lock.withLock { try body(&value) }
    }
    var current: Value { lock.withLock { value } }
}

/// Everything the writers did across the runs (processes or in-process rounds) on one directory,
/// the model a recovered engine is checked against.
struct WriteHistory {
    /// One writer thread's sequence in one run: ids in the order the thread attempted them.
    struct Writer {
        var attempted: [Int64] = []
        var acknowledged: Set<Int64> = []
    }
    var writers: [Writer] = []
    var acknowledged: Set<Int64> = []
    var attempted: Set<Int64> = []
    /// Ids seen by an earlier verification: recovered data must stay recovered.
    var recovered: Set<Int64> = []

    /// Adds a run: `acked[w]` lists writer w's acknowledged ids in order; `inFlight[w]` the id it may
    /// have been writing when the run ended (attempted, not acknowledged).
    mutating func addRun(acked: [[Int64]], inFlight: [Int64?], failed: [[Int64]] = []) {
        for w in 0..<acked.count {
            var writer = Writer()
            let all = (acked[w] + (w < failed.count ? failed[w] : []) + [inFlight[w]].compactMap { $0 }).sorted()
            writer.attempted = all
            writer.acknowledged = Set(acked[w])
            writers.append(writer)
            acknowledged.formUnion(acked[w])
            attempted.formUnion(all)
        }
    }

    /// Checks a recovered engine's contents. Always: every row is a message that was attempted,
    /// with exactly its content; everything recovered before is still there; each writer's
    /// surviving ids are a prefix of what it attempted (no holes). With `durableAcks` (batch,
    /// group), every acknowledged id is present. Returns the problems found and how many
    /// acknowledged ids were lost (allowed only without `durableAcks`).
    mutating func verify(_ found: [Int64: TestMessages.Message], durableAcks: Bool) -> (
        problems: [String], lostAcked: Int
    ) {
        var problems: [String] = []
        for (id, message) in found.sorted(by: { $0.key < $1.key }) {
            if !attempted.contains(id) {
                problems.append("id \(id) was read back but never written")
            } else if let wrong = CrashWorkload.mismatch(
                messageId: message.messageId, timestamp: message.timestamp, sender: message.sender,
                body: message.body, id: id)
            {
                problems.append("id \(id) has wrong content: \(wrong)")
            }
        }
        let missingRecovered = recovered.subtracting(found.keys).sorted()
        if !missingRecovered.isEmpty {
            problems.append(
                "\(missingRecovered.count) ids recovered by an earlier restart are gone again, e.g. \(missingRecovered.prefix(10))"
            )
        }
        let lost = acknowledged.subtracting(found.keys).sorted()
        if durableAcks && !lost.isEmpty {
            problems.append("\(lost.count) acknowledged ids are missing, e.g. \(lost.prefix(10))")
        }
        for (w, writer) in writers.enumerated() {
            // No holes: once an id is missing, no later id of the same writer may be present.
            // Ids that failed with an error are excluded (an engine may or may not keep them).
            let considered = writer.attempted.filter { writer.acknowledged.contains($0) || found[$0] != nil }
            if let gap = considered.firstIndex(where: { found[$0] == nil }),
                let after = considered[gap...].first(where: { found[$0] != nil })
            {
                problems.append(
                    "writer run \(w): id \(considered[gap]) is missing but the later id \(after) survived (a hole)")
            }
        }
        recovered.formUnion(found.keys)
        return (problems, lost.count)
    }
}

/// Reads every message of the crash workload's partitions, by id. Rows that are not workload
/// messages are reported as problems.
func readAllMessages(_ engine: StorageEngine) throws -> (messages: [Int64: TestMessages.Message], problems: [String]) {
    var messages: [Int64: TestMessages.Message] = [:]
    var problems: [String] = []
    for chat in 0..<CrashWorkload.partitions {
        var query = TestMessages.latest(chatId: chat, limit: 1000)
        while true {
            let result = try engine.read(query)
            for row in result.rows {
                guard let message = TestMessages.message(from: row),
                    let id = CrashWorkload.id(fromMessageId: message.messageId)
                else {
                    problems.append("partition \(chat): undecodable row \(ClusteringKey.describe(row.clustering))")
                    continue
                }
                if CrashWorkload.chatId(id) != chat { problems.append("id \(id) read from partition \(chat)") }
                if messages[id] != nil { problems.append("id \(id) returned twice") }
                messages[id] = message
            }
            guard let cursor = result.cursor, !result.rows.isEmpty else { break }
            query.cursor = cursor
        }
    }
    return (messages, problems)
}

/// Records at most `limit` problems as issues (a broken engine can produce thousands).
func recordProblems(
    _ problems: [String], context: String, limit: Int = 15,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    for p in problems.prefix(limit) {
        Issue.record("\(context): \(p)", sourceLocation: sourceLocation)
    }
    if limit > 0 && problems.count > limit {
        Issue.record("\(context): … and \(problems.count - limit) more problems", sourceLocation: sourceLocation)
    }
}

/// Engine options for crash runs: small memtables and WAL segments so flushes, compactions and
/// segment rolls happen during a short run.
func crashTestOptions(_ mode: SyncMode, fileSystem: any FileSystem = PosixFileSystem()) -> EngineOptions {
    var options = EngineOptions()
    options.syncMode = mode
    options.memtableBytes = 256 << 10
    options.walSegmentBytes = 1 << 20
    options.fileSystem = fileSystem
    return options
}

extension SyncMode {
    /// Whether an acknowledged write survives a crash or power loss in this mode.
    var acknowledgesDurably: Bool {
        if case .periodic = self { return false }
        return true
    }
}

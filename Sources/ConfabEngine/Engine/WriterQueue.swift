/// LevelDB's writer queue (db_impl.cc, `DBImpl::Write`) for threads that block: writers line up,
/// the one at the front leads, and the leader writes the whole line behind it as one group — one
/// pass through the write lock, one run of WAL appends, one wait for the sync and one run of
/// memtable inserts — then wakes each member it wrote, one by one, and hands the lead to the next
/// writer in line.
///
/// Why: with 64 threads each taking the write lock, the WAL's lock, the shared durability
/// condition (every sync woke all of them) and the memtable's lock per write, a 2-core machine
/// spent most of its time switching between threads that found a lock taken (perf of
/// `confab-bench storage --quick`, 64 writers: `finish_task_switch` 30% and futex calls 48% of the
/// writer threads' samples). Now a follower takes one lock, waits on its own condition and is
/// woken once.
final class WriterQueue: @unchecked Sendable {
    /// One blocked writer: its mutations, and how its group ended.
    final class Writer {
        let mutations: [Mutation]
        let payloads: [StorageEngine.Encoded]
        let bytes: Int
        var done = false
        var error: (any Error)?
        /// Made the first time this writer waits (under the queue's lock, before it first sleeps):
        /// a lone writer leads at once and never needs one, and a condition is two allocations and
        /// a pthread init per write. Whoever signals reads it under the lock, after the writer
        /// has waited (a writer that has not waited is checked under the lock before it does).
        var turn: BlockingCondition?

        init(_ mutations: [Mutation], _ payloads: [StorageEngine.Encoded]) {
            self.mutations = mutations
            self.payloads = payloads
            bytes = payloads.reduce(0) { $0 + $1.bytes.count }
        }
    }

    /// A group may grow to this many bytes (LevelDB: 1 MiB, less behind a small leader so a small
    /// write is not held behind a large group).
    static let maxGroupBytes = 1 << 20
    static let smallLeaderBytes = 128 << 10
    static let maxGroupWriters = 512

    /// Groups staged and not yet finished: one syncing and one queued behind it keep the disk
    /// busy; a third would only split the line into smaller groups that each wait for a sync.
    static let maxInFlight = 2

    private let lock = BlockingMutex()
    private var line: [Writer] = []
    private var head = 0
    private var inFlight = 0
    private var groups: UInt64 = 0
    private var grouped: UInt64 = 0

    /// Groups led so far, and writers written by them (grouped / groups is the mean group size).
    var counts: (groups: UInt64, writers: UInt64) { lock.withLock { (groups, grouped) } }

    /// Writers waiting in line for a group, and groups staged and not finished (for tests).
    var waiting: Int { lock.withLock { line.count - head } }
    var groupsInFlight: Int { lock.withLock { inFlight } }

    /// Writes this writer's mutations as part of a group, in line order with every other caller's;
    /// returns when that group is finished. The leader calls `stage` for the group's mutations and
    /// payloads (in line order; one leader at a time), hands the lead to the next writer in line,
    /// and then calls `finish` with what `stage` returned — so the next group stages (appends to
    /// the WAL) while this one waits for its fdatasync, and the log's sync thread finds the next
    /// group's records already queued when this sync returns. At most `maxInFlight` groups are
    /// staged and unfinished; the line behind them grows into the next group. An error of either
    /// step is every member's error.
    func write<Staged>(
        _ mutations: [Mutation], _ payloads: [StorageEngine.Encoded],
        stage: ([Mutation], [StorageEngine.Encoded]) throws -> Staged,
        finish: (Staged) throws -> Void
    ) throws {
        let me = Writer(mutations, payloads)
        lock.lock()
        line.append(me)
        while !me.done && !(head < line.count && line[head] === me && inFlight < Self.maxInFlight) {
            if me.turn == nil { me.turn = BlockingCondition(lock) }
            me.turn!.wait()
        }
        if me.done {
            lock.unlock()
            if let error = me.error { throw error }
            return
        }
        // The lead: take everyone in line up to the group limits.
        let limit = me.bytes <= Self.smallLeaderBytes ? me.bytes + Self.smallLeaderBytes : Self.maxGroupBytes
        var bytes = me.bytes
        var end = head + 1
        while end < line.count, end - head < Self.maxGroupWriters, bytes + line[end].bytes <= limit {
            bytes += line[end].bytes
            end += 1
        }
        // The members behind the leader (no array for a lone writer).
        let followers = end > head + 1 ? Array(line[(head + 1)..<end]) : []
        inFlight += 1
        lock.unlock()

        var failure: (any Error)?
        var staged: Staged?
        do {
            staged =
                followers.isEmpty
                ? try stage(mutations, payloads)
                : try stage(
                    mutations + followers.flatMap(\.mutations), payloads + followers.flatMap(\.payloads))
        } catch {
            failure = error
        }

        // Pass the lead on; signalled outside the lock, so the woken thread does not block on it.
        lock.lock()
        head = end
        var next: BlockingCondition?
        if head == line.count {
            line.removeAll(keepingCapacity: true)
            head = 0
        } else {
            if head > 1024 {
                line.removeFirst(head)
                head = 0
            }
            if inFlight < Self.maxInFlight { next = line[head].turn }
        }
        lock.unlock()
        next?.signal()

        if let staged {
            do { try finish(staged) } catch { failure = error }
        }

        lock.lock()
        groups += 1
        grouped += UInt64(1 + followers.count)
        inFlight -= 1
        for w in followers {
            w.error = failure
            w.done = true
        }
        // Every follower waited before this leader took it into the group, so each has its turn.
        let woken = followers.map { $0.turn }
        // The front of the line may have waited for this group to finish.
        let front = head < line.count ? line[head].turn : nil
        lock.unlock()
        for turn in woken { turn?.signal() }
        front?.signal()
        if let failure { throw failure }
    }
}

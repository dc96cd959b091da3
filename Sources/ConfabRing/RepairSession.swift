/// Anti-entropy repair of token ranges between their replicas, as Cassandra's `nodetool repair`:
/// for each range every replica builds a Merkle tree of its data there (validation); wherever two
/// trees differ, the differing sub-ranges are streamed both ways between that pair (sync). Only
/// differing ranges move, and streamed data carries its timestamps, so a sync is idempotent and
/// the replicas converge on the newest version of everything.
///
/// A pure state machine: the shell sends the tree requests and streams the actions ask for and
/// reports answers back; time comes in as `now`. Ranges are repaired one at a time, which bounds
/// memory to one range's trees.
package struct RepairSession: Sendable {
    package struct Task: Hashable, Sendable {
        package var range: TokenRange
        /// Every replica of the range; all must take part.
        package var replicas: [NodeID]

        package init(range: TokenRange, replicas: [NodeID]) {
            self.range = range
            self.replicas = replicas
        }
    }

    package enum Action: Hashable, Sendable {
        /// Ask `from` for its Merkle tree of `range` at `depth`; answer with `onTree`.
        case requestTree(from: NodeID, range: TokenRange, depth: Int)
        /// Stream `from`'s data in `ranges` to `to`; answer with `onStreamDone`.
        case stream(from: NodeID, to: NodeID, ranges: [TokenRange])
        case progress(Progress)
        case finished(Progress)
        case failed(RingError)
    }

    package struct Progress: Hashable, Sendable {
        package var rangesDone = 0
        package var rangesTotal = 0
        /// Ranges where at least two replicas' trees differed.
        package var rangesOutOfSync = 0
        /// Sub-ranges streamed (each direction counted).
        package var subrangesStreamed = 0
        package var streams = 0
        /// Rows the finished streams carried (as their receivers acknowledged them).
        package var rowsStreamed: UInt64 = 0

        package init() {}

        /// Share of the ranges done, 0...1 (1 for a session with nothing to compare).
        package var fraction: Double { rangesTotal == 0 ? 1 : Double(rangesDone) / Double(rangesTotal) }
    }

    package let depth: Int
    package let timeout: Duration
    private let tasks: [Task]
    private var index = 0
    private var trees: [NodeID: MerkleTree] = [:]
    private var pendingStreams: [StreamKey: Int] = [:]
    /// When the current range times out (its trees and streams all answered by then), or nil.
    package private(set) var deadline: RingInstant?
    private var progress = Progress()
    package private(set) var isFinished = false

    struct StreamKey: Hashable, Sendable {
        var from: NodeID
        var to: NodeID
    }

    package init(tasks: [Task], depth: Int = 10, timeout: Duration = .seconds(120)) {
        self.tasks = tasks.filter { $0.replicas.count >= 2 }
        self.depth = depth
        self.timeout = timeout
        progress.rangesTotal = self.tasks.count
    }

    package var currentRange: TokenRange? { index < tasks.count ? tasks[index].range : nil }

    package mutating func start(now: RingInstant) -> [Action] {
        beginTask(now: now)
    }

    private mutating func beginTask(now: RingInstant) -> [Action] {
        guard index < tasks.count else {
            isFinished = true
            return [.finished(progress)]
        }
        trees = [:]
        pendingStreams = [:]
        deadline = now + timeout
        let task = tasks[index]
        return task.replicas.map { .requestTree(from: $0, range: task.range, depth: depth) }
    }

    /// A replica's tree for the current range arrived.
    package mutating func onTree(_ tree: MerkleTree, from node: NodeID, now: RingInstant) -> [Action] {
        guard !isFinished, index < tasks.count else { return [] }
        let task = tasks[index]
        guard task.replicas.contains(node), tree.range == task.range, tree.depth == depth, trees[node] == nil else {
            return []
        }
        trees[node] = tree
        guard trees.count == task.replicas.count else { return [] }

        // Compare every pair; stream differing sub-ranges both ways.
        var actions: [Action] = []
        let replicas = task.replicas.sorted()
        for i in replicas.indices {
            for j in replicas.indices where j > i {
                let diff = MerkleTree.difference(trees[replicas[i]]!, trees[replicas[j]]!)
                guard !diff.isEmpty else { continue }
                for (a, b) in [(replicas[i], replicas[j]), (replicas[j], replicas[i])] {
                    pendingStreams[StreamKey(from: a, to: b)] = diff.count
                    actions.append(.stream(from: a, to: b, ranges: diff))
                    progress.subrangesStreamed += diff.count
                    progress.streams += 1
                }
            }
        }
        trees = [:]
        if actions.isEmpty { return finishTask(outOfSync: false, now: now) }
        progress.rangesOutOfSync += 1
        return actions
    }

    /// A stream the session asked for was applied by its receiver.
    /// `rows` is what the stream carried (counted in `Progress.rowsStreamed`).
    package mutating func onStreamDone(from: NodeID, to: NodeID, rows: UInt64 = 0, now: RingInstant) -> [Action] {
        guard !isFinished, pendingStreams.removeValue(forKey: StreamKey(from: from, to: to)) != nil else { return [] }
        progress.rowsStreamed += rows
        return pendingStreams.isEmpty ? finishTask(outOfSync: true, now: now) : []
    }

    private mutating func finishTask(outOfSync: Bool, now: RingInstant) -> [Action] {
        index += 1
        progress.rangesDone += 1
        return [.progress(progress)] + beginTask(now: now)
    }

    /// A replica could not answer (down, error): repair needs every replica, so the session fails.
    package mutating func onFailure(from node: NodeID, reason: String, now: RingInstant) -> [Action] {
        guard !isFinished, let range = currentRange else { return [] }
        isFinished = true
        return [
            .failed(
                RingError(
                    .unavailable,
                    "repair of range \(range) needs every replica, and \(node) failed: \(reason); bring it back and run repair again"
                ))
        ]
    }

    package mutating func onTick(now: RingInstant) -> [Action] {
        guard !isFinished, let deadline, now >= deadline, let range = currentRange else { return [] }
        isFinished = true
        let waiting =
            trees.count < tasks[index].replicas.count
            ? "Merkle trees from \(tasks[index].replicas.count - trees.count) replica(s)"
            : "\(pendingStreams.count) stream(s)"
        return [
            .failed(
                RingError(.readTimeout, "repair of range \(range) timed out after \(timeout) waiting for \(waiting)"))
        ]
    }
}

import Foundation

/// How many event-loop threads each of several nodes (or chat servers) on one machine gets.
///
/// Why: a node starts one event loop per core by default. Three such nodes on a 2-core machine
/// run six loops, and a request then wakes loops that are asleep on other threads more often than
/// it finds one awake; `confab-bench ring` measured the 3-node ring's closed-loop peak at 9.5–11.2k
/// QUORUM writes/s with one loop per node against 5.6–8.9k with two (2026-12-06). ccm runs
/// co-located Scylla nodes with `--smp 1` for the same reason.
public enum CoreShare {
    /// `cores / nodes`, at least 1; nil (the node's own default, one per core) for a lone node.
    public static func eventLoopThreads(nodes: Int, cores: Int = ProcessInfo.processInfo.activeProcessorCount)
        -> Int?
    {
        guard nodes > 1 else { return nil }
        return max(1, cores / nodes)
    }
}

/// When to sweep a map whose entries expire: once it holds more than `floor` entries and has
/// doubled since the last sweep. Each sweep is a pass over the map, so sweeping at most once per
/// doubling keeps the cost per insert constant however many entries are live.
///
/// Why: the maps this serves (rate-limit buckets, typing times, cached members) swept whenever
/// they held more than a fixed count. Once more entries than that were live — a busy server with
/// more than 10,000 users sending within one bucket's refill time — every insert swept the whole
/// map and kept everything, so each send cost a pass over every active user.
struct PruneSchedule: Sendable {
    let floor: Int
    private(set) var threshold: Int
    /// Sweeps so far (for tests).
    private(set) var sweeps = 0

    init(floor: Int) {
        self.floor = floor
        threshold = floor
    }

    func isDue(count: Int) -> Bool { count > threshold }

    /// Records a sweep that left `remaining` entries: the next waits until the map doubles.
    mutating func swept(remaining: Int) {
        sweeps += 1
        threshold = max(floor, 2 * remaining)
    }
}

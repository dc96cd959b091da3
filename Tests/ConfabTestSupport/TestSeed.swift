import Foundation

/// The seed of a randomized test: `CONFAB_SEED` when set (to replay a failure), else a fresh one.
/// With a name, prints the line that replays it. The one seed variable of the whole suite.
public func testSeed(_ name: String? = nil) -> UInt64 {
    let seed =
        ProcessInfo.processInfo.environment["CONFAB_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 1...UInt64.max)
    if let name { print("\(name): seed \(seed) (replay with CONFAB_SEED=\(seed))") }
    return seed
}

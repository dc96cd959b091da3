import Foundation

@testable import ConfabEngine

/// A fresh directory under the system temp dir, removed when the test is done with it.
final class TempDirectory: @unchecked Sendable {
    let path: String

    init(_ name: String = "confab") {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> String { joinPath(path, name) }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// SplitMix64: a tiny seeded generator so every randomized test replays from its printed seed.
struct SeededRandom: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A seed from CONFAB_SEED when set (to replay a failure), else a fresh one.
func testSeed() -> UInt64 {
    if let s = ProcessInfo.processInfo.environment["CONFAB_SEED"], let v = UInt64(s) { return v }
    return UInt64.random(in: 1...UInt64.max)
}

/// The built `confab` executable: test targets depend on it, so SwiftPM builds it next to the test
/// bundle (e.g. .build/debug/confab). `CONFAB_BINARY` overrides.
func confabExecutablePath() -> String? {
    if let path = ProcessInfo.processInfo.environment["CONFAB_BINARY"] { return path }
    var starts = [URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(), Bundle.main.bundleURL]
    starts += Bundle.allBundles.map(\.bundleURL)
    for start in starts {
        var dir = start.standardizedFileURL
        for _ in 0..<5 {
            let candidate = dir.appendingPathComponent("confab").path
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: candidate, isDirectory: &isDirectory), !isDirectory.boolValue,
                FileManager.default.isExecutableFile(atPath: candidate)
            {
                return candidate
            }
            dir = dir.deletingLastPathComponent()
        }
    }
    return nil
}

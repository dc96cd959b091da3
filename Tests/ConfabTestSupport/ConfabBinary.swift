import Foundation

/// The built `confab` executable: test targets depend on it, so SwiftPM builds it next to the test
/// bundle (e.g. .build/debug/confab). `CONFAB_BINARY` overrides.
public func confabExecutablePath() -> String? {
    if let path = ProcessInfo.processInfo.environment["CONFAB_BINARY"] { return path }
    return builtExecutablePath(named: "confab")
}

/// An executable product of this package built next to the test bundle (test targets depend on
/// the executables they run, so SwiftPM builds them): `confab`, or the test-only
/// `confab-crash-writer`.
public func builtExecutablePath(named name: String) -> String? {
    var starts = [URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(), Bundle.main.bundleURL]
    starts += Bundle.allBundles.map(\.bundleURL)
    for start in starts {
        var dir = start.standardizedFileURL
        for _ in 0..<5 {
            let candidate = dir.appendingPathComponent(name).path
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

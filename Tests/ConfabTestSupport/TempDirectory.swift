import Foundation

/// A fresh directory under the system temp dir, removed when the test is done with it.
public final class TempDirectory: Sendable {
    public let path: String

    public init(_ name: String = "confab") {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    /// `name` inside the directory.
    public func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

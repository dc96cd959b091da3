import ConfabTestSupport
import Foundation
import Testing

@testable import ConfabEngine

/// What a crash leaves behind is cleaned up at the next open, whatever moment it hit.
@Suite struct RecoveryLeftoversTests {
    /// A kill while a brand-new store wrote its first manifest leaves MANIFEST.tmp and no
    /// MANIFEST. Found by `CrashTests.killLoop` (an early kill in cycle 0): the open stored a new
    /// manifest (replacing that MANIFEST.tmp) and then tried to remove the MANIFEST.tmp from its
    /// earlier directory listing, failing with "remove failed: no such file or directory".
    @Test func aNewStoreKilledDuringItsFirstManifestWriteOpens() throws {
        let dir = TempDirectory("first-manifest")
        try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: dir.file(Manifest.tempName)))
        var o = EngineOptions()
        o.backgroundWork = false
        let engine = try StorageEngine.open(directory: dir.path, options: o)
        try engine.write(
            TestMessages.mutation(chatId: 1, timestamp: 1, messageId: "m", sender: "s", body: "b", writeTime: 1))
        try engine.close()
        #expect(!FileManager.default.fileExists(atPath: dir.file(Manifest.tempName)))
        #expect(FileManager.default.fileExists(atPath: dir.file(Manifest.fileName)))
    }
}

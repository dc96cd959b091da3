import Testing

@testable import ConfabEngine

@Suite struct ManifestTests {
    @Test func roundTripsAndReplacesAtomically() throws {
        let dir = TempDirectory("manifest")
        let fs = PosixFileSystem()
        var m = Manifest()
        m.nextFileNumber = 9
        m.logNumber = 4
        m.tables = [.init(fileNumber: 3, fileSize: 1234), .init(fileNumber: 8, fileSize: 5)]
        try m.store(directory: dir.path, fileSystem: fs)
        #expect(try Manifest.load(directory: dir.path, fileSystem: fs) == m)
        m.tables.removeFirst()
        try m.store(directory: dir.path, fileSystem: fs)
        #expect(try Manifest.load(directory: dir.path, fileSystem: fs) == m)
        #expect(!fs.fileExists(dir.file(Manifest.tempName)))
    }

    @Test func everyFlippedByteIsDetected() throws {
        var m = Manifest()
        m.tables = [.init(fileNumber: 3, fileSize: 1234)]
        let bytes = m.encoded()
        for i in 0..<bytes.count {
            var bad = bytes
            bad[i] ^= 0x40
            do {
                _ = try Manifest.decode(bad, path: "MANIFEST")
                Issue.record("flip at \(i) not detected")
            } catch let e as StorageError {
                #expect(e.code == .corruption || e.code == .unsupportedVersion)
                #expect(e.path == "MANIFEST")
            }
        }
    }
}

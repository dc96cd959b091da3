import Foundation
import Testing

@testable import ConfabEngine

/// Damaged files: every failure is `.corruption` naming the file and the damaged offset; nothing
/// wrong is ever returned and nothing crashes.
@Suite struct SSTableCorruptionTests {
    /// Writes a table of several blocks and returns its path, entries and layout.
    private func makeTable(_ dir: TempDirectory, compress: Bool = true) throws -> (
        String, [(key: [UInt8], value: [UInt8])], SSTableReader
    ) {
        let path = dir.file("5.sst")
        let entries = SSTableFixture.entries(partitions: 12, rows: { _ in 40 }, seed: 11)
        try SSTableFixture.write(entries, to: path, options: SSTableWriterOptions(blockBytes: 1024, compress: compress))
        return (path, entries, try SSTableFixture.open(path))
    }

    private func expectCorruption(
        path: String, offset: Int? = nil, _ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        do {
            try body()
            Issue.record("no error thrown", sourceLocation: sourceLocation)
        } catch let e as StorageError {
            #expect(e.code == .corruption, "\(e)", sourceLocation: sourceLocation)
            #expect(e.path == path, "\(e)", sourceLocation: sourceLocation)
            #expect(e.offset != nil, "\(e)", sourceLocation: sourceLocation)
            if let offset { #expect(e.offset == offset, "\(e)", sourceLocation: sourceLocation) }
        } catch {
            Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test(arguments: [true, false])
    func flippedDataByteIsReportedWithTheBlockOffset(compress: Bool) throws {
        let dir = TempDirectory("sstable-corrupt")
        let (path, entries, original) = try makeTable(dir, compress: compress)
        let victim = 2
        let handle = original.index.handles[victim]
        try SSTableFixture.flipByte(path, at: Int(handle.offset) + Int(handle.size) / 2)
        let reader = try SSTableFixture.open(path)  // meta blocks are intact: open succeeds
        // A full scan returns correct entries up to the damaged block, then throws.
        let it = reader.makeIterator()
        var seen = 0
        expectCorruption(path: path, offset: Int(handle.offset)) {
            try it.seekToFirst()
            while it.isValid {
                #expect(it.key == entries[seen].key)
                #expect(it.value == entries[seen].value)
                seen += 1
                try it.next()
            }
        }
        #expect(!it.isValid)
        #expect(seen > 0 && seen < entries.count)
        // A point read of a key in that block throws; one elsewhere still works.
        let firstKeyOfVictim = entries[seen].key
        expectCorruption(path: path, offset: Int(handle.offset)) { _ = try reader.get(firstKeyOfVictim) }
        #expect(try reader.get(entries[0].key) == entries[0].value)
        expectCorruption(path: path, offset: Int(handle.offset)) {
            try reader.seekAndReadBackwards(from: entries.last!.key)
        }
        expectCorruption(path: path, offset: Int(handle.offset)) { _ = try reader.verify(progress: nil) }
    }

    @Test func flippedIndexByteFailsOpen() throws {
        let dir = TempDirectory("sstable-corrupt")
        let (path, _, original) = try makeTable(dir)
        let indexOffset = Int(original.footer.index.offset)
        try SSTableFixture.flipByte(path, at: indexOffset + 1)
        expectCorruption(path: path, offset: indexOffset) { _ = try SSTableFixture.open(path) }
    }

    @Test func flippedBloomOrStatisticsByteFailsOpen() throws {
        for which in 0..<2 {
            let dir = TempDirectory("sstable-corrupt")
            let (path, _, original) = try makeTable(dir)
            let handle = which == 0 ? original.footer.bloom : original.footer.stats
            try SSTableFixture.flipByte(path, at: Int(handle.offset))
            expectCorruption(path: path, offset: Int(handle.offset)) { _ = try SSTableFixture.open(path) }
        }
    }

    @Test func everyFooterByteIsChecked() throws {
        let dir = TempDirectory("sstable-corrupt")
        let (path, _, original) = try makeTable(dir)
        let footerOffset = original.fileSize - SSTableFooter.size
        for i in 0..<SSTableFooter.size {
            try SSTableFixture.flipByte(path, at: footerOffset + i, mask: 0x01)
            expectCorruption(path: path) { _ = try SSTableFixture.open(path) }
            try SSTableFixture.flipByte(path, at: footerOffset + i, mask: 0x01)
        }
        _ = try SSTableFixture.open(path)
    }

    @Test func truncatedEmptyAndForeignFilesFailOpen() throws {
        let dir = TempDirectory("sstable-corrupt")
        let (path, _, original) = try makeTable(dir)
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        for cut in [0, 10, SSTableFooter.size - 1, SSTableFooter.size, original.fileSize / 2, original.fileSize - 1] {
            let p = dir.file("cut-\(cut).sst")
            try data.prefix(cut).write(to: URL(fileURLWithPath: p))
            expectCorruption(path: p) { _ = try SSTableFixture.open(p) }
        }
        let foreign = dir.file("foreign.sst")
        try Data(String(repeating: "not an sstable at all ", count: 20).utf8).write(to: URL(fileURLWithPath: foreign))
        expectCorruption(path: foreign, offset: 440 - 8) { _ = try SSTableFixture.open(foreign) }
    }

    @Test func aFutureFormatVersionIsUnsupportedNotCorrupt() throws {
        let dir = TempDirectory("sstable-corrupt")
        let (path, _, original) = try makeTable(dir)
        var data = try Data(contentsOf: URL(fileURLWithPath: path))
        let footerOffset = original.fileSize - SSTableFooter.size
        var footer = Array(data[footerOffset...])
        footer[36] = 2
        let crc = CRC32C.mask(CRC32C.checksum(Array(footer[0..<40])))
        footer.replaceSubrange(
            40..<44, with: [UInt8(crc & 0xFF), UInt8(crc >> 8 & 0xFF), UInt8(crc >> 16 & 0xFF), UInt8(crc >> 24)])
        data.replaceSubrange(footerOffset..., with: footer)
        try data.write(to: URL(fileURLWithPath: path))
        #expect { _ = try SSTableFixture.open(path) } throws: { ($0 as? StorageError)?.code == .unsupportedVersion }
    }

    /// Any single flipped byte anywhere is caught by open or verify: every byte of the file is
    /// under some checksum.
    @Test func randomFlipsAreAlwaysDetected() throws {
        let seed = testSeed()
        var rng = SplitMix64(seed: seed)
        let dir = TempDirectory("sstable-corrupt")
        let (path, _, original) = try makeTable(dir)
        for _ in 0..<150 {
            let at = Int.random(in: 0..<original.fileSize, using: &rng)
            let mask = UInt8.random(in: 1...255, using: &rng)
            try SSTableFixture.flipByte(path, at: at, mask: mask)
            expectCorruption(path: path) {
                let reader = try SSTableFixture.open(path)
                _ = try reader.verify(progress: nil)
            }
            try SSTableFixture.flipByte(path, at: at, mask: mask)
        }
        print("randomFlipsAreAlwaysDetected seed \(seed)")
        _ = try SSTableFixture.open(path).verify(progress: nil)
    }
}

extension SSTableReader {
    fileprivate func seekAndReadBackwards(from key: [UInt8]) throws {
        let it = makeIterator()
        try it.seek(key)
        while it.isValid { try it.prev() }
    }
}

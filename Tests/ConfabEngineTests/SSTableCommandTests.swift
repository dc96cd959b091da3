import Foundation
import Testing

@testable import ConfabEngine

/// `confab sstable verify|dump` run as a real process on good and damaged files.
@Suite struct SSTableCommandTests {
    static func binary() -> String? { confabExecutablePath() }

    static func run(_ binary: String, _ arguments: [String]) async throws -> (
        status: Int32, stdout: String, stderr: String
    ) {
        let r = try await TestCommand.run(binary, arguments)
        return (r.status, r.out, r.err)
    }

    @Test func verifyAndDumpGoodAndDamagedFiles() async throws {
        let binary = try #require(Self.binary(), "confab binary not found")
        let dir = TempDirectory("sstable-cli")
        let path = dir.file("9.sst")
        let entries = SSTableFixture.entries(
            partitions: 5, rows: { _ in 30 }, seed: 21, bigValueEvery: 40, bigValueBytes: 5_000)
        try SSTableFixture.write(entries, to: path, options: SSTableWriterOptions(blockBytes: 1024))

        var r = try await Self.run(binary, ["sstable", "verify", path])
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout.contains("OK"))
        #expect(r.stdout.contains("entries checked:   \(entries.count)"))

        r = try await Self.run(binary, ["sstable", "verify", path, "--json"])
        #expect(r.status == 0)
        let summary = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        #expect(summary?["ok"] as? Bool == true)
        #expect(summary?["entryCount"] as? Int == entries.count)

        r = try await Self.run(binary, ["sstable", "dump", path, "--limit", "3"])
        #expect(r.status == 0)
        let first = try #require(InternalKey.decode(entries[0].key))
        let firstPartition = Int64(bitPattern: first.partitionKey.reduce(0) { $0 << 8 | UInt64($1) })
        #expect(r.stdout.contains("table=3 token=\(first.token) pk=\(firstPartition) clustering="))
        #expect(r.stdout.contains("liveness ts="))
        #expect(r.stdout.contains("col 1 ts="))
        #expect(r.stdout.contains("-- 3 of \(entries.count) entries"))

        r = try await Self.run(binary, ["sstable", "dump", path, "--json"])
        #expect(r.status == 0)
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.count == entries.count)
        for line in lines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(object?["kind"] as? String != nil)
        }

        let reader = try SSTableFixture.open(path)
        let damaged = Int(reader.index.handles[1].offset)
        try SSTableFixture.flipByte(path, at: damaged + 2)
        r = try await Self.run(binary, ["sstable", "verify", path])
        #expect(r.status == 2, "\(r)")
        #expect(r.stdout.contains("CORRUPT"))
        #expect(r.stdout.contains("at offset \(damaged)"))
        r = try await Self.run(binary, ["sstable", "dump", path])
        #expect(r.status == 2)
        #expect(r.stderr.contains("offset \(damaged)"))

        r = try await Self.run(binary, ["sstable", "verify", dir.file("missing.sst")])
        #expect(r.status == 1)
        #expect(r.stderr.contains("missing.sst"))
    }
}

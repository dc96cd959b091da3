import Testing

@testable import ConfabEngine

@Suite struct FormatTests {
    @Test func clusteringKeysSortLikeTheirComponents() {
        var rng = SplitMix64(seed: 7)
        var items: [(Int64, [UInt8])] = []
        for _ in 0..<500 {
            let ts = Int64.random(in: -1_000...1_000, using: &rng)
            let id = (0..<Int.random(in: 0...4, using: &rng)).map { _ in UInt8.random(in: 0...2, using: &rng) }
            items.append((ts, id))
        }
        let byKey = items.sorted {
            compareBytes(
                ClusteringKey([.int64($0.0), .bytes($0.1)]).bytes, ClusteringKey([.int64($1.0), .bytes($1.1)]).bytes)
                < 0
        }
        let byValue = items.sorted { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1.lexicographicallyPrecedes($1.1) }
        #expect(byKey.map { "\($0.0)/\($0.1)" } == byValue.map { "\($0.0)/\($0.1)" })
        for (ts, id) in items {
            #expect(
                ClusteringKey.components(of: ClusteringKey([.int64(ts), .bytes(id)]).bytes) == [.int64(ts), .bytes(id)])
        }
    }

    /// `RawReader` reads a varint straight from memory when ten bytes are left and through the
    /// bounds-checked loop otherwise: both give the same value, length and errors — for random
    /// values of every length, and for the malformed shapes (a tenth byte over 1, an eleventh byte).
    @Test func varintsReadTheSameNearAndFarFromTheEnd() throws {
        var rng = SplitMix64(seed: 11)
        var values: [UInt64] = [0, 1, 127, 128, 16_383, 16_384, UInt64(Int64.max), .max, 1 << 63, (1 << 63) - 1]
        for bits in 1...64 {
            for _ in 0..<20 { values.append(UInt64.random(in: 0...UInt64.max, using: &rng) >> UInt64(64 - bits)) }
        }
        func read(_ bytes: [UInt8]) -> Result<(UInt64, Int), StorageError> {
            bytes.withUnsafeBytes { raw in
                var r = RawReader(raw, context: "test")
                do {
                    let v = try r.readVarint()
                    return .success((v, r.position))
                } catch let e as StorageError {
                    return .failure(e)
                } catch {
                    Issue.record("unexpected \(error)")
                    return .failure(StorageError(.io, "unexpected"))
                }
            }
        }
        for v in values {
            var encoded: [UInt8] = []
            encoded.appendVarint(v)
            for padding in [0, 3, 10, 16] {
                let got = try read(encoded + Array(repeating: 0xAB, count: padding)).get()
                #expect(got.0 == v && got.1 == encoded.count, "\(v) with \(padding) bytes after it")
            }
        }
        // Malformed: the same failure with and without ten bytes after the start.
        let overflow: [UInt8] = Array(repeating: 0xFF, count: 9) + [0x02]
        let tooLong: [UInt8] = Array(repeating: 0x80, count: 10) + [0x00]
        let cut: [UInt8] = [0x80, 0x80]
        for bad in [overflow, tooLong, cut] {
            guard case .failure(let exact) = read(bad) else {
                Issue.record("\(bad) read as a varint")
                continue
            }
            let padded = read(bad + (bad == cut ? [] : Array(repeating: 0x80, count: 12)))
            guard case .failure(let far) = padded else {
                Issue.record("\(bad) with bytes after it read as a varint")
                continue
            }
            #expect(exact.code == .corruption && far.message == exact.message, "\(far.message) vs \(exact.message)")
        }
    }

    @Test func prefixBoundsSelectTimestamps() {
        let t = ClusteringKey([.int64(100)]).bytes
        let atT = ClusteringKey([.int64(100), .bytes(Array("z".utf8))]).bytes
        let before = ClusteringKey([.int64(99), .bytes([0xFF, 0xFF])]).bytes
        #expect(compareBytes(before, t) < 0)
        #expect(compareBytes(atT, t) > 0)
        #expect(compareBytes(atT, InternalKey.prefixSuccessor(t)!) < 0)
        #expect(InternalKey.prefixSuccessor([0x01, 0xFF]) == [0x02])
        #expect(InternalKey.prefixSuccessor([0xFF]) == nil)
    }

    @Test func internalKeysGroupPartitionsAndDecode() {
        let pk = TestMessages.partitionKey(chatId: 42)
        let prefix = InternalKey.partitionPrefix(table: 1, partitionKey: pk)
        let key = prefix + TestMessages.clustering(timestamp: 5, messageId: "m")
        let parts = InternalKey.decode(key)
        #expect(parts?.table == 1)
        #expect(parts?.partitionKey == pk)
        #expect(parts?.token == 8_623_491_988_607_824_794)
        #expect(InternalKey.prefixLength(of: key) == prefix.count)
    }

    @Test func entryValuesRoundTrip() throws {
        let row = RowFragment(
            liveness: LivenessInfo(timestamp: 10, ttl: 60, expiresAt: 1000),
            deletion: DeletionTime(timestamp: 5, localDeletionTime: 77),
            cells: [
                Cell(column: 3, timestamp: 11, value: Array(repeating: 0x41, count: 400_000)),
                .tombstone(column: 1, timestamp: 12, localDeletionTime: 99),
                Cell(column: 2, timestamp: -4, value: [], ttl: 30, expiresAt: 555),
            ])
        #expect(try EntryValue.decode(EntryValue.row(row).encoded()) == .row(row))
        let header = PartitionHeader(
            deletion: DeletionTime(timestamp: 1, localDeletionTime: 2),
            rangeTombstones: [
                RangeTombstone(start: [1], end: [3], deletion: DeletionTime(timestamp: 9, localDeletionTime: 9)),
                RangeTombstone(start: [], end: nil, deletion: DeletionTime(timestamp: 8, localDeletionTime: 8)),
            ])
        #expect(try EntryValue.decode(EntryValue.header(header).encoded()) == .header(header))
        let m = Mutation(
            table: 7, partitionKey: [1, 2, 3], header: header, rows: [.init(clustering: [9], fragment: row)])
        #expect(try Mutation.decode(m.encoded()) == m)
    }

    @Test func truncatedOrGarbageValuesThrowCorruption() {
        let bytes = EntryValue.row(RowFragment(cells: [Cell(column: 0, timestamp: 1, value: [1, 2, 3])])).encoded()
        for cut in 0..<bytes.count {
            #expect(throws: StorageError.self) { try EntryValue.decode(Array(bytes[0..<cut])) }
        }
        #expect(throws: StorageError.self) { try EntryValue.decode([9, 9, 9]) }
        #expect(throws: StorageError.self) { try Mutation.decode([1, 2]) }
    }

    @Test func newestCellWinsAndDeletionsShadow() {
        let a = RowFragment(cells: [
            Cell(column: 0, timestamp: 10, value: [1]), Cell(column: 1, timestamp: 5, value: [1]),
        ])
        let b = RowFragment(
            deletion: DeletionTime(timestamp: 6, localDeletionTime: 0),
            cells: [Cell(column: 0, timestamp: 9, value: [2])])
        let m = RowFragment.merge(a, b)
        #expect(m.cells.map(\.column) == [0])
        #expect(m.cells[0].value == [1])
        #expect(RowFragment.merge(b, a) == m)
        // Tie: tombstone wins.
        let t = RowFragment(cells: [.tombstone(column: 0, timestamp: 10, localDeletionTime: 0)])
        #expect(RowFragment.merge(a, t).cells.first?.isTombstone == true)
        #expect(RowFragment.merge(t, a).cells.first?.isTombstone == true)
    }

    @Test func rangeTombstonesCoverHalfOpenRanges() {
        let h = PartitionHeader(rangeTombstones: [
            RangeTombstone(start: [5], end: [9], deletion: DeletionTime(timestamp: 3, localDeletionTime: 0))
        ])
        #expect(h.deletion(covering: [5]) != nil)
        #expect(h.deletion(covering: [8, 0xFF]) != nil)
        #expect(h.deletion(covering: [9]) == nil)
        #expect(h.deletion(covering: [4, 0xFF]) == nil)
    }
}

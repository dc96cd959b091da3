import Foundation
import Testing

@testable import ConfabEngine

@Suite struct MemtableTests {
    @Test func skipListMatchesASortedModel() {
        let seed = testSeed()
        var rng = SplitMix64(seed: seed)
        checkSkipListAgainstModel(seed: seed, rng: &rng) { rng in
            (0..<Int.random(in: 1...6, using: &rng)).map { _ in UInt8.random(in: 0...5, using: &rng) }
        }
    }

    /// Keys that agree on their first 14 to 33 bytes and differ, or end, around the 32-byte head
    /// the skip list compares before it reads a key's bytes: a short key's zero padding must not
    /// pass for real zero bytes, and keys equal in their heads must still be ordered by the rest.
    @Test func skipListOrdersKeysThatAgreeOnTheirHeads() {
        let seed = testSeed()
        var rng = SplitMix64(seed: seed)
        let prefixes = [14, 22, 29, 31, 32, 33].map { n in (0..<n).map { _ in UInt8.random(in: 0...2, using: &rng) } }
        checkSkipListAgainstModel(seed: seed, rng: &rng) { rng in
            let prefix = prefixes.randomElement(using: &rng)!
            let tail = (0..<Int.random(in: 0...6, using: &rng)).map { _ in
                [UInt8(0), 1, 0xFF].randomElement(using: &rng)!
            }
            return Array(prefix.prefix(Int.random(in: max(0, prefix.count - 3)...prefix.count, using: &rng))) + tail
        }
    }

    private func checkSkipListAgainstModel(
        seed: UInt64, rng: inout SplitMix64, key makeKey: (inout SplitMix64) -> [UInt8]
    ) {
        var list = SkipList()
        var model: [[UInt8]: [UInt8]] = [:]
        // Hints: none, the node the last upsert returned (often right, as for a chat's next
        // message), or any node, the head or one past the end (mostly wrong): a wrong hint must
        // only cost time.
        var last = 0
        for _ in 0..<5_000 {
            let key = makeKey(&rng)
            guard !key.isEmpty else { continue }
            let value = [UInt8.random(in: 0...255, using: &rng)]
            let hint: Int
            switch Int.random(in: 0..<4, using: &rng) {
            case 0: hint = 0
            case 1: hint = Int.random(in: 0...(list.count + 1), using: &rng)
            case 2: hint = last
            default: hint = list.lastLess(key) ?? 0  // right, unless the key is already there
            }
            last = list.upsert(key: key, value: value[...], after: hint) { _, new in new }
            #expect(list.key(last) == key, "seed \(seed): upsert returned another key's node")
            model[key] = value
        }
        let sorted = model.keys.sorted { compareBytes($0, $1) < 0 }
        var walked: [[UInt8]] = []
        var n = list.first
        while let i = n {
            walked.append(list.key(i))
            n = list.successor(i)
        }
        // The first place the walk and the model part, so a failure names two keys, not two lists.
        func firstDifference(_ a: [[UInt8]], _ b: [[UInt8]]) -> String? {
            guard a != b else { return nil }
            let i = (0..<min(a.count, b.count)).first { a[$0] != b[$0] } ?? min(a.count, b.count)
            return "at \(i): \(i < a.count ? a[i] : []) vs \(i < b.count ? b[i] : []) (counts \(a.count), \(b.count))"
        }
        #expect(firstDifference(walked, sorted) == nil, "seed \(seed)")
        #expect(list.hintedLinks > 200, "seed \(seed): \(list.hintedLinks) nodes linked after their hint")
        #expect(list.count == model.count, "seed \(seed)")
        // Backwards by the back-links: the same keys, newest last.
        var backwards: [[UInt8]] = []
        n = list.last
        while let i = n {
            backwards.append(list.key(i))
            n = list.predecessor(i)
        }
        #expect(firstDifference(backwards, sorted.reversed()) == nil, "seed \(seed)")
        // In place, as a flush reads it: the same keys in order, each with its latest value (a
        // replaced value lies elsewhere in the arena than the first one did).
        var entries: [(key: [UInt8], value: [UInt8])] = []
        list.forEachEntry { k, v in entries.append((Array(k), Array(v))) }
        #expect(firstDifference(entries.map(\.key), sorted) == nil, "seed \(seed)")
        #expect(
            entries.allSatisfy { model[$0.key] == $0.value }, "seed \(seed): a value read in place is not the latest")
        for _ in 0..<500 {
            let probe = makeKey(&rng)
            let lb = sorted.first { compareBytes($0, probe) >= 0 }
            #expect(list.lowerBound(probe).map { list.key($0) } == lb, "seed \(seed)")
            let ll = sorted.last { compareBytes($0, probe) < 0 }
            #expect(list.lastLess(probe).map { list.key($0) } == ll, "seed \(seed)")
            if let k = model.keys.randomElement(using: &rng) {
                #expect(list.find(k).map { list.value($0) } == model[k], "seed \(seed)")
            }
        }
    }

    @Test func memtableMergesRowsAndIteratesBothWays() throws {
        let mt = Memtable(id: 1)
        for i in 0..<100 {
            mt.apply(
                TestMessages.mutation(
                    chatId: Int64(i % 3), timestamp: Int64(i), messageId: "m\(i)", sender: "s", body: "b\(i)",
                    writeTime: 10))
        }
        // Overwrite one body with a newer timestamp.
        mt.apply(
            TestMessages.mutation(chatId: 0, timestamp: 0, messageId: "m0", sender: "s", body: "new", writeTime: 20))
        #expect(mt.entryCount == 100)
        let key =
            InternalKey.partitionPrefix(table: TestMessages.table, partitionKey: TestMessages.partitionKey(chatId: 0))
            + TestMessages.clustering(timestamp: 0, messageId: "m0")
        guard case .row(let row) = try EntryValue.decode(mt.get(key)!) else {
            Issue.record("not a row")
            return
        }
        #expect(row.cells.first { $0.column == TestMessages.bodyColumn }?.value == Array("new".utf8))
        let it = mt.makeIterator()
        let forward = try keysInOrder(it)
        try it.seekToLast()
        var backward: [[UInt8]] = []
        while it.isValid {
            backward.append(it.key)
            try it.prev()
        }
        #expect(forward.count == 100)
        #expect(backward == forward.reversed())
    }

    /// Chat traffic: messages to 10 chats, interleaved, each chat in time order, with some late
    /// (older) messages and rewrites. Most rows must be linked after their chat's last row
    /// without a search, and the order must still be exact.
    @Test func memtableLinksAChatsNextMessageAfterItsLastRow() throws {
        let mt = Memtable(id: 1)
        var rng = SplitMix64(seed: 11)
        var expected: Set<[UInt8]> = []
        var clock: Int64 = 1_000
        for i in 0..<2_000 {
            let chat = Int64.random(in: 0..<10, using: &rng)
            clock += 1
            let late = i % 50 == 49
            let ts = late ? Int64.random(in: 0..<clock, using: &rng) : clock
            let id = late && i % 100 == 99 ? "m\(ts)" : "m\(ts)-\(i)"
            mt.apply(
                TestMessages.mutation(
                    chatId: chat, timestamp: ts, messageId: id, sender: "s", body: "b\(i)", writeTime: Int64(i)))
            expected.insert(
                InternalKey.partitionPrefix(
                    table: TestMessages.table, partitionKey: TestMessages.partitionKey(chatId: chat))
                    + TestMessages.clustering(timestamp: ts, messageId: id))
        }
        let forward = try keysInOrder(mt.makeIterator())
        #expect(forward == expected.sorted { compareBytes($0, $1) < 0 })
        // Three in four nodes have height 1; in-order rows of those all take the hint.
        #expect(mt.hintedLinks > 1_200, "\(mt.hintedLinks) of 2,000 rows linked after their hint")
    }

    @Test func concurrentReadersDuringWrites() async {
        let mt = Memtable(id: 1)
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for i in 0..<2_000 {
                    mt.apply(
                        TestMessages.mutation(
                            chatId: 1, timestamp: Int64(i), messageId: "x", sender: "s", body: "b", writeTime: 1))
                }
            }
            for _ in 0..<2 {
                group.addTask {
                    for _ in 0..<200 {
                        let it = mt.makeIterator()
                        try? it.seekToFirst()
                        var last: [UInt8]? = nil
                        while it.isValid {
                            if let l = last { #expect(compareBytes(l, it.key) < 0) }
                            last = it.key
                            try? it.next()
                        }
                    }
                }
            }
            // Backwards (newest-first reads) by the back-links, while inserts relink them.
            group.addTask {
                for _ in 0..<200 {
                    let it = mt.makeIterator()
                    try? it.seekToLast()
                    var last: [UInt8]? = nil
                    while it.isValid {
                        if let l = last { #expect(compareBytes(l, it.key) > 0) }
                        last = it.key
                        try? it.prev()
                    }
                }
            }
        }
        #expect(mt.entryCount == 2_000)
    }
}

/// Every key `it` yields from the first on.
private func keysInOrder(_ it: any EntryIterator) throws -> [[UInt8]] {
    try it.seekToFirst()
    var keys: [[UInt8]] = []
    while it.isValid {
        keys.append(it.key)
        try it.next()
    }
    return keys
}

import Testing

@testable import ConfabRing

@Suite struct MerkleTreeTests {
    func rows(seed: UInt64, count: Int, in range: TokenRange) -> [(Token, [UInt8])] {
        var rng = SplitMix64(seed: seed)
        var out: [(Token, [UInt8])] = []
        while out.count < count {
            // Uniform over the range: an offset from its start.
            let width = range.width == 0 ? UInt64.max : range.width
            let t = range.start.advanced(by: 1 + rng.next() % (width - 1))
            guard range.contains(t) else { continue }
            out.append((t, (0..<16).map { _ in UInt8.random(in: 0...255, using: &rng) }))
        }
        return out
    }

    @Test(arguments: [TokenRange.fullRing, TokenRange(start: Token(.max / 2), end: Token(.min / 2))])
    func identicalDataHasNoDifferenceInAnyOrder(range: TokenRange) {
        let data = rows(seed: 1, count: 2000, in: range)
        var a = MerkleTree(range: range)
        var b = MerkleTree(range: range)
        for (t, r) in data { a.add(token: t, bytes: r) }
        for (t, r) in data.reversed() { b.add(token: t, bytes: r) }
        #expect(a.rootHash == b.rootHash)
        #expect(MerkleTree.difference(a, b).isEmpty)
    }

    @Test(arguments: [
        TokenRange.fullRing, TokenRange(start: Token(.max / 2), end: Token(.min / 2)),
        TokenRange(start: Token(-1000), end: Token(5000)),
    ])
    func oneChangedRowGivesExactlyItsLeafRange(range: TokenRange) {
        let data = rows(seed: 2, count: range.fraction < 0.001 ? 50 : 2000, in: range)
        var a = MerkleTree(range: range)
        var b = MerkleTree(range: range)
        for (i, (t, r)) in data.enumerated() {
            a.add(token: t, bytes: r)
            b.add(token: t, bytes: i == 17 ? r + [1] : r)
        }
        let diff = MerkleTree.difference(a, b)
        let changed = data[17].0
        #expect(diff == [a.leafRange(a.leafIndex(for: changed))])
        #expect(diff[0].contains(changed))
    }

    @Test func leavesPartitionTheRange() {
        for range in [
            TokenRange.fullRing, TokenRange(start: Token(10), end: Token(-10)),
            TokenRange(start: Token(0), end: Token(3000)),
        ] {
            let tree = MerkleTree(range: range, depth: 4)
            #expect(tree.leafRange(0).start == range.start)
            #expect(tree.leafRange(tree.leafCount - 1).end == range.end)
            for i in 1..<tree.leafCount { #expect(tree.leafRange(i).start == tree.leafRange(i - 1).end) }
            var rng = SplitMix64(seed: 3)
            for _ in 0..<2000 {
                let t = Token(Int64(bitPattern: rng.next()) % 5000)
                guard range.contains(t) else { continue }
                #expect(tree.leafRange(tree.leafIndex(for: t)).contains(t), "\(range) \(t)")
            }
        }
    }

    @Test func adjacentDifferingLeavesMerge() {
        var a = MerkleTree(range: .fullRing, depth: 3)
        var b = a
        let l1 = a.leafRange(2)
        let l2 = a.leafRange(3)
        a.add(token: l1.end, bytes: [1])
        a.add(token: l2.end, bytes: [2])
        #expect(MerkleTree.difference(a, b) == [TokenRange(start: l1.start, end: l2.end)])
        b.add(token: l1.end, bytes: [1])
        #expect(MerkleTree.difference(a, b) == [l2])
    }
}

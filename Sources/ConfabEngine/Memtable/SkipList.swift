/// A skiplist of (key, value) byte strings in memcmp key order, stored in flat arrays: all bytes in
/// one arena and nodes as indices, so an insert is a memcpy and a few integer writes instead of
/// several heap objects. Not thread-safe by itself; `Memtable` guards it with a read-write lock.
///
/// Nodes are never removed or moved (indices stay valid for iterators); replacing a value appends
/// the new bytes and repoints the node.
struct SkipList {
    static let maxHeight = 12
    /// One in four nodes reaches the next level (LevelDB's branching factor).
    static let branching: UInt32 = 4

    struct Node {
        /// The key's first 32 bytes (big-endian, zero-padded): most comparisons end here, on the
        /// hot node array, without touching the key bytes in the arena. 32, not 16: a chat
        /// message's key is a 22-byte partition prefix and then its timestamp, so keys of one
        /// chat agreed on 16 bytes and every step of an insert went to the arena (a cache miss and
        /// a memcmp per step).
        var head: Head
        var keyOffset: Int
        var keyLength: Int32
        var height: Int32
        var valueOffset: Int
        var valueLength: Int32
        /// Where levels `inlineLevels...` of this node's links start in `links` (unused below).
        var linkStart: Int32
        /// The next node at levels 0..<inlineLevels, or -1: the links a search follows most
        /// (three in four nodes have only level 0, and the few tall nodes stay in cache), read
        /// from the node it has just compared instead of from a second array, which was a
        /// second cache miss per step of an insert into a large memtable.
        var next: (Int32, Int32, Int32, Int32)
    }

    static let inlineLevels = 4

    private(set) var arena: [UInt8] = []
    private(set) var nodes: [Node] = []
    /// links[node.linkStart + level - inlineLevels] = next node index at that level (for levels
    /// at or above `inlineLevels`), or -1.
    private var links: [Int32] = []
    /// back[node] = the node before it at level 0 (0, the head, for the first): a reverse step
    /// (newest-first reads walk backwards) is one load, not a search from the top.
    private var back: [Int32] = [0]
    private var height = 1
    private var rng: UInt32 = 0x2545_F491
    private(set) var count = 0
    /// Nodes linked after their hint without a search (tests check that hints are used).
    private(set) var hintedLinks = 0

    /// `capacityBytes`: the memtable's size limit. The arrays are reserved for it up front
    /// (address space only until written): grown by doubling, a 64 MiB memtable copied and
    /// page-faulted its arena twice over (7% of a single writer's ingest samples).
    init(capacityBytes: Int = 1 << 20) {
        let capacity = max(capacityBytes, 1 << 16)
        arena.reserveCapacity(capacity)
        nodes.reserveCapacity(capacity / 128)
        links.reserveCapacity(capacity / 1024)
        back.reserveCapacity(capacity / 128)
        nodes.append(
            Node(
                head: Head(), keyOffset: 0, keyLength: 0, height: Int32(Self.maxHeight), valueOffset: 0,
                valueLength: 0, linkStart: 0, next: (-1, -1, -1, -1)))
        links.append(contentsOf: repeatElement(-1, count: Self.maxHeight - Self.inlineLevels))
    }

    /// Approximate memory held.
    var memoryBytes: Int { arena.count + nodes.count * MemoryLayout<Node>.stride + links.count * 4 + back.count * 4 }

    @inline(__always) private func next(_ node: Int, _ level: Int) -> Int {
        switch level {
        case 0: return Int(nodes[node].next.0)
        case 1: return Int(nodes[node].next.1)
        case 2: return Int(nodes[node].next.2)
        case 3: return Int(nodes[node].next.3)
        default: return Int(links[Int(nodes[node].linkStart) + level - Self.inlineLevels])
        }
    }

    @inline(__always) private mutating func setNext(_ node: Int, _ level: Int, _ to: Int) {
        switch level {
        case 0: nodes[node].next.0 = Int32(to)
        case 1: nodes[node].next.1 = Int32(to)
        case 2: nodes[node].next.2 = Int32(to)
        case 3: nodes[node].next.3 = Int32(to)
        default: links[Int(nodes[node].linkStart) + level - Self.inlineLevels] = Int32(to)
        }
    }

    /// A key's first 32 bytes as four big-endian words, zero-padded: comparing the words in order
    /// compares those bytes in memcmp order.
    struct Head {
        var w0: UInt64 = 0
        var w1: UInt64 = 0
        var w2: UInt64 = 0
        var w3: UInt64 = 0

        init() {}

        @inline(__always)
        init(_ key: UnsafeRawBufferPointer) {
            if key.count >= 32 {
                w0 = UInt64.loadBE(key, at: 0)
                w1 = UInt64.loadBE(key, at: 8)
                w2 = UInt64.loadBE(key, at: 16)
                w3 = UInt64.loadBE(key, at: 24)
                return
            }
            var padded: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
            withUnsafeMutableBytes(of: &padded) { $0.copyMemory(from: key) }
            w0 = UInt64(bigEndian: padded.0)
            w1 = UInt64(bigEndian: padded.1)
            w2 = UInt64(bigEndian: padded.2)
            w3 = UInt64(bigEndian: padded.3)
        }

        /// -1, 1, or 0 when the heads are equal, which decides nothing: the zero padding of a
        /// short key is ambiguous with real zero bytes.
        @inline(__always)
        func order(_ other: Head) -> Int {
            if w0 != other.w0 { return w0 < other.w0 ? -1 : 1 }
            if w1 != other.w1 { return w1 < other.w1 ? -1 : 1 }
            if w2 != other.w2 { return w2 < other.w2 ? -1 : 1 }
            if w3 != other.w3 { return w3 < other.w3 ? -1 : 1 }
            return 0
        }
    }

    /// A key being searched for, with its head computed once.
    struct SearchKey {
        var bytes: UnsafeRawBufferPointer
        var head: Head

        init(_ bytes: UnsafeRawBufferPointer) {
            self.bytes = bytes
            head = Head(bytes)
        }
    }

    @inline(__always)
    private func compare(node: Int, _ key: SearchKey, _ arenaBytes: UnsafeRawBufferPointer) -> Int {
        let n = nodes[node]
        let byHead = n.head.order(key.head)
        if byHead != 0 { return byHead }
        let k = UnsafeRawBufferPointer(rebasing: arenaBytes[n.keyOffset..<(n.keyOffset + Int(n.keyLength))])
        return compareBytes(k, key.bytes)
    }

    private mutating func randomHeight() -> Int {
        var h = 1
        while h < Self.maxHeight {
            // xorshift32
            rng ^= rng << 13
            rng ^= rng >> 17
            rng ^= rng << 5
            if rng % Self.branching != 0 { break }
            h += 1
        }
        return h
    }

    /// The first node with key >= target (or, with `orEqual` false, > target); 0 (head) stands for
    /// "none" when nothing follows. Fills `prev` with the rightmost node before it at each level.
    private func findGreaterOrEqual(_ raw: UnsafeRawBufferPointer, prev: UnsafeMutablePointer<Int>?) -> Int {
        let key = SearchKey(raw)
        return arena.withUnsafeBytes { a in
            var x = 0
            var level = height - 1
            while true {
                let nx = next(x, level)
                if nx >= 0 && compare(node: nx, key, a) < 0 {
                    x = nx
                } else {
                    prev?[level] = x
                    if level == 0 { return nx }
                    level -= 1
                }
            }
        }
    }

    /// Index of the node with exactly this key, or nil.
    func find(_ key: [UInt8]) -> Int? {
        key.withUnsafeBytes { k in
            let n = findGreaterOrEqual(k, prev: nil)
            guard n > 0 else { return nil }
            return arena.withUnsafeBytes { compare(node: n, SearchKey(k), $0) == 0 ? n : nil }
        }
    }

    /// First node with key >= target, or nil.
    func lowerBound(_ key: [UInt8]) -> Int? {
        let n = key.withUnsafeBytes { findGreaterOrEqual($0, prev: nil) }
        return n > 0 ? n : nil
    }

    /// Last node with key < target, or nil.
    func lastLess(_ key: [UInt8]) -> Int? {
        key.withUnsafeBytes { raw in
            let k = SearchKey(raw)
            return arena.withUnsafeBytes { a in
                var x = 0
                var level = height - 1
                while true {
                    let nx = next(x, level)
                    if nx >= 0 && compare(node: nx, k, a) < 0 {
                        x = nx
                    } else if level == 0 {
                        return x == 0 ? nil : x
                    } else {
                        level -= 1
                    }
                }
            }
        }
    }

    var first: Int? {
        let n = next(0, 0)
        return n >= 0 ? n : nil
    }

    var last: Int? {
        var x = 0
        var level = height - 1
        while true {
            let nx = next(x, level)
            if nx >= 0 { x = nx } else if level == 0 { return x == 0 ? nil : x } else { level -= 1 }
        }
    }

    /// Every entry in key order, as views into the arena that are valid only inside `body`:
    /// a flush hands a frozen memtable's bytes to the table writer as they lie, where stepping an
    /// iterator copied every key and value into buffers first (memcpy and the iterator's step were
    /// ~20 % of the flush thread's samples, perf of `confab-bench storage --quick`).
    func forEachEntry(_ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Void) rethrows {
        try arena.withUnsafeBytes { a in
            var x = next(0, 0)
            while x >= 0 {
                let n = nodes[x]
                let key = n.keyOffset..<(n.keyOffset + Int(n.keyLength))
                let value = n.valueOffset..<(n.valueOffset + Int(n.valueLength))
                precondition(key.upperBound <= a.count && value.upperBound <= a.count)
                try body(UnsafeRawBufferPointer(rebasing: a[key]), UnsafeRawBufferPointer(rebasing: a[value]))
                x = next(x, 0)
            }
        }
    }

    func successor(_ node: Int) -> Int? {
        let n = next(node, 0)
        return n >= 0 ? n : nil
    }

    /// The node before `node` in key order, or nil for the first.
    func predecessor(_ node: Int) -> Int? {
        let p = Int(back[node])
        return p > 0 ? p : nil
    }

    func key(_ node: Int) -> [UInt8] {
        let n = nodes[node]
        return copy(n.keyOffset, Int(n.keyLength))
    }

    func value(_ node: Int) -> [UInt8] {
        let n = nodes[node]
        return copy(n.valueOffset, Int(n.valueLength))
    }

    /// Replaces `out`'s contents with the node's key (or value), reusing its capacity: an
    /// iterator stepping through a memtable copies into the same buffer every time.
    func copyKey(_ node: Int, into out: inout [UInt8]) {
        let n = nodes[node]
        copy(n.keyOffset, Int(n.keyLength), into: &out)
    }

    func copyValue(_ node: Int, into out: inout [UInt8]) {
        let n = nodes[node]
        copy(n.valueOffset, Int(n.valueLength), into: &out)
    }

    private func copy(_ offset: Int, _ count: Int, into out: inout [UInt8]) {
        arena.withUnsafeBytes { a in
            precondition(offset >= 0 && offset + count <= a.count)
            out.removeAll(keepingCapacity: true)
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: a[offset..<(offset + count)]))
        }
    }

    /// The node's value decoded in place: no copy of its bytes first (the decoded value owns
    /// copies of what it keeps, so nothing refers to the arena afterwards).
    func decodeValue(_ node: Int) throws -> EntryValue {
        let n = nodes[node]
        var r = ByteReader(
            arena, range: n.valueOffset..<(n.valueOffset + Int(n.valueLength)), context: "memtable value")
        let v = try EntryValue.decode(&r)
        guard r.isAtEnd else { throw r.fail("\(r.remaining) trailing bytes") }
        return v
    }

    /// `count` arena bytes from `offset` as a new array, by one memcpy: `Array(arena[range])` went
    /// through the generic slice copy, and iterators copy a key and a value on every step.
    @inline(__always)
    private func copy(_ offset: Int, _ count: Int) -> [UInt8] {
        arena.withUnsafeBytes { a in
            precondition(offset >= 0 && offset + count <= a.count)
            return [UInt8](unsafeUninitializedCapacity: count) { out, initialized in
                if count > 0 {
                    out.baseAddress!.initialize(
                        from: a.baseAddress!.assumingMemoryBound(to: UInt8.self) + offset, count: count)
                }
                initialized = count
            }
        }
    }

    /// Inserts, or when the key exists, replaces the value with `merge(old, new)`.
    mutating func upsert(key: [UInt8], value: [UInt8], merge: ([UInt8], [UInt8]) -> [UInt8]) {
        upsert(key: key, value: value[...], after: 0, merge: merge)
    }

    /// Inserts or merges as above and returns the key's node.
    ///
    /// `hint`: a node that probably comes just before `key` (0 for none), such as the last row
    /// written to the same chat, which a new message follows. When it does, and the new node gets
    /// height 1 (three in four do), the node is linked after it with two comparisons instead of a
    /// search from the top: a search in a large memtable misses the cache at almost every step,
    /// and those misses were 70% of `upsert`'s samples (16% of a single writer's ingest).
    @discardableResult
    mutating func upsert(
        key: [UInt8], value: ArraySlice<UInt8>, after hint: Int, merge: ([UInt8], [UInt8]) -> [UInt8]
    ) -> Int {
        withUnsafeTemporaryAllocation(of: Int.self, capacity: Self.maxHeight) { prev in
            prev.initialize(repeating: 0)
            return upsert(key: key, value: value, hint: hint, prev: prev.baseAddress!, merge: merge)
        }
    }

    private mutating func upsert(
        key: [UInt8], value: ArraySlice<UInt8>, hint: Int, prev: UnsafeMutablePointer<Int>,
        merge: ([UInt8], [UInt8]) -> [UInt8]
    ) -> Int {
        let h = randomHeight()
        if h == 1, hint > 0, hint < nodes.count, follows(hint, key) {
            prev[0] = hint
            hintedLinks += 1
            return link(key: key, value: value, height: 1, prev: prev)
        }
        let found = key.withUnsafeBytes { k in findGreaterOrEqual(k, prev: prev) }
        if found > 0 {
            let equal = key.withUnsafeBytes { k in arena.withUnsafeBytes { compare(node: found, SearchKey(k), $0) == 0 }
            }
            if equal {
                let merged = merge(self.value(found), Array(value))
                nodes[found].valueOffset = arena.count
                nodes[found].valueLength = Int32(merged.count)
                arena.append(contentsOf: merged)
                return found
            }
        }
        if h > height {
            for level in height..<h { prev[level] = 0 }
            height = h
        }
        return link(key: key, value: value, height: h, prev: prev)
    }

    /// True when `key` falls strictly between `node` and its successor at level 0.
    private func follows(_ node: Int, _ key: [UInt8]) -> Bool {
        key.withUnsafeBytes { k in
            arena.withUnsafeBytes { a in
                let search = SearchKey(k)
                guard compare(node: node, search, a) < 0 else { return false }
                let following = next(node, 0)
                return following < 0 || compare(node: following, search, a) > 0
            }
        }
    }

    /// Appends a node of height `h` after `prev[level]` at each level below `h`.
    private mutating func link(key: [UInt8], value: ArraySlice<UInt8>, height h: Int, prev: UnsafeMutablePointer<Int>)
        -> Int
    {
        let keyOffset = arena.count
        arena.append(contentsOf: key)
        let valueOffset = arena.count
        arena.append(contentsOf: value)
        let index = nodes.count
        nodes.append(
            Node(
                head: key.withUnsafeBytes { Head($0) }, keyOffset: keyOffset, keyLength: Int32(key.count),
                height: Int32(h),
                valueOffset: valueOffset, valueLength: Int32(value.count), linkStart: Int32(links.count),
                next: (-1, -1, -1, -1)))
        if h > Self.inlineLevels { links.append(contentsOf: repeatElement(-1, count: h - Self.inlineLevels)) }
        back.append(Int32(prev[0]))
        let following = next(prev[0], 0)
        if following >= 0 { back[following] = Int32(index) }
        for level in 0..<h {
            setNext(index, level, next(prev[level], level))
            setNext(prev[level], level, index)
        }
        count += 1
        return index
    }
}

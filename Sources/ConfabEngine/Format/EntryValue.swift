/// The value stored under an internal key in the memtable and in SSTables. Layout in
/// docs/entry_format.md.
package enum EntryValue: Hashable, Sendable {
    case row(RowFragment)
    case header(PartitionHeader)

    static let rowKind: UInt8 = 0
    static let headerKind: UInt8 = 1

    package func encoded() -> [UInt8] {
        var out: [UInt8] = []
        encode(into: &out)
        return out
    }

    package func encode(into out: inout [UInt8]) {
        switch self {
        case .row(let r): Self.encodeRow(r, into: &out)
        case .header(let h): Self.encodeHeader(h, into: &out)
        }
    }

    static func encodeDeletion(_ d: DeletionTime, into out: inout [UInt8]) {
        out.appendSignedVarint(d.timestamp)
        out.appendSignedVarint(d.localDeletionTime)
    }

    static func decodeDeletion(_ r: inout ByteReader) throws -> DeletionTime {
        DeletionTime(timestamp: try r.readSignedVarint(), localDeletionTime: try r.readSignedVarint())
    }

    package static func encodeRow(_ row: RowFragment, into out: inout [UInt8]) {
        out.append(rowKind)
        var flags: UInt8 = 0
        if row.liveness != nil { flags |= 1 }
        if row.deletion != nil { flags |= 2 }
        out.append(flags)
        if let l = row.liveness {
            out.appendSignedVarint(l.timestamp)
            out.appendVarint(UInt64(UInt32(bitPattern: l.ttl)))
            if l.ttl > 0 { out.appendSignedVarint(l.expiresAt) }
        }
        if let d = row.deletion { encodeDeletion(d, into: &out) }
        out.appendVarint(row.cells.count)
        for c in row.cells {
            out.appendVarint(UInt64(c.column))
            var cf: UInt8 = 0
            if c.value == nil { cf |= 1 }
            if c.ttl > 0 { cf |= 2 }
            out.append(cf)
            out.appendSignedVarint(c.timestamp)
            if c.value == nil || c.ttl > 0 { out.appendSignedVarint(c.localExpiry) }
            if c.ttl > 0 { out.appendVarint(UInt64(UInt32(bitPattern: c.ttl))) }
            if let v = c.value { out.appendLengthPrefixed(v) }
        }
    }

    package static func encodeHeader(_ h: PartitionHeader, into out: inout [UInt8]) {
        out.append(headerKind)
        out.append(h.deletion == nil ? 0 : 1)
        if let d = h.deletion { encodeDeletion(d, into: &out) }
        out.appendVarint(h.rangeTombstones.count)
        for rt in h.rangeTombstones {
            out.appendLengthPrefixed(rt.start)
            out.append(rt.end == nil ? 0 : 1)
            if let e = rt.end { out.appendLengthPrefixed(e) }
            encodeDeletion(rt.deletion, into: &out)
        }
    }

    package static func decode(_ bytes: [UInt8]) throws -> EntryValue {
        var r = ByteReader(bytes, context: "entry value")
        let v = try decode(&r)
        guard r.isAtEnd else { throw r.fail("\(r.remaining) trailing bytes") }
        return v
    }

    /// Decodes borrowed bytes: a row through `RowView` (no copy of the whole value first), a
    /// header (rare) through a copy.
    static func decode(raw: UnsafeRawBufferPointer) throws -> EntryValue {
        if let row = try RowView(clustering: UnsafeRawBufferPointer(start: nil, count: 0), encoded: raw) {
            return .row(row.fragment())
        }
        return try decode(Array(raw))
    }

    static func decode(_ r: inout ByteReader) throws -> EntryValue {
        let kind = try r.readByte()
        switch kind {
        case rowKind:
            // Parsed in place by `RowView`, from the kind byte just read.
            let start = r.position - 1
            let end = r.end
            let (fragment, length) = try r.bytes.withUnsafeBytes { raw in
                let row = try RowView(
                    rowAtStartOf: UnsafeRawBufferPointer(rebasing: raw[start..<end]),
                    clustering: UnsafeRawBufferPointer(start: nil, count: 0), readTime: .min, whole: false)
                return (row.fragment(), row.encoded.count)
            }
            _ = try r.readBytes(length - 1)
            return .row(fragment)
        case headerKind:
            var h = PartitionHeader()
            let flags = try r.readByte()
            guard flags <= 1 else { throw r.fail("unknown header flags \(flags)") }
            if flags == 1 { h.deletion = try decodeDeletion(&r) }
            let n = try r.readVarintInt(max: 1 << 24)
            for _ in 0..<n {
                let start = Array(try r.readLengthPrefixed())
                let hasEnd = try r.readByte()
                let end = hasEnd == 1 ? Array(try r.readLengthPrefixed()) : nil
                h.rangeTombstones.append(RangeTombstone(start: start, end: end, deletion: try decodeDeletion(&r)))
            }
            return .header(h)
        default:
            throw r.fail("unknown entry kind \(kind)")
        }
    }

    /// Merges two values stored under the same key.
    package static func merge(_ a: EntryValue, _ b: EntryValue) -> EntryValue {
        switch (a, b) {
        case (.row(let x), .row(let y)): return .row(RowFragment.merge(x, y))
        case (.header(let x), .header(let y)): return .header(PartitionHeader.merge(x, y))
        default: return b  // impossible: the key decides the kind
        }
    }
}

extension Mutation {
    /// WAL payload: table u32, partition key, header, rows. See docs/entry_format.md.
    package func encoded() -> [UInt8] { encodedWithValueRanges().bytes }

    /// The payload plus where each encoded entry value sits inside it: the memtable stores those
    /// bytes as they are, so a write encodes its rows once.
    func encodedWithValueRanges() -> (bytes: [UInt8], header: Range<Int>?, rows: [Range<Int>]) {
        var out: [UInt8] = []
        out.reserveCapacity(
            64
                + rows.reduce(0) {
                    $0 + $1.clustering.count + $1.fragment.cells.reduce(0) { $0 + ($1.value?.count ?? 0) + 16 }
                })
        out.appendLE32(table)
        out.appendLengthPrefixed(partitionKey)
        var headerRange: Range<Int>? = nil
        if header.isEmpty {
            out.append(0)
        } else {
            out.append(1)
            let start = out.count
            EntryValue.encodeHeader(header, into: &out)
            headerRange = start..<out.count
        }
        out.appendVarint(rows.count)
        var ranges: [Range<Int>] = []
        ranges.reserveCapacity(rows.count)
        for row in rows {
            out.appendLengthPrefixed(row.clustering)
            let start = out.count
            EntryValue.encodeRow(row.fragment, into: &out)
            ranges.append(start..<out.count)
        }
        return (out, headerRange, ranges)
    }

    package static func decode(_ bytes: [UInt8]) throws -> Mutation {
        var r = ByteReader(bytes, context: "mutation")
        let table = try r.readLE32()
        let pk = Array(try r.readLengthPrefixed(max: Int(UInt16.max)))
        var m = Mutation(table: table, partitionKey: pk)
        if try r.readByte() == 1 {
            guard case .header(let h) = try EntryValue.decode(&r) else { throw r.fail("expected a partition header") }
            m.header = h
        }
        let n = try r.readVarintInt(max: 1 << 24)
        m.rows.reserveCapacity(n)
        for _ in 0..<n {
            let ck = Array(try r.readLengthPrefixed())
            guard case .row(let f) = try EntryValue.decode(&r) else { throw r.fail("expected a row") }
            m.rows.append(.init(clustering: ck, fragment: f))
        }
        guard r.isAtEnd else { throw r.fail("\(r.remaining) trailing bytes") }
        return m
    }
}

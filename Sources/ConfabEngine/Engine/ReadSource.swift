/// One source of a read's merge, dispatched by a switch rather than through `any EntryIterator`:
/// the merge reaches a source's key and value several times per row, and through the existential
/// each was a generic witness call whose result was copied through type metadata (`memmove`
/// 7% and retain/release 16% of a latest-50 read, perf over `confab-bench storage`).
enum ReadSource {
    case memtable(MemtableIterator)
    /// One reference per case: each copy of a source (the merge reaches them in an array, several
    /// times per row) retains and releases its payload, and the reader beside the iterator made
    /// that two of each (retain/release 16% of a latest-50 read).
    case table(SSTableIterator)

    /// The table this source reads, named in corruption errors.
    var table: SSTableReader? {
        if case .table(let t) = self { return t.reader }
        return nil
    }

    var iterator: any EntryIterator {
        switch self {
        case .memtable(let m): return m
        case .table(let t): return t
        }
    }

    var isValid: Bool {
        switch self {
        case .memtable(let m): return m.isValid
        case .table(let t): return t.isValid
        }
    }

    @inline(__always)
    func withKey<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        switch self {
        case .memtable(let m): return try m.withKey(body)
        case .table(let t): return try t.withKey(body)
        }
    }

    @inline(__always)
    func withValue<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        switch self {
        case .memtable(let m): return try m.withValue(body)
        case .table(let t): return try t.withValue(body)
        }
    }

    func seek(_ target: [UInt8], reversed: Bool) throws {
        switch self {
        case .memtable(let m): if reversed { m.seekBefore(target) } else { m.seek(target) }
        case .table(let t): if reversed { try t.seekBefore(target) } else { try t.seek(target) }
        }
    }

    func step(reversed: Bool) throws {
        switch self {
        case .memtable(let m): if reversed { m.prev() } else { m.next() }
        case .table(let t): if reversed { try t.prev() } else { try t.next() }
        }
    }
}

/// A cursor over sorted (internal key, encoded `EntryValue`) entries: the common shape of memtable
/// and SSTable iterators, merged by the read path and by compaction.
///
/// Keys compare with memcmp (`compareBytes`). After any positioning call, `isValid` tells whether
/// the cursor rests on an entry. I/O errors and corruption surface as thrown errors, never as a
/// silently shortened sequence.
protocol EntryIterator: AnyObject {
    var isValid: Bool { get }
    /// The current key; only when `isValid`.
    var key: [UInt8] { get }
    /// The current encoded value; only when `isValid`.
    var value: [UInt8] { get }
    func seekToFirst() throws
    func seekToLast() throws
    /// Positions at the first entry with key >= target.
    func seek(_ target: [UInt8]) throws
    /// Positions at the last entry with key < target (strictly less).
    func seekBefore(_ target: [UInt8]) throws
    /// Calls `body` with the current key's bytes (empty when not valid), valid only inside it:
    /// the merge compares keys where they lie instead of copying one per step.
    func withKey<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
    /// Calls `body` with the current encoded value's bytes, valid only inside it.
    func withValue<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
    func next() throws
    func prev() throws
    /// The current value decoded; iterators over immutable buffers decode in place, without the
    /// copy `value` makes.
    func decodedValue() throws -> EntryValue
}

extension EntryIterator {
    func decodedValue() throws -> EntryValue { try EntryValue.decode(value) }
}

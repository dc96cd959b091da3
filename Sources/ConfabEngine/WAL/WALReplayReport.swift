/// What `WriteAheadLog.replay` found: for the engine's startup log line and for tests.
struct WALReplayReport: Sendable, Hashable {
    /// A torn tail cut from the newest segment: a crash in the middle of an append.
    struct TruncatedTail: Sendable, Hashable {
        var path: String
        /// The new size of the file: the end of its last intact record.
        var offset: Int
        var bytesDropped: Int
        /// What the first dropped bytes looked like ("record payload is cut short ...").
        var reason: String
        /// How far the segment was known to be synced (nil for a version 1 segment): the cut is
        /// never inside that prefix.
        var syncedThrough: Int? = nil
        /// An intact record found after the cut: unsynced pages persisted out of order.
        var intactRecordAfter: Int? = nil
    }

    /// Intact records passed to the replay body.
    var records = 0
    /// Segment files read.
    var segments = 0
    /// Bytes of intact records and segment headers read.
    var bytes = 0
    /// Set when the newest segment ended in an unsynced (torn) tail that was truncated.
    var truncatedTail: TruncatedTail?
}

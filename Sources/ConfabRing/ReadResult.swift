import ConfabEngine

/// The answer of a coordinated read: the reconciled rows of a slice, in query order, live cells
/// only — the ring's counterpart of the engine's `SliceResult`.
public struct ReadResult: Hashable, Sendable {
    public struct Row: Hashable, Sendable {
        public var clustering: [UInt8]
        /// Live cells, sorted by column.
        public var cells: [Cell]

        public init(clustering: [UInt8], cells: [Cell]) {
            self.clustering = clustering
            self.cells = cells
        }

        public func value(_ column: UInt32) -> [UInt8]? { cells.first { $0.column == column }?.value }
    }

    public var rows: [Row]
    /// Pass back as `SliceQuery.cursor` to continue after the last row; nil when the slice is done.
    public var cursor: [UInt8]?
    /// Deleted or expired rows and cells passed over.
    public var tombstonesScanned: Int

    public init(rows: [Row], cursor: [UInt8]? = nil, tombstonesScanned: Int = 0) {
        self.rows = rows
        self.cursor = cursor
        self.tombstonesScanned = tombstonesScanned
    }
}

import ConfabEngine

/// The answer of a coordinated read: the reconciled rows of a slice, in query order, live cells
/// only — the ring's counterpart of the engine's `SliceResult`.
package struct ReadResult: Hashable, Sendable {
    package struct Row: Hashable, Sendable {
        package var clustering: [UInt8]
        /// Live cells, sorted by column.
        package var cells: [Cell]

        package init(clustering: [UInt8], cells: [Cell]) {
            self.clustering = clustering
            self.cells = cells
        }

        package func value(_ column: UInt32) -> [UInt8]? { cells.first { $0.column == column }?.value }
    }

    package var rows: [Row]
    /// Pass back as `SliceQuery.cursor` to continue after the last row; nil when the slice is done.
    package var cursor: [UInt8]?
    /// Deleted or expired rows and cells passed over.
    package var tombstonesScanned: Int

    package init(rows: [Row], cursor: [UInt8]? = nil, tombstonesScanned: Int = 0) {
        self.rows = rows
        self.cursor = cursor
        self.tombstonesScanned = tombstonesScanned
    }
}

/// What `SSTableReader.verify` checked, for `confab sstable verify` and the engine's scrub.
package struct SSTableVerifyReport: Sendable, Hashable, Codable {
    package var path: String
    package var fileBytes: Int
    package var formatVersion: UInt32
    package var blocksChecked = 0
    /// Data blocks stored LZ4-compressed (the rest are raw).
    package var compressedBlocks = 0
    package var entriesChecked = 0
    /// Sum of the stored (on-disk) sizes of the data blocks, trailers included.
    package var dataBytes = 0
    /// Bytes of the index, bloom filter and statistics blocks and the footer.
    package var metaBytes = 0
    package var bloomBytes = 0
    package var bloomProbes = 0
    /// The stored statistics, which verify found to match the data.
    package var statistics: SSTableStatistics
}

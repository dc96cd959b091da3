/// The engine's only door to the disk. Every file the engine writes goes through this, so tests can
/// swap in `FaultInjectingFileSystem` (power loss that drops unsynced data, ENOSPC, EIO) and check
/// that recovery never loses acknowledged writes.
///
/// Durability contract, the same as POSIX: bytes written to a file survive a power loss only after
/// `WritableFile.sync()`; a new name (create or rename) survives only after `syncDirectory` of its
/// parent directory.
package protocol FileSystem: Sendable {
    /// Creates (or truncates, when `truncate`) a file for appending.
    func createFile(_ path: String, truncate: Bool) throws -> any WritableFile
    /// Opens an existing file for appending at its end.
    func openForAppend(_ path: String) throws -> any WritableFile
    func openForReading(_ path: String) throws -> any ReadableFile
    func rename(_ from: String, to: String) throws
    func remove(_ path: String) throws
    func fileExists(_ path: String) -> Bool
    func fileSize(_ path: String) throws -> Int
    /// Cuts a file to `size` bytes (used to drop a torn WAL tail) and syncs it.
    func truncate(_ path: String, to size: Int) throws
    /// Names (not paths) of the entries in a directory.
    func listDirectory(_ path: String) throws -> [String]
    func createDirectory(_ path: String) throws
    /// fsync of a directory, which makes creates, renames and removes inside it durable.
    func syncDirectory(_ path: String) throws
}

/// A file being appended to. Not safe for concurrent appends; callers serialize.
package protocol WritableFile: AnyObject, Sendable {
    var path: String { get }
    /// Bytes appended so far (including what is not yet synced).
    var size: Int { get }
    func append(_ bytes: UnsafeRawBufferPointer) throws
    /// fdatasync: everything appended so far survives a power loss when this returns.
    func sync() throws
    func close() throws
    /// Reserves `bytes` for the file (its length becomes at least `bytes`, the unwritten part
    /// reading as zeros) so later appends overwrite allocated blocks instead of growing the file.
    /// Returns false where the file system cannot (the file then grows as before).
    func preallocate(_ bytes: Int) -> Bool
    /// Cuts a preallocated file back to the bytes appended (`size`).
    func trimToSize() throws
}

extension FileSystem {
    /// Creates `directory` and every missing ancestor, one level at a time, fsyncing each new
    /// directory's parent so its name survives a power loss (a data directory whose entry is lost
    /// takes every acknowledged write in it along). A failed fsync is thrown, never ignored.
    package func createDirectoryDurably(_ directory: String) throws {
        var missing: [String] = []
        var path = directory
        while !fileExists(path) {
            missing.append(path)
            let parent = parentDirectory(of: path)
            if parent == path || parent == "." || parent == "/" { break }
            path = parent
        }
        for dir in missing.reversed() {
            try createDirectory(dir)
            let parent = parentDirectory(of: dir)
            do {
                try syncDirectory(parent)
            } catch var e as StorageError {
                e.message =
                    "created the directory \(directory) but could not make its name durable (fsync of \(parent)): \(e.message)"
                throw e
            }
        }
    }
}

extension WritableFile {
    /// Files that cannot reserve space (test doubles) grow with their appends.
    package func preallocate(_ bytes: Int) -> Bool { false }
    package func trimToSize() throws {}

    package func append(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try append($0) }
    }
}

/// A file read at offsets, safe for concurrent readers (pread).
package protocol ReadableFile: AnyObject, Sendable {
    var path: String { get }
    var size: Int { get }
    /// Reads exactly `count` bytes at `offset`; throws `.corruption` if the file is shorter.
    func read(at offset: Int, count: Int) throws -> [UInt8]
    func close() throws
}

extension ReadableFile {
    package func readAll() throws -> [UInt8] { try read(at: 0, count: size) }
}

/// Joins path components with "/".
@inlinable
package func joinPath(_ directory: String, _ name: String) -> String {
    directory.hasSuffix("/") ? directory + name : directory + "/" + name
}

package func parentDirectory(of path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    if slash == path.startIndex { return "/" }
    return String(path[..<slash])
}

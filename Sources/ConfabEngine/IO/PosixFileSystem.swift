#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The real file system, through POSIX calls. fdatasync for data, fsync for directories.
package struct PosixFileSystem: FileSystem {
    package init() {}

    static func error(_ op: String, _ path: String, _ err: Int32 = errno) -> StorageError {
        let reason = String(cString: strerror(err))
        if err == ENOSPC {
            return StorageError(
                .diskFull, "\(op) failed: the disk is full; free space and retry (\(reason))", path: path, errno: err)
        }
        if err == ENOENT {
            return StorageError(.notFound, "\(op) failed: no such file or directory", path: path, errno: err)
        }
        return StorageError(.io, "\(op) failed: \(reason)", path: path, errno: err)
    }

    package func createFile(_ path: String, truncate: Bool) throws -> any WritableFile {
        let flags = O_WRONLY | O_CREAT | O_CLOEXEC | (truncate ? O_TRUNC : O_EXCL)
        let fd = open(path, flags, 0o644)
        guard fd >= 0 else { throw Self.error("create", path) }
        return PosixWritableFile(fd: fd, path: path, size: 0)
    }

    package func openForAppend(_ path: String) throws -> any WritableFile {
        let fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard fd >= 0 else { throw Self.error("open for append", path) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let e = errno
            Glibc.close(fd)
            throw Self.error("stat", path, e)
        }
        return PosixWritableFile(fd: fd, path: path, size: Int(st.st_size))
    }

    package func openForReading(_ path: String) throws -> any ReadableFile {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Self.error("open", path) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let e = errno
            Glibc.close(fd)
            throw Self.error("stat", path, e)
        }
        return PosixReadableFile(fd: fd, path: path, size: Int(st.st_size))
    }

    package func rename(_ from: String, to: String) throws {
        guard Glibc.rename(from, to) == 0 else { throw Self.error("rename to \(to)", from) }
    }

    package func remove(_ path: String) throws {
        guard unlink(path) == 0 else { throw Self.error("remove", path) }
    }

    package func fileExists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    package func fileSize(_ path: String) throws -> Int {
        var st = stat()
        guard stat(path, &st) == 0 else { throw Self.error("stat", path) }
        return Int(st.st_size)
    }

    package func truncate(_ path: String, to size: Int) throws {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Self.error("open for truncate", path) }
        defer { Glibc.close(fd) }
        guard ftruncate(fd, off_t(size)) == 0 else { throw Self.error("truncate", path) }
        guard fdatasync(fd) == 0 else { throw Self.error("fdatasync", path) }
    }

    package func listDirectory(_ path: String) throws -> [String] {
        guard let dir = opendir(path) else { throw Self.error("list directory", path) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    package func createDirectory(_ path: String) throws {
        var current = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            current += "/" + part
            if mkdir(current, 0o755) != 0 && errno != EEXIST {
                throw Self.error("create directory", current)
            }
        }
    }

    package func syncDirectory(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw Self.error("open directory", path) }
        defer { Glibc.close(fd) }
        guard fsync(fd) == 0 else { throw Self.error("fsync directory", path) }
    }
}

final class PosixWritableFile: WritableFile, @unchecked Sendable {
    let path: String
    private var fd: Int32
    private(set) var size: Int
    /// Space was reserved past `size` (`preallocate`): the file is longer than what was appended.
    private var preallocated = false

    init(fd: Int32, path: String, size: Int) {
        self.fd = fd
        self.path = path
        self.size = size
    }

    deinit { if fd >= 0 { Glibc.close(fd) } }

    func append(_ bytes: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw PosixFileSystem.error("write", path)
            }
            done += n
        }
        size += bytes.count
    }

    func sync() throws {
        guard fdatasync(fd) == 0 else { throw PosixFileSystem.error("fdatasync", path) }
    }

    /// Why: an fdatasync after an append that grew the file must also write the inode (its new
    /// length); into preallocated space it writes only the data. Measured on this machine's ext4
    /// (300-byte write + fdatasync, 3,000 times): 48–61 µs of CPU and 120–158 µs wall appending,
    /// 30–35 µs and 82–97 µs into `posix_fallocate`d space (FALLOC_FL_KEEP_SIZE, which leaves
    /// the length to grow, saved nothing). RocksDB recycles WAL files for the same reason.
    func preallocate(_ bytes: Int) -> Bool {
        guard bytes > size else { return false }
        guard posix_fallocate(fd, 0, off_t(bytes)) == 0 else { return false }
        preallocated = true
        return true
    }

    func trimToSize() throws {
        guard preallocated else { return }
        guard ftruncate(fd, off_t(size)) == 0 else { throw PosixFileSystem.error("ftruncate", path) }
        preallocated = false
    }

    func close() throws {
        guard fd >= 0 else { return }
        let rc = Glibc.close(fd)
        fd = -1
        guard rc == 0 else { throw PosixFileSystem.error("close", path) }
    }
}

final class PosixReadableFile: ReadableFile, @unchecked Sendable {
    let path: String
    let size: Int
    private let fd: Int32

    init(fd: Int32, path: String, size: Int) {
        self.fd = fd
        self.path = path
        self.size = size
    }

    deinit { Glibc.close(fd) }

    func read(at offset: Int, count: Int) throws -> [UInt8] {
        guard offset >= 0, count >= 0, offset + count <= size else {
            throw StorageError(
                .corruption, "read of \(count) bytes at \(offset) runs past the end of the file (\(size) bytes)",
                path: path, offset: offset)
        }
        if count == 0 { return [] }
        return try [UInt8](unsafeUninitializedCapacity: count) { buf, initialized in
            var done = 0
            while done < count {
                let n = pread(fd, buf.baseAddress! + done, count - done, off_t(offset + done))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw PosixFileSystem.error("pread", path)
                }
                if n == 0 {
                    throw StorageError(
                        .corruption, "file ended early reading \(count) bytes at \(offset)", path: path,
                        offset: offset + done)
                }
                done += n
            }
            initialized = count
        }
    }

    func close() throws {}
}

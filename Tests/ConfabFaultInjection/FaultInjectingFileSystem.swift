import ConfabEngine
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A `FileSystem` for tests: the real disk under `root`, plus a model of what a power loss would
/// keep, a crash switch, and injected errors (ENOSPC, EIO on sync, failing renames).
///
/// The model follows the POSIX contract stated on `FileSystem` (and LevelDB's
/// `fault_injection_test.cc`):
/// - Every file has an identity (an inode, here an object id). File *contents* are durable up to
///   the length covered by the last `WritableFile.sync()` (or `truncate`) of that file.
/// - Directory *entries* (create, rename, remove) are durable only after `syncDirectory` of the
///   directory that holds them. Each directory keeps a live name→id map and the durable copy taken
///   when its last `syncDirectory` started.
///
/// `simulatePowerLoss()` rewrites every directory under `root` on disk to its durable state: names
/// missing from the durable map are removed, removed-but-durable names come back, a renamed file whose
/// rename was not directory-synced reappears under its old name, and every file is cut to its
/// synced content. After it this instance stays dead; `reboot()` returns a fresh instance over the
/// same directory, the view of the machine after it restarts.
///
/// `crash()` kills the instance: from then on every call, including calls on handles opened
/// earlier (which an abandoned engine's background threads may still hold), throws
/// `StorageError(.io, "simulated crash")`. `crash()` waits for calls already running to finish, so
/// nothing touches the disk once it returns.
///
/// Directories are entries too: a directory made by `createDirectory` (each missing level of a
/// `mkdir -p`) survives a power loss only once its parent has been `syncDirectory`'d after it was
/// made; otherwise it vanishes with everything in it.
///
/// Simplification: a file written through a handle after its name was removed keeps the durable
/// content it had when removed. Directories are never removed or renamed through this type.
/// All paths must lie under `root`. Thread-safe.
package final class FaultInjectingFileSystem: FileSystem, @unchecked Sendable {
    /// The directory this instance models; every path it is given must be inside it.
    package let root: String

    private let base = PosixFileSystem()
    /// Guards all state below; `condition` also signals when `inFlight` drops to zero.
    private let condition = BlockingMutex()
    private let idle: BlockingCondition

    fileprivate typealias ObjectID = Int
    private enum Durable {
        /// The first `n` bytes of the file's current content on disk are durable.
        case prefix(Int)
        /// The durable content, saved because the file on disk was truncated, replaced or removed
        /// while an older durable version still had a durable name.
        case bytes([UInt8])
    }
    private struct Directory {
        var live: [String: ObjectID] = [:]
        var durable: [String: ObjectID] = [:]
        /// Generation of the snapshot in `durable`, so a slow `syncDirectory` finishing late cannot
        /// replace a newer durable map with an older one.
        var durableGeneration: UInt64 = 0
    }

    private var objects: [ObjectID: Durable] = [:]
    private var directories: [String: Directory] = [:]
    /// Directories created whose entry in their parent is not durable yet, with the directory-sync
    /// generation at which they were made (a parent sync that started later covers them).
    private var newDirectories: [String: UInt64] = [:]
    private var nextObject: ObjectID = 1
    private var nextGeneration: UInt64 = 1
    private var dead = false
    private var inFlight = 0

    // Injected faults.
    private var writeBudget: Int? = nil
    private var partialWrites = true
    private var syncFailures = 0
    private var syncFailureFilter: (@Sendable (String) -> Bool)? = nil
    private var directorySyncFailures = 0
    private var renameFailures = 0
    private var renameFailureFilter: (@Sendable (String) -> Bool)? = nil
    private var crashCountdown: Int? = nil
    private var syncsAreNoOps = false
    private var tracing = false
    private var trace: [String] = []

    // Counters.
    private var counters = Counters()

    /// What the instance has seen, for tests that want to know the engine really synced.
    package struct Counters: Sendable, Hashable {
        package var fileSyncs = 0
        package var directorySyncs = 0
        package var bytesAppended = 0
        package var injectedWriteFailures = 0
        package var injectedSyncFailures = 0
        package var injectedRenameFailures = 0
    }

    /// Models the files under `root`. Files already there count as durable (the state of a disk
    /// after a clean reboot). Creates `root` if it does not exist.
    package init(root: String) throws {
        self.idle = BlockingCondition(condition)
        self.root = Self.normalize(root)
        try base.createDirectory(self.root)
    }

    // MARK: - Crash, power loss, reboot

    /// Kills this instance: every later call and every call on an open handle throws
    /// `StorageError(.io, "simulated crash")`. Returns after calls already in progress have finished.
    package func crash() {
        condition.lock()
        dead = true
        while inFlight > 0 { idle.wait() }
        condition.unlock()
    }

    /// Whether `crash()` (or `simulatePowerLoss()`) has been called.
    package var isCrashed: Bool {
        condition.lock()
        defer { condition.unlock() }
        return dead
    }

    /// What a power loss does to bytes appended to a file after its last sync.
    package enum UnsyncedData: Sendable, Hashable {
        /// All of them are lost: the file is cut to its synced length.
        case dropped
        /// Disk writeback had already persisted an arbitrary subset of the unsynced pages, in no
        /// particular order (as on a real disk): each 4 KiB page (aligned to file offsets) beyond
        /// the synced length is kept or reads back as zeros, and the file keeps its length or ends
        /// at a random page boundary past the synced length. Seeded, so a failure replays.
        case randomPages(seed: UInt64)
    }

    static let pageBytes = 4096

    /// Crashes the instance (see `crash()`) and rewrites the directories under `root` on disk to
    /// what a power loss at this moment would leave: synced file contents (plus, with
    /// `.randomPages`, a random subset of the unsynced pages) and only directory-synced names. The
    /// instance stays dead; use `reboot()` or a new instance to go on.
    package func simulatePowerLoss(unsynced: UnsyncedData = .dropped) throws {
        crash()
        condition.lock()
        defer { condition.unlock() }

        // Phase 1: decide, per directory, which names are kept in place (same file, cut to its
        // durable length) and which must be rewritten from saved or relocated content. Every byte
        // that is needed is read before anything on disk changes.
        struct Plan {
            var remove: [String] = []
            var cut: [(String, Int)] = []
            var write: [(String, [UInt8])] = []
        }
        var plans: [String: Plan] = [:]
        // A directory whose own entry is not durable vanishes with everything in it.
        let vanished = newDirectories.keys.filter { dir in
            !newDirectories.keys.contains { other in other != dir && dir.hasPrefix(other + "/") }
        }
        func isVanished(_ dir: String) -> Bool {
            vanished.contains { dir == $0 || dir.hasPrefix($0 + "/") }
        }
        for (dir, state) in directories where !isVanished(dir) {
            var plan = Plan()
            for (name, id) in state.live {
                if state.durable[name] == id, case .prefix(let n)? = objects[id] {
                    plan.cut.append((name, n))
                } else {
                    plan.remove.append(name)
                }
            }
            for (name, id) in state.durable {
                if state.live[name] == id, case .prefix = objects[id] { continue }
                plan.write.append((name, try durableContent(of: id)))
            }
            plans[dir] = plan
        }
        // Phase 2: apply.
        for (dir, plan) in plans.sorted(by: { $0.key < $1.key }) {
            for name in plan.remove { try base.remove(joinPath(dir, name)) }
            for (name, n) in plan.cut {
                let path = joinPath(dir, name)
                let size = try base.fileSize(path)
                guard size > n else { continue }
                switch unsynced {
                case .dropped:
                    try base.truncate(path, to: n)
                case .randomPages(let seed):
                    try persistRandomPages(
                        path, synced: n, size: size, seed: seed ^ UInt64(truncatingIfNeeded: path.hashValueStable))
                }
            }
            for (name, bytes) in plan.write {
                let file = try base.createFile(joinPath(dir, name), truncate: true)
                try file.append(bytes)
                try file.sync()
                try file.close()
            }
            try base.syncDirectory(dir)
        }
        for dir in vanished.sorted() {
            try FileManager.default.removeItem(atPath: dir)
            try base.syncDirectory(parentDirectory(of: dir))
        }
        // The model is spent: this instance is dead and a reboot starts from a fresh scan.
        directories = [:]
        objects = [:]
        newDirectories = [:]
    }

    /// Simulates a power loss and returns the file system as the restarted machine sees it.
    package func reboot(unsynced: UnsyncedData = .dropped) throws -> FaultInjectingFileSystem {
        try simulatePowerLoss(unsynced: unsynced)
        return try FaultInjectingFileSystem(root: root)
    }

    /// Rewrites the unsynced tail [synced, size) of `path`: each page kept or zero-filled at
    /// random, then the file ends at its full size or at a random page boundary after `synced`.
    private func persistRandomPages(_ path: String, synced: Int, size: Int, seed: UInt64) throws {
        var rng = PowerLossRandom(seed: seed)
        let file = try base.openForReading(path)
        var tail = try file.read(at: synced, count: size - synced)
        try file.close()
        var boundaries: [Int] = []  // end offsets of the unsynced pages
        var start = synced
        while start < size {
            let end = min(size, (start / Self.pageBytes + 1) * Self.pageBytes)
            if rng.next() & 1 == 0 {
                for i in (start - synced)..<(end - synced) { tail[i] = 0 }
            }
            boundaries.append(end)
            start = end
        }
        // The file length (metadata) is written back on its own schedule too.
        let length = rng.next() & 1 == 0 ? size : boundaries[Int(rng.next() % UInt64(boundaries.count))]
        try base.truncate(path, to: synced)
        let out = try base.openForAppend(path)
        try out.append(Array(tail.prefix(length - synced)))
        try out.sync()
        try out.close()
    }

    // MARK: - Fault injection

    /// After `bytes` more bytes have been appended (to any file), appends fail with
    /// `StorageError(.diskFull)` (ENOSPC) until `clearWriteFailures()`. With `partial`, the append
    /// that crosses the limit writes what still fits before failing, as a real full disk does.
    package func failWrites(afterBytes bytes: Int, partial: Bool = true) {
        condition.withLock {
            writeBudget = max(0, bytes)
            partialWrites = partial
        }
    }

    /// Frees the "disk": appends succeed again.
    package func clearWriteFailures() {
        condition.withLock { writeBudget = nil }
    }

    /// The next `count` file syncs (of files whose path passes `matching`, all when nil) fail with
    /// EIO without syncing anything.
    package func failSyncs(count: Int = 1, matching: (@Sendable (String) -> Bool)? = nil) {
        condition.withLock {
            syncFailures = count
            syncFailureFilter = matching
        }
    }

    /// The next `count` directory syncs fail with EIO without syncing anything.
    package func failDirectorySyncs(count: Int = 1) {
        condition.withLock { directorySyncFailures = count }
    }

    /// The next `count` renames (whose source path passes `matching`, all when nil) fail with EIO and
    /// change nothing.
    package func failRenames(count: Int = 1, matching: (@Sendable (String) -> Bool)? = nil) {
        condition.withLock {
            renameFailures = count
            renameFailureFilter = matching
        }
    }

    /// Crashes the instance (as `crash()`) just before the `operations`-th next operation that
    /// changes the disk (create, append, sync, truncate, rename, remove, directory sync); that
    /// operation and all later ones throw. Walking `operations` over 1, 2, 3, … crashes an
    /// engine step at every point of, say, a flush.
    package func crash(afterOperations operations: Int) {
        condition.withLock { crashCountdown = max(1, operations) }
    }

    /// A disk with a volatile write cache that ignores flushes: syncs succeed but make nothing
    /// durable. Only for checking that a crash test can fail.
    package func makeSyncsNoOps(_ enabled: Bool = true) {
        condition.withLock { syncsAreNoOps = enabled }
    }

    /// Starts recording every disk-changing call (as swift-nio's mocking layer records system
    /// calls); `trace` returns them in order, including the one a planned crash stopped.
    package func startTrace() {
        condition.withLock {
            tracing = true
            trace = []
        }
    }

    /// The disk-changing calls since `startTrace()`, in order.
    package var operationTrace: [String] {
        condition.withLock { trace }
    }

    /// Removes every injected fault (the crash switch stays).
    package func clearFaults() {
        condition.withLock {
            writeBudget = nil
            syncFailures = 0
            syncFailureFilter = nil
            directorySyncFailures = 0
            renameFailures = 0
            renameFailureFilter = nil
            crashCountdown = nil
            syncsAreNoOps = false
        }
    }

    package var stats: Counters {
        condition.withLock { counters }
    }

    // MARK: - FileSystem

    package func createFile(_ path: String, truncate: Bool) throws -> any WritableFile {
        let path = try checked(path)
        return try withStateLock("create \(path)") {
            let (dir, name) = Self.split(path)
            var state = try directory(dir)
            let existing = try liveObject(name, in: &state, dir: dir)
            directories[dir] = state
            if let existing, truncate {
                // O_TRUNC keeps the inode: its durable content is whatever was synced before.
                try preserveDurableContent(of: existing, livePath: path)
            }
            let file = try base.createFile(path, truncate: truncate)
            let id: ObjectID
            if let existing {
                id = existing
            } else {
                id = newObject(.prefix(0))
                state.live[name] = id
            }
            directories[dir] = state
            return FaultWritableFile(fs: self, id: id, base: file)
        }
    }

    package func openForAppend(_ path: String) throws -> any WritableFile {
        let path = try checked(path)
        return try withStateLock("open for append \(path)") {
            let (dir, name) = Self.split(path)
            var state = try directory(dir)
            let existing = try liveObject(name, in: &state, dir: dir)
            directories[dir] = state
            let file = try base.openForAppend(path)
            guard let id = existing else {
                throw StorageError(.io, "fault-injection model lost track of a file", path: path)
            }
            return FaultWritableFile(fs: self, id: id, base: file)
        }
    }

    package func openForReading(_ path: String) throws -> any ReadableFile {
        let path = try checked(path)
        try enter()
        defer { leave() }
        return FaultReadableFile(fs: self, base: try base.openForReading(path))
    }

    package func rename(_ from: String, to: String) throws {
        let from = try checked(from)
        let to = try checked(to)
        try withStateLock("rename \(from) -> \(to)") {
            if renameFailures > 0, renameFailureFilter?(from) ?? true {
                renameFailures -= 1
                counters.injectedRenameFailures += 1
                throw StorageError(.io, "rename to \(to) failed: Input/output error (injected)", path: from, errno: EIO)
            }
            let (fromDir, fromName) = Self.split(from)
            let (toDir, toName) = Self.split(to)
            var fromState = try directory(fromDir)
            guard let id = try liveObject(fromName, in: &fromState, dir: fromDir) else {
                directories[fromDir] = fromState
                try base.rename(from, to: to)  // throws the real error (ENOENT)
                return
            }
            directories[fromDir] = fromState
            var toState = try directory(toDir)
            let replaced = try liveObject(toName, in: &toState, dir: toDir)
            directories[toDir] = toState
            if let replaced, replaced != id {
                try preserveDurableContent(of: replaced, livePath: to)
            }
            try base.rename(from, to: to)
            directories[fromDir]!.live[fromName] = nil
            directories[toDir]!.live[toName] = id
            collectGarbage()
        }
    }

    package func remove(_ path: String) throws {
        let path = try checked(path)
        try withStateLock("remove \(path)") {
            let (dir, name) = Self.split(path)
            var state = try directory(dir)
            let id = try liveObject(name, in: &state, dir: dir)
            directories[dir] = state
            if let id { try preserveDurableContent(of: id, livePath: path) }
            try base.remove(path)
            directories[dir]!.live[name] = nil
            collectGarbage()
        }
    }

    package func fileExists(_ path: String) -> Bool {
        guard let path = try? checked(path), (try? enter()) != nil else { return false }
        defer { leave() }
        return base.fileExists(path)
    }

    package func fileSize(_ path: String) throws -> Int {
        let path = try checked(path)
        try enter()
        defer { leave() }
        return try base.fileSize(path)
    }

    package func truncate(_ path: String, to size: Int) throws {
        let path = try checked(path)
        try withStateLock("truncate \(path) to \(size)") {
            let (dir, name) = Self.split(path)
            var state = try directory(dir)
            let id = try liveObject(name, in: &state, dir: dir)
            directories[dir] = state
            try base.truncate(path, to: size)  // syncs: everything now on disk is durable
            if let id { objects[id] = .prefix(size) }
        }
    }

    package func listDirectory(_ path: String) throws -> [String] {
        let path = try checked(path)
        try enter()
        defer { leave() }
        return try base.listDirectory(path)
    }

    package func createDirectory(_ path: String) throws {
        let path = try checked(path)
        try withStateLock("create directory \(path)") {
            // Every level that does not exist yet is new, and not durable until its parent is synced.
            var created: [String] = []
            var p = path
            while p != root && p.hasPrefix(root) && !base.fileExists(p) {
                created.append(p)
                p = parentDirectory(of: p)
            }
            try base.createDirectory(path)
            for dir in created { newDirectories[dir] = nextGeneration }
        }
    }

    package func syncDirectory(_ path: String) throws {
        let path = try checked(path)
        // The durable map is the live map as of the start of the fsync: entries added while it
        // runs may or may not be covered, so they are not counted.
        let (snapshot, generation): ([String: ObjectID], UInt64) = try withStateLock("sync directory \(path)") {
            if directorySyncFailures > 0 {
                directorySyncFailures -= 1
                counters.injectedSyncFailures += 1
                throw StorageError(.io, "fsync directory failed: Input/output error (injected)", path: path, errno: EIO)
            }
            let state = try directory(path)
            defer { nextGeneration += 1 }
            return (state.live, nextGeneration)
        }
        let prefix = path == "/" ? "/" : path + "/"
        try enter()
        defer { leave() }
        try base.syncDirectory(path)
        condition.withLock {
            counters.directorySyncs += 1
            if syncsAreNoOps { return }
            if var state = directories[path], state.durableGeneration < generation {
                state.durable = snapshot
                state.durableGeneration = generation
                directories[path] = state
            }
            // Subdirectories made before this sync started now have durable entries.
            for (dir, made) in newDirectories
            where made <= generation && parentDirectory(of: dir) == path && dir.hasPrefix(prefix) {
                newDirectories[dir] = nil
            }
            collectGarbage()
        }
    }

    // MARK: - Handle callbacks

    fileprivate func append(_ bytes: UnsafeRawBufferPointer, to file: any WritableFile) throws {
        try enter(mutating: "append \(bytes.count) bytes to \(file.path)")
        defer { leave() }
        let allowed: Int = condition.withLock {
            counters.bytesAppended += bytes.count
            guard let budget = writeBudget else { return bytes.count }
            if bytes.count <= budget {
                writeBudget = budget - bytes.count
                return bytes.count
            }
            counters.injectedWriteFailures += 1
            let n = partialWrites ? budget : 0
            writeBudget = budget - n
            return n
        }
        if allowed < bytes.count {
            if allowed > 0 { try file.append(UnsafeRawBufferPointer(rebasing: bytes[0..<allowed])) }
            throw StorageError(
                .diskFull, "write failed: the disk is full; free space and retry (injected ENOSPC)",
                path: file.path, errno: ENOSPC)
        }
        try file.append(bytes)
    }

    fileprivate func sync(_ file: any WritableFile, id: ObjectID) throws {
        try enter(mutating: "sync \(file.path)")
        defer { leave() }
        try condition.withLock {
            if syncFailures > 0, syncFailureFilter?(file.path) ?? true {
                syncFailures -= 1
                counters.injectedSyncFailures += 1
                throw StorageError(.io, "fdatasync failed: Input/output error (injected)", path: file.path, errno: EIO)
            }
        }
        let length = file.size
        try file.sync()
        condition.withLock {
            counters.fileSyncs += 1
            if syncsAreNoOps { return }
            switch objects[id] {
            case .prefix(let n)?: objects[id] = .prefix(max(n, length))
            case .bytes?:
                // Rewritten in place since the last sync: now the new content is durable, unless
                // the name was removed meanwhile (then the saved content stays what it was).
                if isLive(id) { objects[id] = .prefix(length) }
            case nil: break  // no durable name refers to it any more
            }
        }
    }

    /// Admits one call unless the instance is dead; `mutating` calls count toward a planned crash.
    fileprivate func enter(mutating operation: @autoclosure () -> String? = nil) throws {
        condition.lock()
        defer { condition.unlock() }
        if let op = operation() { try countDownToCrash(op) } else if dead { throw Self.crashError }
        inFlight += 1
    }

    fileprivate func leave() {
        condition.lock()
        inFlight -= 1
        if inFlight == 0 { idle.broadcast() }
        condition.unlock()
    }

    static let crashError = StorageError(.io, "simulated crash")

    // MARK: - Model helpers (call with the lock held)

    private func withStateLock<T>(_ operation: @autoclosure () -> String, _ body: () throws -> T) throws -> T {
        condition.lock()
        defer { condition.unlock() }
        try countDownToCrash(operation())
        return try body()
    }

    /// With the lock held: throws when dead, and makes the planned crash happen.
    private func countDownToCrash(_ operation: @autoclosure () -> String) throws {
        if dead { throw Self.crashError }
        if tracing { trace.append(operation()) }
        if let n = crashCountdown {
            if n <= 1 {
                crashCountdown = nil
                dead = true
                throw Self.crashError
            }
            crashCountdown = n - 1
        }
    }

    /// The directory's state, scanning it from disk the first time (files found count as durable).
    private func directory(_ dir: String) throws -> Directory {
        if let state = directories[dir] { return state }
        var state = Directory()
        if base.fileExists(dir) {
            for name in try base.listDirectory(dir) where Self.isRegularFile(joinPath(dir, name)) {
                let id = newObject(.prefix(try base.fileSize(joinPath(dir, name))))
                state.live[name] = id
                state.durable[name] = id
            }
        }
        directories[dir] = state
        return state
    }

    /// The object a live name refers to; a file that appeared on disk behind the model's back is
    /// adopted as durable.
    private func liveObject(_ name: String, in state: inout Directory, dir: String) throws -> ObjectID? {
        if let id = state.live[name] { return id }
        let path = joinPath(dir, name)
        guard Self.isRegularFile(path) else { return nil }
        let id = newObject(.prefix(try base.fileSize(path)))
        state.live[name] = id
        state.durable[name] = id
        return id
    }

    private func newObject(_ durable: Durable) -> ObjectID {
        let id = nextObject
        nextObject += 1
        objects[id] = durable
        return id
    }

    /// Before the file at `livePath` (object `id`) loses its content on disk (truncate, removal,
    /// replacement by rename), saves its durable bytes if a durable name still refers to it.
    private func preserveDurableContent(of id: ObjectID, livePath: String) throws {
        guard case .prefix(let n)? = objects[id], isDurablyNamed(id) else { return }
        objects[id] = .bytes(try readPrefix(livePath, n))
    }

    private func durableContent(of id: ObjectID) throws -> [UInt8] {
        switch objects[id] {
        case .bytes(let b)?: return b
        case .prefix(let n)?:
            for (dir, state) in directories {
                if let name = state.live.first(where: { $0.value == id })?.key {
                    return try readPrefix(joinPath(dir, name), n)
                }
            }
            return []
        case nil: return []
        }
    }

    private func readPrefix(_ path: String, _ n: Int) throws -> [UInt8] {
        guard n > 0 else { return [] }
        let file = try base.openForReading(path)
        defer { try? file.close() }
        return try file.read(at: 0, count: min(n, file.size))
    }

    private func isDurablyNamed(_ id: ObjectID) -> Bool {
        directories.values.contains { $0.durable.values.contains(id) }
    }

    private func isLive(_ id: ObjectID) -> Bool {
        directories.values.contains { $0.live.values.contains(id) }
    }

    /// Forgets objects that no name, live or durable, refers to.
    private func collectGarbage() {
        var referenced = Set<ObjectID>()
        for state in directories.values {
            referenced.formUnion(state.live.values)
            referenced.formUnion(state.durable.values)
        }
        for id in objects.keys where !referenced.contains(id) { objects[id] = nil }
    }

    // MARK: - Paths

    private func checked(_ path: String) throws -> String {
        let p = Self.normalize(path)
        guard p == root || p.hasPrefix(root == "/" ? "/" : root + "/") else {
            throw StorageError(.invalidArgument, "path is outside the fault-injection root \(root)", path: path)
        }
        return p
    }

    static func normalize(_ path: String) -> String {
        var absolute = path
        if !absolute.hasPrefix("/") {
            absolute = FileManager.default.currentDirectoryPath + "/" + absolute
        }
        var parts: [Substring] = []
        for part in absolute.split(separator: "/") where part != "." && !part.isEmpty {
            if part == ".." { _ = parts.popLast() } else { parts.append(part) }
        }
        return "/" + parts.joined(separator: "/")
    }

    static func split(_ path: String) -> (dir: String, name: String) {
        let dir = parentDirectory(of: path)
        let name = String(path[path.index(after: path.lastIndex(of: "/")!)...])
        return (dir, name)
    }

    static func isRegularFile(_ path: String) -> Bool {
        var st = stat()
        guard stat(path, &st) == 0 else { return false }
        return (st.st_mode & S_IFMT) == S_IFREG
    }
}

/// A handle that checks the crash switch and the injected faults, and tells the model what was synced.
final class FaultWritableFile: WritableFile, @unchecked Sendable {
    private let fs: FaultInjectingFileSystem
    private let id: Int
    private let base: any WritableFile

    init(fs: FaultInjectingFileSystem, id: Int, base: any WritableFile) {
        self.fs = fs
        self.id = id
        self.base = base
    }

    var path: String { base.path }
    var size: Int { base.size }

    func append(_ bytes: UnsafeRawBufferPointer) throws {
        try fs.append(bytes, to: base)
    }

    func sync() throws {
        try fs.sync(base, id: id)
    }

    func close() throws {
        try fs.enter()
        defer { fs.leave() }
        try base.close()
    }
}

/// A read handle that stops working when the file system crashes.
final class FaultReadableFile: ReadableFile, @unchecked Sendable {
    private let fs: FaultInjectingFileSystem
    private let base: any ReadableFile

    init(fs: FaultInjectingFileSystem, base: any ReadableFile) {
        self.fs = fs
        self.base = base
    }

    var path: String { base.path }
    var size: Int { base.size }

    func read(at offset: Int, count: Int) throws -> [UInt8] {
        try fs.enter()
        defer { fs.leave() }
        return try base.read(at: offset, count: count)
    }

    func close() throws {
        try fs.enter()
        defer { fs.leave() }
        try base.close()
    }
}

/// SplitMix64 for `UnsyncedData.randomPages`.
private struct PowerLossRandom {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension String {
    /// FNV-1a of the UTF-8 bytes: stable across runs, unlike `hashValue`.
    fileprivate var hashValueStable: UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return h
    }
}

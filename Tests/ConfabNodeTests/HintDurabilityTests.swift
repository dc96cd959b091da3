import ConfabClient
import ConfabEngine
import ConfabRing
import ConfabWire
import Foundation
import Synchronization
import Testing

@testable import ConfabNode

/// A write that needed a hint is acknowledged only once the hint is on disk: a coordinator that
/// crashes right after the acknowledgement must not lose the write for the replica that missed it.
// In RingClusterTests (serialized): three-node rings started in parallel with the other cluster
// suites starve each other of the two cores and miss the 15 s ring-formation deadline.
extension RingClusterTests {
    @Test func aWriteIsNotAcknowledgedBeforeItsHintIsDurable() async throws {
        let chat: Int64 = 9191
        let hintDisk = GatedFileSystem()
        let n1 = try await InProcessNode.start(hintFileSystem: hintDisk) {
            fastRing(&$0, seeds: [])
            // Room for the replicas to answer on a loaded machine: the check is about the hint, not speed.
            $0.writeTimeout = .seconds(5)
        }
        let n2 = try await InProcessNode.start { fastRing(&$0, seeds: [n1.address]) }
        let n3 = try await InProcessNode.start { fastRing(&$0, seeds: [n1.address]) }
        do {
            for n in [n1, n2, n3] {
                let c = n.client()
                try await eventually("\(n.address) sees 3 normal nodes") { try await ringIsNormal(c, count: 3) }
                await c.shutdown()
            }
            let n3ID = try #require(n3.node.nodeID)
            try await n3.stop()
            let client = ConfabClient.forTests(nodes: [n1.address])
            try await eventually("n1 sees n3 down") {
                try await client.status().nodes.contains { $0.id == n3ID && !$0.isUp }
            }

            // n1's hint store cannot sync: the hint for n3 cannot become durable.
            hintDisk.close()
            let write = Task {
                try await client.write(
                    TestMessages.mutation(
                        chatId: chat, timestamp: 1, messageId: "h", sender: "s", body: "b",
                        writeTime: 1_000), consistency: .quorum)
            }
            try await eventually("the hint store's sync is held back") { hintDisk.heldSyncs > 0 }
            // n1 and n2 have applied the write (ONE reads answered by each one's own data) …
            for n in [n1, n2] {
                let c = ConfabClient.forTests(nodes: [n.address])
                try await eventually("\(n.address) holds the write") {
                    try await !c.read(TestMessages.latest(chatId: chat, limit: 10), consistency: .one).rows.isEmpty
                }
                await c.shutdown()
            }
            // … so the level is met; still no acknowledgement while the hint is not on disk. Allow
            // an early acknowledgement a second to arrive (it comes within milliseconds when it does).
            let acknowledgedEarly = try await completes(write, within: .seconds(1))
            #expect(!acknowledgedEarly, "the write was acknowledged while its hint was not durable")
            hintDisk.open()
            _ = try await write.value
            let onDisk = try await n1.node.persistedHints().filter { $0.target.id == n3ID }
            #expect(onDisk.count == 1)
            await client.shutdown()
            for n in [n1, n2] { try await n.stop() }
        } catch {
            // A node left running gossips on, and a later ring reusing its port meets it.
            hintDisk.open()
            for n in [n1, n2, n3] { try? await n.stop() }
            throw error
        }
    }

    /// True if `task` finished within `timeout`.
    func completes<T: Sendable>(_ task: Task<T, any Error>, within timeout: Duration) async throws -> Bool {
        let done = Mutex(false)
        let watcher = Task {
            _ = try? await task.value
            done.withLock { $0 = true }
        }
        defer { watcher.cancel() }
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if done.withLock({ $0 }) { return true }
            try await Task.sleep(for: .milliseconds(10))
        }
        return done.withLock { $0 }
    }
}

/// The local file system, except that while the gate is closed every file sync waits for it to
/// open (on the syncing thread).
final class GatedFileSystem: FileSystem, @unchecked Sendable {
    private let base = PosixFileSystem()
    private let condition = NSCondition()
    private var closed = false
    private var held = 0

    var heldSyncs: Int {
        condition.lock()
        defer { condition.unlock() }
        return held
    }

    func close() {
        condition.lock()
        closed = true
        condition.unlock()
    }

    func open() {
        condition.lock()
        closed = false
        condition.broadcast()
        condition.unlock()
    }

    func passSync() {
        condition.lock()
        defer { condition.unlock() }
        guard closed else { return }
        held += 1
        while closed { condition.wait() }
        held -= 1
    }

    func createFile(_ path: String, truncate: Bool) throws -> any WritableFile {
        GatedFile(try base.createFile(path, truncate: truncate), gate: self)
    }
    func openForAppend(_ path: String) throws -> any WritableFile {
        GatedFile(try base.openForAppend(path), gate: self)
    }
    func openForReading(_ path: String) throws -> any ReadableFile { try base.openForReading(path) }
    func rename(_ from: String, to: String) throws { try base.rename(from, to: to) }
    func remove(_ path: String) throws { try base.remove(path) }
    func fileExists(_ path: String) -> Bool { base.fileExists(path) }
    func fileSize(_ path: String) throws -> Int { try base.fileSize(path) }
    func truncate(_ path: String, to size: Int) throws { try base.truncate(path, to: size) }
    func listDirectory(_ path: String) throws -> [String] { try base.listDirectory(path) }
    func createDirectory(_ path: String) throws { try base.createDirectory(path) }
    func syncDirectory(_ path: String) throws { try base.syncDirectory(path) }

    final class GatedFile: WritableFile, @unchecked Sendable {
        let file: any WritableFile
        let gate: GatedFileSystem
        init(_ file: any WritableFile, gate: GatedFileSystem) {
            self.file = file
            self.gate = gate
        }
        var path: String { file.path }
        var size: Int { file.size }
        func append(_ bytes: UnsafeRawBufferPointer) throws { try file.append(bytes) }
        func sync() throws {
            gate.passSync()
            try file.sync()
        }
        func close() throws { try file.close() }
    }
}

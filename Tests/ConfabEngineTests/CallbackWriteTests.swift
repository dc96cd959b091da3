import Dispatch
import Foundation
import Testing

@testable import ConfabEngine

/// `write(_:apply:done:)`, the form an event loop calls: it blocks nothing, hands the step that
/// makes a write visible to the caller's executor, and answers once.
@Suite struct CallbackWriteTests {
    /// Held at its WAL sync, a callback write has answered nothing, is not readable, and has not
    /// asked for its apply step; released, the apply step runs on the caller's queue (not the
    /// sync thread), the write is readable, and `done` comes once with no error.
    @Test(arguments: [SyncMode.group, .batch])
    func aCallbackWriteAppliesOnTheCallersQueueAfterItsSync(_ mode: SyncMode) throws {
        let (engine, fs, dir) = try WriterGroupTests.open(mode)
        defer {
            try? engine.close()
            _ = dir
        }
        fs.holdWALSyncs()
        let queue = DispatchQueue(label: "caller")
        let key = DispatchSpecificKey<Bool>()
        queue.setSpecific(key: key, value: true)
        let events = LockedBox<[String]>([])
        let answered = DispatchSemaphore(value: 0)
        engine.write(
            TestMessages.mutation(chatId: 1, timestamp: 1, messageId: "held", sender: "s", body: "b", writeTime: 1),
            apply: { step in
                events.update { $0.append("apply asked") }
                queue.async(execute: step)
            },
            done: { error in
                events.update {
                    $0.append(
                        error == nil
                            ? "done on caller \(DispatchQueue.getSpecific(key: key) == true)" : "failed \(error!)")
                }
                answered.signal()
            })
        #expect(fs.waitUntilASyncIsHeld(timeout: 10), "the write never reached its WAL sync")
        #expect(events.get().isEmpty, "answered before its sync: \(events.get())")
        #expect(try WriterGroupTests.readable(engine).isEmpty)

        fs.releaseWALSyncs()
        #expect(answered.wait(timeout: .now() + 10) == .success)
        #expect(events.get() == ["apply asked", "done on caller true"])
        #expect(try WriterGroupTests.readable(engine) == ["held"])
    }

    /// A failed sync fails the held callback write: `done` gets the error, the apply step is
    /// never asked for, and nothing is readable.
    @Test func aFailedSyncFailsACallbackWriteWithoutApplyingIt() throws {
        let (engine, fs, dir) = try WriterGroupTests.open(.group)
        defer {
            try? engine.close()
            _ = dir
        }
        fs.holdWALSyncs()
        let events = LockedBox<[String]>([])
        let answered = DispatchSemaphore(value: 0)
        engine.write(
            TestMessages.mutation(chatId: 1, timestamp: 1, messageId: "doomed", sender: "s", body: "b", writeTime: 1),
            apply: { step in
                events.update { $0.append("apply asked") }
                step()
            },
            done: { error in
                events.update { $0.append(error == nil ? "ok" : "failed") }
                answered.signal()
            })
        #expect(fs.waitUntilASyncIsHeld(timeout: 10))
        fs.releaseFailingHeldSyncs()
        #expect(answered.wait(timeout: .now() + 10) == .success)
        #expect(events.get() == ["failed"])
        #expect(try WriterGroupTests.readable(engine).isEmpty)
    }

    /// Many callback writes from many threads at once: every one answers once without error and
    /// is readable, also after reopening.
    @Test func concurrentCallbackWritesAreAllDurable() throws {
        let dir = TempDirectory("callback-writes")
        var o = EngineOptions()
        o.syncMode = .group
        o.memtableBytes = 64 << 10
        let threads = 16
        let per = 50
        let failures = LockedBox<[String]>([])
        do {
            let engine = try StorageEngine.open(directory: dir.path, options: o)
            let all = DispatchGroup()
            for t in 0..<threads {
                for i in 0..<per {
                    all.enter()
                    DispatchQueue.global().async {
                        engine.write(
                            TestMessages.mutation(
                                chatId: Int64(t), timestamp: Int64(i + 1), messageId: "m\(t)-\(i)", sender: "s",
                                body: "b", writeTime: 1),
                            apply: { DispatchQueue.global().async(execute: $0) },
                            done: { error in
                                if let error { failures.update { $0.append("\(error)") } }
                                all.leave()
                            })
                    }
                }
            }
            #expect(all.wait(timeout: .now() + 60) == .success)
            #expect(failures.get().isEmpty, "\(failures.get().prefix(3))")
            try engine.close()
        }
        let reopened = try StorageEngine.open(directory: dir.path, options: o)
        defer { try? reopened.close() }
        for t in 0..<threads {
            #expect(try reopened.read(TestMessages.latest(chatId: Int64(t), limit: 1000)).rows.count == per)
        }
    }
}

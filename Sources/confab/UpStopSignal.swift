import Dispatch
import Foundation
import Synchronization

/// SIGINT/SIGTERM turned into a flag and a readable pipe, so Ctrl-C runs `confab up`'s orderly
/// shutdown (chat servers, then the ring) instead of killing the CLI half-way, and the wait for
/// "a signal or a chat server exits" is one `poll(2)` (`ChatServerGroup.waitForExit`).
final class UpStopSignal: @unchecked Sendable {
    private let received = Mutex<Int32?>(nil)
    /// Set once in init; kept so the sources stay alive. (The class stays @unchecked only for
    /// them: DispatchSource is not Sendable.)
    private var sources: [any DispatchSourceSignal] = []
    /// Read end: readable once a signal arrived. Write end: written by the signal handler.
    private let pipeEnds: (read: Int32, write: Int32)

    init() {
        var fds: [Int32] = [-1, -1]
        if pipe(&fds) == 0 {
            for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        } else {
            fds = [-1, -1]
        }
        pipeEnds = (fds[0], fds[1])
        for sig in [SIGINT, SIGTERM] {
            Glibc.signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [weak self] in self?.record(sig) }
            source.resume()
            sources.append(source)
        }
    }

    deinit {
        close(pipeEnds.read)
        close(pipeEnds.write)
    }

    private func record(_ sig: Int32) {
        received.withLock { if $0 == nil { $0 = sig } }
        var byte: UInt8 = 1
        _ = write(pipeEnds.write, &byte, 1)
    }

    /// The signal received, if any.
    var signal: Int32? { received.withLock { $0 } }

    /// Readable once a stop signal arrived.
    var descriptor: Int32 { pipeEnds.read }
}

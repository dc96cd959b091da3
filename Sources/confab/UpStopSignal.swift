import Dispatch
import Foundation
import Synchronization

/// SIGINT/SIGTERM turned into a flag `confab up` polls, so Ctrl-C runs the orderly shutdown
/// (chat servers, then the ring) instead of killing the CLI half-way.
final class UpStopSignal: @unchecked Sendable {
    private let received = Mutex<Int32?>(nil)
    /// Set once in init; kept so the sources stay alive. (The class stays @unchecked only for
    /// them: DispatchSource is not Sendable.)
    private var sources: [any DispatchSourceSignal] = []

    init() {
        for sig in [SIGINT, SIGTERM] {
            Glibc.signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [weak self] in self?.record(sig) }
            source.resume()
            sources.append(source)
        }
    }

    private func record(_ sig: Int32) {
        received.withLock { if $0 == nil { $0 = sig } }
    }

    /// The signal received, if any.
    var signal: Int32? { received.withLock { $0 } }
}

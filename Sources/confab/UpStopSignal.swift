import Dispatch
import Foundation

/// SIGINT/SIGTERM turned into a flag `confab up` polls, so Ctrl-C runs the orderly shutdown
/// (chat servers, then the ring) instead of killing the CLI half-way.
final class UpStopSignal: @unchecked Sendable {
    private let lock = NSLock()
    private var received: Int32?
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
        lock.lock()
        defer { lock.unlock() }
        if received == nil { received = sig }
    }

    /// The signal received, if any.
    var signal: Int32? {
        lock.lock()
        defer { lock.unlock() }
        return received
    }
}

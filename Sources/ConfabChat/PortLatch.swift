import Synchronization

/// A port known once a listener binds it; waiters before that are resumed then (or failed).
final class PortLatch: Sendable {
    private let state = Mutex<(port: Int?, error: (any Error)?, waiters: [CheckedContinuation<Int, any Error>])>(
        (nil, nil, []))

    func set(_ port: Int) {
        let waiters = state.withLock { s in
            s.port = port
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.resume(returning: port) }
    }

    func fail(_ error: any Error) {
        let waiters = state.withLock { s in
            if s.port == nil { s.error = error }
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.resume(throwing: error) }
    }

    func value() async throws -> Int {
        try await withCheckedThrowingContinuation { c in
            let known: Result<Int, any Error>? = state.withLock { s in
                if let p = s.port { return .success(p) }
                if let e = s.error { return .failure(e) }
                s.waiters.append(c)
                return nil
            }
            if let known { c.resume(with: known) }
        }
    }
}

import Foundation
import Synchronization

/// Runs async work from a synchronous `run()` (the root `confab` command is synchronous, and
/// ArgumentParser refuses async subcommands under a synchronous root). The main thread waits;
/// the work runs on Swift's cooperative pool.
func runBlocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let result = Mutex<Result<T, any Error>?>(nil)
    let done = DispatchSemaphore(value: 0)
    Task {
        let r: Result<T, any Error>
        do { r = .success(try await body()) } catch { r = .failure(error) }
        result.withLock { $0 = r }
        done.signal()
    }
    done.wait()
    return try result.withLock { $0! }.get()
}

import ConfabEngine
import Synchronization

/// Admission for `/api/login` and `/api/register`. Each attempt costs a PBKDF2 hash (tens of
/// milliseconds of CPU by design), so without limits a few clients take the CPU and can guess
/// passwords as fast as the server hashes. Three bounds, checked before any hashing:
/// - per client address, so one machine cannot flood the server;
/// - per handle, so guessing one user's password from many addresses stays slow;
/// - hashes in flight on the server (running or queued on the blocking pool), so a burst from
///   many addresses is refused at once with `rate_limited` instead of queueing without end.
/// A refusal carries the seconds until a retry can succeed (`Retry-After`).
final class CredentialGuard: Sendable {
    struct Limits: Sendable {
        var perAddressPerSecond: Double
        var perAddressBurst: Double
        var perHandlePerSecond: Double
        var perHandleBurst: Double
        var maxHashesInFlight: Int
    }

    let limits: Limits
    private let addresses: RateLimiter
    private let handles: RateLimiter
    private let inFlight = Mutex(0)

    init(limits: Limits, clock: any ChatClock) {
        self.limits = limits
        addresses = RateLimiter(ratePerSecond: limits.perAddressPerSecond, burst: limits.perAddressBurst, clock: clock)
        handles = RateLimiter(ratePerSecond: limits.perHandlePerSecond, burst: limits.perHandleBurst, clock: clock)
    }

    /// Runs `body` (which hashes) if the attempt is admitted; otherwise throws `rate_limited`.
    func admit<T>(address: String?, handle: String, _ body: () async throws -> T) async throws -> T {
        if let address, let wait = addresses.retryAfter(address) {
            throw ChatError(
                .rateLimited, "too many login or sign-up attempts from this address; retry in \(Self.seconds(wait)) s",
                retryAfterSeconds: Self.seconds(wait))
        }
        if let wait = handles.retryAfter("h:" + handle.lowercased()) {
            throw ChatError(
                .rateLimited, "too many login attempts for this handle; retry in \(Self.seconds(wait)) s",
                retryAfterSeconds: Self.seconds(wait))
        }
        let admitted = inFlight.withLock { n -> Bool in
            guard n < limits.maxHashesInFlight else { return false }
            n += 1
            return true
        }
        guard admitted else {
            throw ChatError(.rateLimited, "the server is busy checking passwords; retry in 1 s", retryAfterSeconds: 1)
        }
        defer { inFlight.withLock { $0 -= 1 } }
        return try await body()
    }

    private static func seconds(_ wait: Double) -> Int { max(1, Int(wait.rounded(.up))) }
}

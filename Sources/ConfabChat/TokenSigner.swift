import ConfabEngine
import Crypto
import Foundation

/// Bearer tokens: `base64url(payload) + "." + base64url(HMAC-SHA256(secret, base64url(payload)))`
/// with payload `{"exp":unixSeconds,"gen":generation,"iat":unixSeconds,"reg":registeredAt,"sub":userId}`.
/// Every chat server of a deployment shares the secret, so a token from one is good on all. Tokens
/// are not stored; they end by expiring (24 h by default), or when the account's token generation
/// moves on (sign-out everywhere, a password change) or the account they name is not the one they
/// were issued for (`reg`: the loser of a registration race), which `AccountService` checks.
struct TokenSigner: Sendable {
    struct Payload: Codable, Sendable, Hashable {
        var sub: String
        var iat: Int64
        var exp: Int64
        /// The creation time of the registration the token was issued for.
        var reg: Int64
        /// The account's token generation when the token was issued.
        var gen: Int64
    }

    let key: SymmetricKey
    let clock: any ChatClock
    var lifetimeSeconds: Int64 = 24 * 3600

    init(secret: [UInt8], clock: any ChatClock, lifetimeSeconds: Int64 = 24 * 3600) {
        self.key = SymmetricKey(data: secret)
        self.clock = clock
        self.lifetimeSeconds = lifetimeSeconds
    }

    /// A token for `userId` (of the registration created at `registeredAt`, at token generation
    /// `generation`) and when it expires (Unix seconds).
    func issue(userId: String, registeredAt: Int64, generation: Int64) -> (token: String, expiresAt: Int64) {
        let now = clock.nowSeconds()
        let payload = Payload(sub: userId, iat: now, exp: now + lifetimeSeconds, reg: registeredAt, gen: generation)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let body = Self.base64url(Array((try? encoder.encode(payload)) ?? Data()))
        let mac = HMAC<SHA256>.authenticationCode(for: Array(body.utf8), using: key)
        return (body + "." + Self.base64url(Array(mac)), payload.exp)
    }

    /// What a token says, or `bad_token` (malformed, wrong signature) / `token_expired`. Whether
    /// its registration and generation are still current is `AccountService`'s to check.
    func verify(_ token: String) throws(ChatError) -> Payload {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let mac = Self.unbase64url(String(parts[1])),
            let body = Self.unbase64url(String(parts[0]))
        else {
            throw ChatError(.badToken, "the token is malformed; log in again")
        }
        guard HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: Array(parts[0].utf8), using: key) else {
            throw ChatError(.badToken, "the token's signature does not match this deployment's secret; log in again")
        }
        // Tokens from before registrations and generations were bound in lack `reg`/`gen`: refused.
        guard let payload = try? JSONDecoder().decode(Payload.self, from: Data(body)), !payload.sub.isEmpty else {
            throw ChatError(.badToken, "the token's payload is not valid; log in again")
        }
        guard payload.exp > clock.nowSeconds() else {
            throw ChatError(.tokenExpired, "the token expired at \(payload.exp) (Unix seconds); log in again")
        }
        return payload
    }

    static func base64url(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(
            of: "/", with: "_"
        )
        .replacingOccurrences(of: "=", with: "")
    }

    static func unbase64url(_ text: String) -> [UInt8]? {
        var s = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        guard !s.contains("=") else { return nil }
        while s.count % 4 != 0 { s += "=" }
        return Data(base64Encoded: s).map(Array.init)
    }
}

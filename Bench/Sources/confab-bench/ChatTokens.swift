import Crypto
import Foundation

/// Bearer tokens minted by the benchmark for the idle-connection phase, in the chat server's
/// format (docs/chat_protocol.md): `base64url(payload) + "." + base64url(HMAC-SHA256(secret,
/// base64url(payload)))`, payload `{"exp":…,"iat":…,"sub":userId}`. The bench writes the secret
/// file the servers read, so it can sign tokens for thousands of users without registering each
/// one (registration would cost a password hash and QUORUM writes per user, and is not what the
/// phase measures); the server only checks the signature and expiry when a WebSocket connects.
struct ChatTokens {
    let key: SymmetricKey

    /// `secret` as the server reads it: the secret file's text, trimmed, as UTF-8 bytes.
    init(secret: String) { key = SymmetricKey(data: Array(secret.utf8)) }

    func mint(userId: String, lifetimeSeconds: Int64 = 6 * 3600) -> String {
        let now = Int64(Date().timeIntervalSince1970)
        let payload = #"{"exp":\#(now + lifetimeSeconds),"iat":\#(now),"sub":"\#(userId)"}"#
        let body = Self.base64url(Array(payload.utf8))
        let mac = HMAC<SHA256>.authenticationCode(for: Array(body.utf8), using: key)
        return body + "." + Self.base64url(Array(mac))
    }

    static func base64url(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(
            of: "/", with: "_"
        )
        .replacingOccurrences(of: "=", with: "")
    }

    /// A fresh 32-byte secret as 64 hex characters (what `confab up` writes too).
    static func freshSecret() -> String {
        (0..<32).map { _ in String(format: "%02x", UInt8.random(in: .min ... .max)) }.joined()
    }
}

import Crypto
import Foundation

/// Authenticates one chat server to another on `/internal/ws` without a new secret: the caller
/// signs "confab-internal-ws\n<serverId>\n<unix seconds>" with HMAC-SHA256 under the deployment's
/// shared token secret (docs/chat_protocol.md, "Many servers"). The timestamp bounds how long a
/// captured query string can be replayed (`window` seconds either way).
struct InternalAuth: Sendable {
    let key: SymmetricKey
    let window: Int64

    init(secret: [UInt8], window: Int64 = 300) {
        key = SymmetricKey(data: secret)
        self.window = window
    }

    func signature(serverId: String, unixSeconds: Int64) -> String {
        let mac = HMAC<SHA256>.authenticationCode(
            for: Data("confab-internal-ws\n\(serverId)\n\(unixSeconds)".utf8), using: key)
        return mac.map { String(format: "%02x", $0) }.joined()
    }

    /// The query string a caller appends to `/internal/ws`.
    func query(serverId: String, unixSeconds: Int64) -> String {
        "from=\(serverId.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? serverId)&ts=\(unixSeconds)&sig=\(signature(serverId: serverId, unixSeconds: unixSeconds))"
    }

    /// True when `sig` is this deployment's signature of (`from`, `ts`) and `ts` is within the
    /// window of `nowSeconds`.
    func verify(from: String?, ts: String?, sig: String?, nowSeconds: Int64) -> Bool {
        guard let from, let ts, let t = Int64(ts), let sig, abs(nowSeconds - t) <= window else { return false }
        let expected = Array(signature(serverId: from, unixSeconds: t).utf8)
        let given = Array(sig.lowercased().utf8)
        guard expected.count == given.count else { return false }
        var diff: UInt8 = 0
        for i in expected.indices { diff |= expected[i] ^ given[i] }
        return diff == 0
    }
}

import ConfabEngine
import Crypto
import Foundation

/// Ids of direct (1:1) chats (issue 12). The id is derived from the two user ids so that both
/// users, on any servers, at the same instant, reach the same chat without coordinating; it is
/// keyed with the deployment's secret so that nobody outside can compute it for two people and
/// probe whether they talk (an unkeyed hash of the handles allowed exactly that).
///
/// id = first 8 bytes of HMAC-SHA256(k, "direct:<a>|<b>") (ids sorted), big-endian, top bit
/// cleared (0 becomes 1), with k = HMAC-SHA256(token secret, "confab direct chat id").
struct DirectChatIds: Sendable {
    private let key: SymmetricKey

    init(secret: [UInt8]) {
        key = SymmetricKey(
            data: HMAC<SHA256>.authenticationCode(
                for: Data("confab direct chat id".utf8), using: SymmetricKey(data: secret)))
    }

    func id(_ a: String, _ b: String) -> Int64 {
        let mac = HMAC<SHA256>.authenticationCode(
            for: Data(("direct:" + [a, b].sorted().joined(separator: "|")).utf8), using: key)
        let high = mac.withUnsafeBytes { bytes in bytes.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) } }
        let id = Int64(bitPattern: high & ~(1 << 63))
        return id == 0 ? 1 : id
    }

    /// The id chats created before ids were keyed have: Murmur3 x64 128 of "direct:a|b", first 64
    /// bits with the top bit cleared. Only for tests of the migration path; new chats never get it.
    static func unkeyedId(_ a: String, _ b: String) -> Int64 {
        let key = Array(("direct:" + [a, b].sorted().joined(separator: "|")).utf8)
        let (h, _) = key.withUnsafeBytes { Murmur3.hash128($0, seed: 0) }
        return Int64(bitPattern: h & ~(1 << 63))
    }
}

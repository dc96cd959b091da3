import Crypto
import Foundation

/// Mutual challenge–response that opens a peer link (docs/chat_protocol.md, "Peer links"): both
/// servers prove they hold the deployment's token secret without sending it, and each proof is
/// bound to a nonce the other side chose for this connection, so a captured handshake is worth
/// nothing on another connection (the HMAC-over-time query string it replaces could be replayed
/// for five minutes).
///
///     receiver → sender   challenge <receiver nonce>
///     sender → receiver   hello <sender id> <sender nonce> <hex HMAC(key, "hello\n" rn "\n" sid "\n" sn)>
///     receiver → sender   welcome <receiver id> <hex HMAC(key, "welcome\n" sn "\n" rid "\n" rn)>
///
/// Nonces are 32 random bytes in hex. The key is HMAC(secret, "confab peer link"), so a proof
/// made here is never also a valid token signature.
struct PeerHandshake: Sendable {
    private let key: SymmetricKey

    init(secret: [UInt8]) {
        key = SymmetricKey(
            data: HMAC<SHA256>.authenticationCode(
                for: Data("confab peer link".utf8), using: SymmetricKey(data: secret)))
    }

    /// A fresh nonce: 32 bytes from the system's cryptographic generator, in hex.
    static func nonce() -> String {
        SymmetricKey(size: .bits256).withUnsafeBytes { hex($0) }
    }

    static func challenge(nonce: String) -> String { "challenge \(nonce)" }

    /// The receiver's nonce in a `challenge` frame.
    static func parseChallenge(_ text: String) -> String? {
        let words = text.split(separator: " ", omittingEmptySubsequences: false)
        guard words.count == 2, words[0] == "challenge", isNonce(words[1]) else { return nil }
        return String(words[1])
    }

    /// The sender's answer to `receiverNonce`.
    func hello(from senderId: String, receiverNonce: String, senderNonce: String) -> String {
        "hello \(senderId) \(senderNonce) \(mac("hello", receiverNonce, senderId, senderNonce))"
    }

    /// The sender's id and nonce when `text` is a valid answer to this connection's challenge.
    func verifyHello(_ text: String, receiverNonce: String) -> (senderId: String, senderNonce: String)? {
        let words = text.split(separator: " ", omittingEmptySubsequences: false)
        guard words.count == 4, words[0] == "hello", !words[1].isEmpty, Self.isNonce(words[2]) else { return nil }
        let (id, nonce) = (String(words[1]), String(words[2]))
        guard Self.equal(mac("hello", receiverNonce, id, nonce), words[3]) else { return nil }
        return (id, nonce)
    }

    func welcome(receiverId: String, receiverNonce: String, senderNonce: String) -> String {
        "welcome \(receiverId) \(mac("welcome", senderNonce, receiverId, receiverNonce))"
    }

    /// The receiver's id when `text` proves it holds the secret and answers this sender's nonce.
    func verifyWelcome(_ text: String, receiverNonce: String, senderNonce: String) -> String? {
        let words = text.split(separator: " ", omittingEmptySubsequences: false)
        guard words.count == 3, words[0] == "welcome", !words[1].isEmpty else { return nil }
        let id = String(words[1])
        guard Self.equal(mac("welcome", senderNonce, id, receiverNonce), words[2]) else { return nil }
        return id
    }

    private func mac(_ parts: String...) -> String {
        let code = HMAC<SHA256>.authenticationCode(for: Data(parts.joined(separator: "\n").utf8), using: key)
        return code.withUnsafeBytes { Self.hex($0) }
    }

    private static func hex(_ bytes: UnsafeRawBufferPointer) -> String {
        bytes.map { String(format: "%02x", $0) }.joined()
    }

    private static func isNonce(_ s: Substring) -> Bool {
        s.utf8.count == 64 && s.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    /// Compares in time independent of where the strings differ.
    private static func equal(_ expected: String, _ given: Substring) -> Bool {
        let a = Array(expected.utf8)
        let b = Array(given.utf8)
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in a.indices { diff |= a[i] ^ b[i] }
        return diff == 0
    }
}

import Crypto
import CryptoExtras
import Foundation
import NIOPosix

/// PBKDF2-HMAC-SHA256 password hashes, stored as `pbkdf2-sha256$<rounds>$<salt b64>$<hash b64>`
/// (16-byte random salt, 32-byte hash). The rounds are in the stored string, so raising them later
/// keeps old hashes verifiable. Hashing takes tens of milliseconds by design, so it runs on NIO's
/// blocking thread pool, never on the cooperative pool that serves connections.
struct PasswordHasher: Sendable {
    /// 210,000 is the least swift-crypto's checked PBKDF2 API accepts (OWASP's 2023 floor is
    /// 600,000); tests use fewer to stay fast.
    static let defaultRounds = 210_000
    var rounds: Int = PasswordHasher.defaultRounds

    func hash(_ password: String) async throws -> String {
        let salt = (0..<16).map { _ in UInt8.random(in: .min ... .max) }
        let rounds = self.rounds
        let key = try await NIOThreadPool.singleton.runIfActive {
            try Self.derive(password, salt: salt, rounds: rounds)
        }
        return "pbkdf2-sha256$\(rounds)$\(Data(salt).base64EncodedString())$\(Data(key).base64EncodedString())"
    }

    /// True when `password` matches `stored`; false for a wrong password or a malformed string.
    func verify(_ password: String, against stored: String) async throws -> Bool {
        let parts = stored.split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "pbkdf2-sha256", let rounds = Int(parts[1]), rounds > 0,
            rounds <= 10_000_000,
            let salt = Data(base64Encoded: String(parts[2])), let expected = Data(base64Encoded: String(parts[3]))
        else { return false }
        let key = try await NIOThreadPool.singleton.runIfActive {
            try Self.derive(password, salt: Array(salt), rounds: rounds)
        }
        // Constant time: compare every byte whatever the first difference.
        guard key.count == expected.count else { return false }
        return zip(key, expected).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }

    private static func derive(_ password: String, salt: [UInt8], rounds: Int) throws -> [UInt8] {
        let key = try KDF.Insecure.PBKDF2.deriveKey(
            from: Array(password.utf8), salt: salt, using: .sha256,
            outputByteCount: 32, unsafeUncheckedRounds: rounds)
        return key.withUnsafeBytes { Array($0) }
    }
}

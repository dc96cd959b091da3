import Foundation

/// The chat servers' shared secret, written by the bench into the secret file the servers read.
enum ChatTokens {
    /// A fresh 32-byte secret as 64 hex characters (what `confab up` writes too).
    static func freshSecret() -> String {
        (0..<32).map { _ in String(format: "%02x", UInt8.random(in: .min ... .max)) }.joined()
    }
}

import ConfabRing
import Foundation

/// The ring state a node keeps next to `node-id` in its data directory:
///
/// - `tokens`: the node's vnode tokens, one signed decimal per line. Written once, when the node
///   first goes NORMAL, and reused on every restart, so a node keeps its ranges for life.
/// - `ring-view`: every known peer (`PeerViewFile`), rewritten whenever gossip changes it.
/// - `gossip-generation`: the last gossip generation used, a decimal. Each start takes
///   `max(stored + 1, seconds since the epoch)`, so generations grow even if the clock steps back.
///
/// Every write goes to a temporary file that is fsynced and renamed over the old one (and the
/// directory fsynced), so a crash leaves the old or the new content, never a torn file. Blocking:
/// callers run these off the event loops.
enum NodeStateFiles {
    static let tokensFile = "tokens"
    static let generationFile = "gossip-generation"
    /// Written when a decommission completes: the node left the ring and must not come back with
    /// its (now stale) data and tokens.
    static let decommissionedFile = "decommissioned"

    /// The persisted tokens, or nil when the node never went NORMAL.
    static func loadTokens(dataDirectory: String) throws(NodeError) -> [Token]? {
        let path = (dataDirectory as NSString).appendingPathComponent(tokensFile)
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        var tokens: [Token] = []
        for line in text.split(whereSeparator: \.isNewline) where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            guard let v = Int64(line.trimmingCharacters(in: .whitespaces)) else {
                throw NodeError(
                    .dataDirectory,
                    "\(path): \"\(line)\" is not a token; the file holds one signed 64-bit integer per line")
            }
            tokens.append(Token(v))
        }
        guard !tokens.isEmpty else {
            throw NodeError(.dataDirectory, "\(path) is empty; remove it only if this node has never held data")
        }
        return tokens
    }

    static func saveTokens(_ tokens: [Token], dataDirectory: String) throws(NodeError) {
        let text = tokens.sorted().map(\.description).joined(separator: "\n") + "\n"
        try writeAtomically(text, to: (dataDirectory as NSString).appendingPathComponent(tokensFile))
    }

    /// Records that the node left the ring, then removes its tokens (marker first: a crash in
    /// between still refuses to start).
    static func markDecommissioned(dataDirectory: String, note: String) throws(NodeError) {
        try writeAtomically(note + "\n", to: (dataDirectory as NSString).appendingPathComponent(decommissionedFile))
        unlink((dataDirectory as NSString).appendingPathComponent(tokensFile))
    }

    static func isDecommissioned(dataDirectory: String) -> Bool {
        FileManager.default.fileExists(atPath: (dataDirectory as NSString).appendingPathComponent(decommissionedFile))
    }

    /// The generation for this start, persisted before it is used.
    static func nextGeneration(dataDirectory: String, nowSeconds: Int64) throws(NodeError) -> Int64 {
        let path = (dataDirectory as NSString).appendingPathComponent(generationFile)
        let stored =
            (try? String(contentsOfFile: path, encoding: .utf8))
            .flatMap { Int64($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 0
        let next = max(stored + 1, nowSeconds)
        try writeAtomically("\(next)\n", to: path)
        return next
    }

    /// Temp file, fsync, rename, fsync of the directory.
    static func writeAtomically(_ text: String, to path: String) throws(NodeError) {
        try writeAtomically(Array(text.utf8), to: path)
    }

    static func writeAtomically(_ bytes: [UInt8], to path: String) throws(NodeError) {
        let tmp = path + ".tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else {
            throw NodeError(.dataDirectory, "cannot create \(tmp): \(String(cString: strerror(errno)))")
        }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd)
        close(fd)
        guard written == bytes.count, synced == 0 else {
            throw NodeError(.dataDirectory, "cannot write \(tmp): \(String(cString: strerror(errno)))")
        }
        guard rename(tmp, path) == 0 else {
            throw NodeError(.dataDirectory, "cannot rename \(tmp) to \(path): \(String(cString: strerror(errno)))")
        }
        let dir = open((path as NSString).deletingLastPathComponent, O_RDONLY)
        if dir >= 0 {
            _ = fsync(dir)
            close(dir)
        }
    }
}

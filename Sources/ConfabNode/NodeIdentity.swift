import Foundation

/// A node's stable id (Cassandra's host ID): a UUID generated on first start and kept in
/// `<data-dir>/node-id`, so a node keeps its identity (and later its tokens) across restarts and
/// address changes.
enum NodeIdentity {
    static let fileName = "node-id"

    /// Reads the id, or creates it (written to a temporary file, fsynced and renamed, so a crash
    /// never leaves a half-written id).
    static func loadOrCreate(dataDirectory: String) throws(NodeError) -> String {
        let path = (dataDirectory as NSString).appendingPathComponent(fileName)
        if let text = try? String(contentsOfFile: path, encoding: .utf8) {
            let id = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard UUID(uuidString: id) != nil else {
                throw NodeError(
                    .dataDirectory,
                    "\(path) does not hold a node id (a UUID); remove it only if this data directory is new")
            }
            return id.lowercased()
        }
        let id = UUID().uuidString.lowercased()
        let tmp = path + ".tmp"
        guard FileManager.default.createFile(atPath: tmp, contents: Data((id + "\n").utf8)) else {
            throw NodeError(.dataDirectory, "cannot write \(tmp)")
        }
        let fd = open(tmp, O_RDONLY)
        if fd >= 0 {
            _ = fsync(fd)
            close(fd)
        }
        guard rename(tmp, path) == 0 else {
            throw NodeError(.dataDirectory, "cannot rename \(tmp) to \(path): \(String(cString: strerror(errno)))")
        }
        return id
    }
}

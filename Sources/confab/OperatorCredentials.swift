import ArgumentParser
import ConfabNode
import ConfabWire
import Foundation

/// Where the CLI's operator commands (flush, compact, repair, ring decommission) find the cluster
/// secret: `--cluster-secret-file`, else $CONFAB_CLUSTER_SECRET_FILE, else the ring directory's
/// `cluster-secret`. Reads and writes (`confab post`, `history`) need none.
enum OperatorCredentials {
    /// The credentials to authenticate with, or nil when no secret file is named and the ring
    /// directory has none (the command then works against nodes run without a secret, and a node
    /// that has one answers `unauthorized` saying what to do).
    static func resolve(file: String?, ringDirectory: String) throws -> ClusterCredentials? {
        let environment = ProcessInfo.processInfo.environment[ClusterSecretFile.environmentVariable].flatMap {
            $0.isEmpty ? nil : $0
        }
        let path: String
        if let named = file ?? environment {
            path = named
        } else {
            path = ClusterSecretFile.path(inRingDirectory: ringDirectory)
            guard FileManager.default.fileExists(atPath: path) else { return nil }
        }
        do {
            return ClusterCredentials(secret: try ClusterSecretFile.load(path), role: .operator)
        } catch {
            throw ValidationError(error.description)
        }
    }
}

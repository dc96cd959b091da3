import ConfabRing
import Foundation

/// `D/ring.json`: the nodes `confab ring start` launched, so that later ring commands (and
/// `confab post`/`history` without `--node`) find them. Format in docs/ring_cli.md.
///
/// Written atomically (temp file, fsync, rename, fsync of the directory): a reader sees the old
/// or the new file, never a torn one. Whether a node runs is not trusted from the file: commands
/// check each pid (`Node.isAlive`).
package struct RingFile: Codable, Hashable, Sendable {
    package static let fileName = "ring.json"
    package static let currentVersion = 1

    /// One launched `confab node` process.
    package struct Node: Codable, Hashable, Sendable {
        /// 1-based, as `confab ring kill N` counts.
        package var index: Int
        /// The node's host id, once it printed its "listening" line.
        package var id: String?
        package var host: String
        package var port: Int
        /// The last pid it ran as (it may have exited since).
        package var pid: Int32?
        /// Absolute data directory (`D/nodeN/data`).
        package var dataDir: String
        /// Absolute log file (`D/nodeN/node.log`): the node's stdout and stderr, appended.
        package var log: String
        /// The exact argv (executable first) used to start it; `ring restart` reuses it.
        package var command: [String]
        /// What the last ring command did to it: starting, running, stopped, killed, failed.
        package var state: String
        /// Its operations port (`--metrics-port`: /metrics, /health, /ready); nil for rings
        /// recorded before nodes had one.
        package var metricsPort: Int? = nil

        /// Its last run as a process to watch or signal (nil before its first start); its data
        /// directory tells it apart from whatever else may run under a recycled pid.
        package var process: ServerProcess? {
            pid.map { ServerProcess(pid: $0, logPath: log, expectedArgument: dataDir) }
        }

        /// Whether its recorded pid is a live `confab node` for its data directory.
        package var isAlive: Bool { process?.isAlive ?? false }

        package init(
            index: Int, id: String? = nil, host: String, port: Int, pid: Int32? = nil, dataDir: String, log: String,
            command: [String], state: String, metricsPort: Int? = nil
        ) {
            self.index = index
            self.id = id
            self.host = host
            self.port = port
            self.pid = pid
            self.dataDir = dataDir
            self.log = log
            self.command = command
            self.state = state
            self.metricsPort = metricsPort
        }

        /// "http://host:port/metrics", when the node has an operations port.
        package var metricsURL: String? { metricsPort.map { "http://\(host):\($0)/metrics" } }

        package var address: NodeAddress { NodeAddress(host: host, port: port) }
        package var addressText: String { "\(host):\(port)" }
    }

    package var version = RingFile.currentVersion
    package var replicationFactor: Int
    package var vnodes: Int
    package var nodes: [Node]

    package init(replicationFactor: Int, vnodes: Int, nodes: [Node]) {
        self.replicationFactor = replicationFactor
        self.vnodes = vnodes
        self.nodes = nodes
    }

    // MARK: Files

    /// The ring directory: `--dir`, else `$CONFAB_RING_DIR`, else `./confab-ring`; made absolute.
    package static func directory(_ option: String?) -> String {
        let raw = option ?? ProcessInfo.processInfo.environment["CONFAB_RING_DIR"] ?? "./confab-ring"
        let expanded = NSString(string: raw).expandingTildeInPath
        let url =
            expanded.hasPrefix("/")
            ? URL(fileURLWithPath: expanded)
            : URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(expanded)
        return url.standardizedFileURL.path
    }

    package static func path(in directory: String) -> String { "\(directory)/\(fileName)" }

    /// The state in `directory`, or nil when it has no ring.json.
    package static func load(from directory: String) throws(RingCommandError) -> RingFile? {
        let path = path(in: directory)
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            let state = try decoder.decode(RingFile.self, from: data)
            guard state.version == currentVersion else {
                throw RingCommandError(
                    .io, "\(path) has version \(state.version); this confab reads version \(currentVersion)")
            }
            return state
        } catch let error as RingCommandError {
            throw error
        } catch {
            throw RingCommandError(.io, "cannot read \(path): \(error); remove it if no ring runs there")
        }
    }

    /// The state in `directory`; `noRing` when there is none.
    package static func require(in directory: String) throws(RingCommandError) -> RingFile {
        guard let state = try load(from: directory) else {
            throw RingCommandError(
                .noRing,
                "no ring in \(directory) (no \(fileName)); start one with `confab ring start --dir \(directory)`")
        }
        return state
    }

    /// Replaces `D/ring.json` atomically and durably.
    package func save(to directory: String) throws(RingCommandError) {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let final = Self.path(in: directory)
        let temp = "\(final).tmp"
        do {
            var data = try encoder.encode(self)
            data.append(0x0A)
            try Self.writeSynced(data, to: temp)
            guard rename(temp, final) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
            Self.syncDirectory(directory)
        } catch {
            unlink(temp)
            throw RingCommandError(.io, "cannot write \(final): \(error)")
        }
    }

    private static func writeSynced(_ data: Data, to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        defer { close(fd) }
        try data.withUnsafeBytes { (buffer: UnsafeRawBufferPointer) in
            var offset = 0
            while offset < buffer.count {
                let n = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
                }
                offset += n
            }
        }
        guard fsync(fd) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    }

    private static func syncDirectory(_ directory: String) {
        let fd = open(directory, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }

    // MARK: Queries

    /// The node numbered `index` (1-based); `badNode` when there is none.
    package func node(_ index: Int, directory: String) throws(RingCommandError) -> Node {
        guard let node = nodes.first(where: { $0.index == index }) else {
            throw RingCommandError(
                .badNode,
                "the ring in \(directory) has nodes \(nodes.map { String($0.index) }.joined(separator: ", ")); there is no node \(index)"
            )
        }
        return node
    }

    /// Nodes whose recorded pid is a live `confab node` on this machine.
    package func runningNodes() -> [Node] {
        nodes.filter(\.isAlive)
    }

    package mutating func update(_ index: Int, _ change: (inout Node) -> Void) {
        if let i = nodes.firstIndex(where: { $0.index == index }) { change(&nodes[i]) }
    }
}

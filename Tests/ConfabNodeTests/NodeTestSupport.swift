import ConfabClient
import ConfabEngine
import ConfabRing
import Foundation
import Logging
import NIOCore
import ServiceLifecycle

@testable import ConfabNode

/// A node running in this process on 127.0.0.1 and a free port, in its own temp directory.
final class InProcessNode: Sendable {
    let directory: TempDirectory
    let node: Node
    let group: ServiceGroup
    let task: Task<Void, any Error>
    let address: NodeAddress

    private init(
        directory: TempDirectory, node: Node, group: ServiceGroup, task: Task<Void, any Error>, address: NodeAddress
    ) {
        self.directory = directory
        self.node = node
        self.group = group
        self.task = task
        self.address = address
    }

    static func start(
        directory: TempDirectory = TempDirectory(), hintFileSystem: any FileSystem = PosixFileSystem(),
        configure: (inout NodeConfiguration) -> Void = { _ in }
    )
        async throws -> InProcessNode
    {
        var config = NodeConfiguration(dataDirectory: directory.path)
        config.tables = TestSchema.registry
        config.listen = NodeAddress(host: "127.0.0.1", port: 0)
        // A lone node answers QUORUM only with one replica per key; ring tests set their factor.
        config.replicationFactor = 1
        configure(&config)
        var logger = Logger(label: "test.node")
        logger.logLevel = .warning
        let node = Node(configuration: config, logger: logger, hintFileSystem: hintFileSystem)
        let group = ServiceGroup(configuration: .init(services: [.init(service: node)], logger: logger))
        let task = Task { try await group.run() }
        let bound = try await node.listeningAddress()
        return InProcessNode(
            directory: directory, node: node, group: group, task: task,
            address: NodeAddress(host: "127.0.0.1", port: bound.port!))
    }

    func client(timeout: Duration = .seconds(10)) -> ConfabClient {
        var c = ConfabClient.Configuration(nodes: [address])
        c.schema = TestSchema.registry
        c.requestTimeout = timeout
        return ConfabClient(configuration: c)
    }

    /// Graceful shutdown, as SIGTERM would do; returns when the engine is closed.
    func stop() async throws {
        await group.triggerGracefulShutdown()
        try await task.value
    }
}

extension ConfabClient {
    /// A client of exactly `nodes`, in that order (no round robin), each tried once.
    static func forTests(nodes: [NodeAddress], timeout: Duration = .seconds(10)) -> ConfabClient {
        var c = ConfabClient.Configuration(nodes: nodes)
        c.schema = TestSchema.registry
        c.requestTimeout = timeout
        c.routing = FixedOrder()
        return ConfabClient(configuration: c)
    }
}

/// A blocking TCP socket for sending hand-made bytes to a node.
final class RawSocket: @unchecked Sendable {
    let fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else { throw POSIXErrorCode(rawValue: errno).map { POSIXError($0) } ?? POSIXError(.EIO) }
        var tv = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            off += n
        }
    }

    /// Reads until `count` bytes arrived, EOF, or the 30 s timeout — on its own thread, so a test
    /// waiting here never holds one of the few cooperative threads the in-process node needs.
    func receive(atLeast count: Int) async -> [UInt8] {
        await offCooperativePool { self.receiveBlocking(atLeast: count) }
    }

    func receiveBlocking(atLeast count: Int) -> [UInt8] {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while out.count < count {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return out
    }

    /// True when the peer has closed the connection (recv returns 0 within the timeout).
    func isClosedByPeer() async -> Bool {
        await offCooperativePool { self.isClosedByPeerBlocking() }
    }

    func isClosedByPeerBlocking() -> Bool {
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return true }
            if n < 0 { return false }
        }
    }
}

/// Runs blocking work on a thread of its own and awaits it. Swift Testing runs tests in parallel on
/// the cooperative pool, which has one thread per core (two here): a test that blocks in a syscall
/// there can starve an in-process node's tasks, and its replies never come.
func offCooperativePool<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        Thread { continuation.resume(returning: body()) }.start()
    }
}

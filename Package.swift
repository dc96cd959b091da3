// swift-tools-version: 6.2
import PackageDescription

/// Settings every Confab target shares (one loop, as swift-log does).
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    // Warnings are errors in the project's own targets (not in its dependencies): a warning left
    // in is a question nobody answered.
    .treatAllWarnings(as: .error),
]

let package = Package(
    name: "confab",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "ConfabEngine", targets: ["ConfabEngine"]),
        .library(name: "ConfabRing", targets: ["ConfabRing"]),
        .library(name: "ConfabWire", targets: ["ConfabWire"]),
        .library(name: "ConfabTransport", targets: ["ConfabTransport"]),
        .library(name: "ConfabNode", targets: ["ConfabNode"]),
        .library(name: "ConfabClient", targets: ["ConfabClient"]),
        .library(name: "ConfabChat", targets: ["ConfabChat"]),
        .library(name: "ConfabProcess", targets: ["ConfabProcess"]),
        .executable(name: "confab", targets: ["confab"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        // Request deadlines (a heap of millisecond buckets; NIO cancels a scheduled task by linear
        // search) and the chat sequencer's remembered clientIds (a deque).
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        // Optional TLS of the node protocol (ConfabTransport's NodeTLS).
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.8.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // Tests run commands to completion with it (ConfabTestSupport's TestCommand).
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
    ],
    targets: [
        // liblz4 from the system (Debian liblz4-dev), found through pkg-config.
        .systemLibrary(
            name: "CLZ4",
            pkgConfig: "liblz4",
            providers: [.apt(["liblz4-dev"])]
        ),
        // CRC32C (Castagnoli) with SSE4.2 and a portable fallback.
        .target(name: "CCRC32C"),
        // pidfd_open(2) for ConfabProcess (Swift cannot call the variadic syscall(2)).
        .target(name: "CProcessWatch"),
        .target(
            name: "ConfabEngine",
            dependencies: [
                "CLZ4",
                "CCRC32C",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        // Ring logic: token ring, gossip, failure detection, coordination. Pure state machines,
        // no sockets (the node's NIO shell drives them).
        .target(
            name: "ConfabRing",
            dependencies: ["ConfabEngine"],
            swiftSettings: swiftSettings
        ),
        // The node-to-node and client-to-node protocol: message types and their byte encoding.
        // Pure (no NIO), so the state machines, node and client share it.
        .target(
            name: "ConfabWire",
            dependencies: [
                "ConfabEngine", "ConfabRing",
                // HMAC-SHA256 for the cluster-secret handshake (ClusterSecret).
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        // Connections to nodes, used by the node (internode) and the client alike: framing, a
        // multiplexed connection with its handshake, a pool.
        .target(
            name: "ConfabTransport",
            dependencies: [
                "ConfabWire", "ConfabRing",
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // A node: the SwiftNIO server shell around the engine and the ring's state machines.
        .target(
            name: "ConfabNode",
            dependencies: [
                "ConfabEngine", "ConfabRing", "ConfabWire", "ConfabTransport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                // The node's operations port (/metrics, /health, /ready).
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "HeapModule", package: "swift-collections"),
            ],
            swiftSettings: swiftSettings
        ),
        // The Swift client: connections, routing, consistency per request.
        .target(
            name: "ConfabClient",
            dependencies: [
                "ConfabWire", "ConfabRing", "ConfabTransport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The chat server: accounts, chats, real-time delivery over WebSocket and long polling, the
        // web client. A thin client of the ring: it keeps live connections, the ring keeps data.
        .target(
            name: "ConfabChat",
            dependencies: [
                "ConfabEngine", "ConfabWire", "ConfabRing", "ConfabTransport", "ConfabClient",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                // Device sockets live in the pipeline (DeviceSocketChannel): NIO's WebSocket codec.
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [.copy("Web")],
            swiftSettings: swiftSettings
        ),
        // Confab's servers as processes (`ServerProcess`: the one launcher): local rings of
        // `confab node` and the ring directory's state, `confab up`'s chat servers. Used by
        // `confab ring`/`confab up`, the tests and the benchmarks.
        .target(
            name: "ConfabProcess",
            dependencies: ["CProcessWatch", "ConfabClient", "ConfabNode", "ConfabRing", "ConfabWire"],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "confab",
            dependencies: [
                "ConfabEngine", "ConfabNode", "ConfabClient", "ConfabChat", "ConfabProcess", "ConfabTransport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                // The process's metrics backend: swift-metrics instruments exposed on /metrics.
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: swiftSettings
        ),
        // What every test target shares (postgres-nio's _ConnectionPoolTestUtils): the binary
        // locator, temporary directories, the seeded generator and the one seed variable, and the
        // server processes of the multi-process tests (over ConfabProcess's launcher).
        .target(
            name: "ConfabTestSupport",
            dependencies: [
                "ConfabEngine", "ConfabWire", "ConfabProcess", "ConfabClient", "ConfabRing",
                .product(name: "Subprocess", package: "swift-subprocess"),
            ],
            path: "Tests/ConfabTestSupport",
            swiftSettings: swiftSettings
        ),
        // Test-only: a file system that simulates crashes, power loss, ENOSPC and EIO over the real
        // one (the engine's `FileSystem` seam). Not shipped.
        .target(
            name: "ConfabFaultInjection",
            dependencies: ["ConfabEngine"],
            path: "Tests/ConfabFaultInjection",
            swiftSettings: swiftSettings
        ),
        // Test-only: the process the crash tests SIGKILL while it writes `CrashWorkload`. Not shipped.
        .executableTarget(
            name: "confab-crash-writer",
            dependencies: [
                "ConfabEngine", "ConfabTestSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Tests/ConfabCrashWriter",
            swiftSettings: swiftSettings
        ),
        // The node protocol's encoding (no sockets).
        .testTarget(
            name: "ConfabWireTests",
            dependencies: ["ConfabWire", "ConfabRing", "ConfabEngine", "ConfabTestSupport"],
            swiftSettings: swiftSettings
        ),
        // The client's routing (no sockets).
        .testTarget(
            name: "ConfabClientTests",
            dependencies: ["ConfabClient", "ConfabWire", "ConfabRing", "ConfabEngine", "ConfabTestSupport"],
            swiftSettings: swiftSettings
        ),
        // The `confab` command line as processes (`confab ring …`): run with the node tests.
        .testTarget(
            name: "ConfabCLITests",
            dependencies: ["confab", "ConfabProcess", "ConfabWire", "ConfabTestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ConfabNodeTests",
            dependencies: [
                "ConfabNode", "ConfabClient", "ConfabTransport", "ConfabWire", "ConfabProcess", "confab",
                "ConfabTestSupport",
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ConfabChatTests",
            dependencies: [
                "ConfabChat", "ConfabClient", "ConfabTransport", "ConfabNode", "ConfabProcess", "confab",
                "ConfabTestSupport",
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ConfabRingTests",
            dependencies: ["ConfabRing", "ConfabTestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ConfabEngineTests",
            dependencies: [
                "ConfabEngine", "confab", "confab-crash-writer", "ConfabFaultInjection", "ConfabTestSupport",
            ],
            swiftSettings: swiftSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)

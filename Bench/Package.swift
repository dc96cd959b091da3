// swift-tools-version: 6.2
import PackageDescription

/// Settings every Bench target shares (one loop, as the main package does).
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    // Warnings are errors in the project's own targets (not in its dependencies): a warning left
    // in is a question nobody answered.
    .treatAllWarnings(as: .error),
]

/// The side-by-side storage benchmark. Its own package, so it may link RocksDB, LevelDB and
/// SQLite, which the main package must not.
let package = Package(
    name: "confab-bench",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "confab-bench", targets: ["confab-bench"])
    ],
    dependencies: [
        .package(name: "confab", path: ".."),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        // `confab-bench chat`: HTTP and WebSocket clients over plain SwiftNIO, HMAC for tokens.
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
    ],
    targets: [
        // Debian librocksdb-dev 7.8.3, through its C API (rocksdb/c.h).
        .systemLibrary(name: "CRocksDB", pkgConfig: "rocksdb", providers: [.apt(["librocksdb-dev"])]),
        // Debian libleveldb-dev 1.23 ships no .pc file; the module map links -lleveldb.
        .systemLibrary(name: "CLevelDB", providers: [.apt(["libleveldb-dev"])]),
        // Debian libsqlite3-dev 3.40.
        .systemLibrary(name: "CSQLite3", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .executableTarget(
            name: "confab-bench",
            dependencies: [
                "CRocksDB",
                "CLevelDB",
                "CSQLite3",
                .product(name: "ConfabEngine", package: "confab"),
                // `confab-bench ring`: the Swift client against rings started by the confab binary.
                .product(name: "ConfabClient", package: "confab"),
                .product(name: "ConfabRing", package: "confab"),
                // `PostedMessages` (the `confab.messages` layout the storage and ring benchmarks
                // write) and `ChatSchema` (the tables the ring serves).
                .product(name: "ConfabChat", package: "confab"),
                // `ServerProcess`: the chat servers the chat benchmark starts, by the one launcher.
                .product(name: "ConfabProcess", package: "confab"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)

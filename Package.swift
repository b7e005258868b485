// swift-tools-version:6.1
import PackageDescription

// The library targets depend on C libraries alone: libuv, zlib for permessage-deflate, OpenSSL for TLS. Two small
// adapter modules bring in swift-log (StrandsLogging) and swift-service-lifecycle (StrandsService) for those who
// want them; the executables use well-kept server-ecosystem packages (argument parsing, histograms, logging).
let strictSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "Strands",
    products: [
        .library(name: "StrandsLoop", targets: ["StrandsLoop"]),
        .library(name: "StrandsWS", targets: ["StrandsWS"]),
        .library(name: "StrandsTLS", targets: ["StrandsTLS"]),
        .library(name: "StrandsLogging", targets: ["StrandsLogging"]),
        .library(name: "StrandsService", targets: ["StrandsService"]),
        .executable(name: "echoserver", targets: ["echoserver"]),
        .executable(name: "perftest", targets: ["perftest"]),
    ],
    dependencies: [
        // Executables, and the two small adapter modules (swift-log, swift-service-lifecycle); the
        // libraries themselves depend on C libraries alone.
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        // `swift package generate-documentation --target StrandsWS` (the DocC catalogs); a plugin, not a dependency
        // of any module.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CUV",
            path: "Sources/CUV",
            pkgConfig: "libuv",
            providers: [.apt(["libuv1-dev"])]
        ),
        // permessage-deflate's compressor (RFC 7692).
        .systemLibrary(
            name: "CZlib",
            path: "Sources/CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        // TLS (OpenSSL 3), in a module of its own so that plain users do not link OpenSSL.
        .systemLibrary(
            name: "COpenSSL",
            path: "Sources/COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),
        .target(name: "StrandsLoop", dependencies: ["CUV"], swiftSettings: strictSettings),
        .target(name: "StrandsTLS", dependencies: ["StrandsLoop", "COpenSSL"], swiftSettings: strictSettings),
        .target(name: "StrandsWS", dependencies: ["StrandsLoop", "CZlib"], swiftSettings: strictSettings),
        // A swift-log Logger as StrandsWS's log hook (`configuration.logger = logger`).
        .target(name: "StrandsLogging", dependencies: ["StrandsWS", .product(name: "Logging", package: "swift-log")],
                swiftSettings: strictSettings),
        // A WebSocketServer as a swift-service-lifecycle Service.
        .target(
            name: "StrandsService",
            dependencies: ["StrandsWS", "StrandsLogging", .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
            swiftSettings: strictSettings
        ),
        // What the command-line tools share: flag parsing that exits 2 like the Go tools, line output, logging.
        .target(
            name: "StrandsCLI",
            dependencies: [
                "StrandsWS",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(name: "echoserver", dependencies: ["StrandsCLI", "StrandsTLS"], swiftSettings: strictSettings),
        .executableTarget(
            name: "perftest",
            dependencies: ["StrandsCLI", "StrandsTLS", "CZlib", .product(name: "Histogram", package: "hdrhistogram-swift")],
            // Every client is confined to its loop's thread, so Swift's dynamic exclusivity checks buy
            // nothing here, and on accesses the optimizer brings in from StrandsWS (`userData`, say)
            // they are made whatever the library's `@exclusivity(unchecked)` says: about 80
            // instructions each, several per message. See Docs/Architecture.md.
            swiftSettings: strictSettings + [.unsafeFlags(["-enforce-exclusivity=unchecked"])]
        ),
        // The first server of Docs/WebSockets.md, exactly as printed there (a test checks both agree).
        .executableTarget(name: "guide-server", dependencies: ["StrandsWS"], swiftSettings: strictSettings),
        // Drives StrandsWS through the Autobahn TestSuite (kosoku) as server and as client.
        .executableTarget(name: "strands-autobahn", dependencies: ["StrandsCLI"], swiftSettings: strictSettings),
        .testTarget(name: "StrandsLoopTests", dependencies: ["StrandsLoop"], swiftSettings: strictSettings),
        .testTarget(name: "StrandsTLSTests", dependencies: ["StrandsTLS", "StrandsWS", "StrandsTestSupport"], swiftSettings: strictSettings),
        // Helpers the test targets share: event queues, a recording handler, a loopback client.
        .target(name: "StrandsTestSupport", dependencies: ["StrandsWS", "COpenSSL"], path: "Tests/StrandsTestSupport",
                swiftSettings: strictSettings),
        .testTarget(name: "StrandsWSTests", dependencies: ["StrandsWS", "StrandsTestSupport"], swiftSettings: strictSettings),
        .testTarget(name: "StrandsServiceTests", dependencies: ["StrandsService", "StrandsLogging", "StrandsTestSupport"],
                    swiftSettings: strictSettings),
        // Runs the built executables as a user would; `swift build` builds them first.
        .testTarget(name: "EchoServerTests", dependencies: ["StrandsWS", "StrandsTLS", "StrandsCLI", "StrandsTestSupport"], swiftSettings: strictSettings),
        .testTarget(
            name: "PerfTestTests",
            dependencies: ["perftest", "StrandsTestSupport", .product(name: "Histogram", package: "hdrhistogram-swift")],
            swiftSettings: strictSettings
        ),
    ]
)

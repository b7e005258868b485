// swift-tools-version:6.1
import PackageDescription

// The library targets depend on libuv alone. The executables may later add
// well-kept server-ecosystem packages (argument parsing, histograms, logging).
let strictSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "Strands",
    products: [
        .library(name: "StrandsLoop", targets: ["StrandsLoop"]),
        .library(name: "StrandsWS", targets: ["StrandsWS"]),
        .executable(name: "echoserver", targets: ["echoserver"]),
        .executable(name: "perftest", targets: ["perftest"]),
    ],
    targets: [
        .systemLibrary(
            name: "CUV",
            path: "Sources/CUV",
            pkgConfig: "libuv",
            providers: [.apt(["libuv1-dev"])]
        ),
        .target(name: "StrandsLoop", dependencies: ["CUV"], swiftSettings: strictSettings),
        .target(name: "StrandsWS", dependencies: ["StrandsLoop"], swiftSettings: strictSettings),
        .executableTarget(name: "echoserver", dependencies: ["StrandsWS"], swiftSettings: strictSettings),
        .executableTarget(name: "perftest", dependencies: ["StrandsWS"], swiftSettings: strictSettings),
        // Drives StrandsWS through the Autobahn TestSuite (kosoku) as server and as client.
        .executableTarget(name: "strands-autobahn", dependencies: ["StrandsWS"], swiftSettings: strictSettings),
        .testTarget(name: "StrandsLoopTests", dependencies: ["StrandsLoop"], swiftSettings: strictSettings),
        .testTarget(name: "StrandsWSTests", dependencies: ["StrandsWS"], swiftSettings: strictSettings),
    ]
)

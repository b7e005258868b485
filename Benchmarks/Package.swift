// swift-tools-version:6.1
import Foundation
import PackageDescription

// A path dependency's identity is its folder's name, which is whatever the clone was called.
let strands = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .lastPathComponent.lowercased()

// Kept apart from the main package so `swift build` and `swift test` there never compile the benchmark
// harness. Run from this folder: `swift package benchmark` (allocation counts) and
// `swift run -c release tcp-pingpong` (round trips per second, latency).
let package = Package(
    name: "StrandsBenchmarks",
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.0", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        // Only to measure what a metrics library would cost per message (Docs/Architecture.md, metrics).
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
    ],
    targets: [
        .executableTarget(
            name: "tcp-pingpong",
            dependencies: [
                .product(name: "StrandsLoop", package: strands),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            path: "Sources/tcp-pingpong",
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .executableTarget(
            name: "WSBenchmarks",
            dependencies: [
                .product(name: "StrandsWS", package: strands),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/WSBenchmarks",
            swiftSettings: [.swiftLanguageMode(.v6)],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "MetricsBenchmarks",
            dependencies: [
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/MetricsBenchmarks",
            swiftSettings: [.swiftLanguageMode(.v6)],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "LoopBenchmarks",
            dependencies: [
                .product(name: "StrandsLoop", package: strands),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/LoopBenchmarks",
            swiftSettings: [.swiftLanguageMode(.v6)],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)

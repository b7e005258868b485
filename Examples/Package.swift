// swift-tools-version:6.1
import PackageDescription

// Programs written against Strands as a user would: they depend on the package at the repository's root.
let package = Package(
    name: "StrandsExamples",
    dependencies: [
        .package(name: "Strands", path: ".."),
    ],
    targets: [
        .executableTarget(
            name: "async-echo",
            dependencies: [.product(name: "StrandsWS", package: "Strands")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // README's taste, exactly as printed there (scripts/examples.sh checks both agree, and runs it).
        .executableTarget(
            name: "taste",
            dependencies: [.product(name: "StrandsWS", package: "Strands")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .executableTarget(
            name: "chat",
            dependencies: [.product(name: "StrandsWS", package: "Strands")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)

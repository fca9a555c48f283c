// swift-tools-version: 6.1
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "continuum",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Continuum", targets: ["Continuum"]),
        .library(name: "ContinuumLMDB", targets: ["ContinuumLMDB"]),
        .library(name: "ContinuumTesting", targets: ["ContinuumTesting"]),
        .executable(name: "continuum", targets: ["ContinuumCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CLMDB",
            pkgConfig: "lmdb",
            providers: [.apt(["liblmdb-dev"])]
        ),
        .target(
            name: "Continuum",
            dependencies: [.product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .target(
            name: "ContinuumLMDB",
            dependencies: ["Continuum", "CLMDB", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .target(
            name: "ContinuumTesting",
            dependencies: ["Continuum", "ContinuumLMDB"],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "ContinuumCLI",
            dependencies: [
                "Continuum", "ContinuumLMDB",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "Onboarding",
            dependencies: ["Continuum", "ContinuumLMDB", .product(name: "Logging", package: "swift-log")],
            path: "Examples/Onboarding",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "CrashWorker",
            dependencies: ["Continuum", "ContinuumLMDB", "ContinuumTesting"],
            path: "Tests/CrashWorker",
            swiftSettings: strict
        ),
        .testTarget(
            name: "ContinuumTests",
            dependencies: ["Continuum", "ContinuumTesting"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ContinuumLMDBTests",
            dependencies: ["Continuum", "ContinuumLMDB", "ContinuumTesting"],
            swiftSettings: strict
        ),
    ],
    swiftLanguageModes: [.v6]
)

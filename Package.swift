// swift-tools-version: 6.2
import CompilerPluginSupport
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "continuum",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Continuum", targets: ["Continuum"]),
        .library(name: "ContinuumLMDB", targets: ["ContinuumLMDB"]),
        .library(name: "ContinuumHTTP", targets: ["ContinuumHTTP"]),
        .library(name: "ContinuumTesting", targets: ["ContinuumTesting"]),
        .library(name: "ContinuumPostgres", targets: ["ContinuumPostgres"]),
        .library(name: "ContinuumMacros", targets: ["ContinuumMacros"]),
        .library(name: "ContinuumServer", targets: ["ContinuumServer"]),
        .executable(name: "continuum", targets: ["ContinuumCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.1.0"),
        .package(url: "https://github.com/swiftlang/swift-syntax.git", from: "602.0.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.20.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth.git", from: "2.5.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.3.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.1.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.30.0"),
        // `make docs`: the DocC catalogs of Continuum, ContinuumHTTP and ContinuumTesting.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CLMDB",
            pkgConfig: "lmdb",
            providers: [.apt(["liblmdb-dev"])]
        ),
        .target(
            name: "Continuum",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            swiftSettings: strict
        ),
        // The #step macro: its own product, so that only those who import it build swift-syntax.
        .macro(
            name: "ContinuumMacrosPlugin",
            dependencies: [
                .product(name: "SwiftSyntaxMacros", package: "swift-syntax"),
                .product(name: "SwiftCompilerPlugin", package: "swift-syntax"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "ContinuumMacros",
            dependencies: ["Continuum", "ContinuumMacrosPlugin"],
            swiftSettings: strict
        ),
        .target(
            name: "ContinuumLMDB",
            dependencies: [
                "Continuum", "CLMDB",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
        // The scale-out store: many runtime processes on one PostgreSQL.
        .target(
            name: "ContinuumPostgres",
            dependencies: [
                "Continuum",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "ContinuumHTTP",
            dependencies: [
                "Continuum",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdAuth", package: "hummingbird-auth"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "ContinuumTesting",
            dependencies: ["Continuum", "ContinuumLMDB"],
            swiftSettings: strict
        ),
        .target(
            name: "ContinuumServer",
            dependencies: [
                "Continuum", "ContinuumLMDB", "ContinuumPostgres", "ContinuumHTTP",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "ContinuumCLI",
            dependencies: [
                "Continuum", "ContinuumLMDB", "ContinuumPostgres", "ContinuumHTTP", "ContinuumExamples", "ContinuumServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "ContinuumExamples",
            dependencies: ["Continuum"],
            path: "Examples/Workflows",
            swiftSettings: strict
        ),
        // The README's code, compiled (ReadmeTests checks that README.md shows exactly this).
        .target(
            name: "ReadmeSnippets",
            dependencies: [
                "Continuum", "ContinuumLMDB", "ContinuumPostgres", "ContinuumHTTP", "ContinuumMacros", "ContinuumExamples",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            path: "Examples/Readme",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "Onboarding",
            dependencies: ["Continuum", "ContinuumLMDB", .product(name: "Logging", package: "swift-log")],
            path: "Examples/Onboarding",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "FollowUp",
            dependencies: ["Continuum", "ContinuumLMDB", "ContinuumTesting"],
            path: "Examples/FollowUp",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "ResearchAgent",
            dependencies: ["Continuum", "ContinuumLMDB", "ContinuumExamples", .product(name: "Logging", package: "swift-log")],
            path: "Examples/ResearchAgent",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "Determinism",
            dependencies: ["Continuum", "ContinuumLMDB", .product(name: "Logging", package: "swift-log")],
            path: "Examples/Determinism",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "FlakyBank",
            dependencies: [
                "Continuum", "ContinuumLMDB",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Examples/FlakyBank",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "Billing",
            dependencies: ["Continuum", "ContinuumServer"],
            path: "Examples/Billing",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "Evolution",
            dependencies: ["Continuum", "ContinuumLMDB", "ContinuumMacros", .product(name: "Logging", package: "swift-log")],
            path: "Examples/Evolution",
            swiftSettings: strict
        ),
        .target(
            name: "ContinuumTestSupport",
            dependencies: ["Continuum", "ContinuumLMDB", "ContinuumTesting"],
            path: "Tests/Support",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "CrashWorker",
            dependencies: ["Continuum", "ContinuumLMDB", "ContinuumPostgres", "ContinuumTesting", "ContinuumTestSupport", "CLMDB"],
            path: "Tests/CrashWorker",
            swiftSettings: strict
        ),
        .testTarget(
            name: "ContinuumTests",
            dependencies: [
                "Continuum", "ContinuumTesting", "ContinuumTestSupport", "ContinuumMacros", "ContinuumLMDB",
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ],
            // Recorded histories, read from the source tree by ReplayerTests.
            exclude: ["Histories"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ContinuumHTTPTests",
            dependencies: [
                "Continuum", "ContinuumLMDB", "ContinuumHTTP", "ContinuumServer", "ContinuumTesting", "ContinuumTestSupport", "ReadmeSnippets",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ContinuumPostgresTests",
            dependencies: ["Continuum", "ContinuumPostgres", "ContinuumTesting", "ContinuumTestSupport", .product(name: "PostgresNIO", package: "postgres-nio")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ContinuumLMDBTests",
            dependencies: ["Continuum", "ContinuumLMDB", "ContinuumTesting", "ContinuumTestSupport"],
            swiftSettings: strict
        ),
    ],
    swiftLanguageModes: [.v6]
)

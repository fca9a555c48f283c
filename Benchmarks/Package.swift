// swift-tools-version: 6.1
import PackageDescription

// Benchmarks for Continuum, kept in their own package so that the benchmark dependency
// (and its malloc interposer) never reaches the library's users.
//
//     cd Benchmarks && swift package --disable-sandbox benchmark
let package = Package(
    name: "continuum-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        // Named explicitly: CI may clone the repository into a folder with another name.
        .package(name: "continuum", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        // Already a dependency of Continuum; named here only to silence its loggers while measuring.
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
    ],
    targets: [
        .executableTarget(
            name: "ContinuumBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "Continuum", package: "continuum"),
                .product(name: "ContinuumLMDB", package: "continuum"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/ContinuumBenchmarks",
            plugins: [
                .plugin(name: "BenchmarkPlugin", package: "benchmark"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)

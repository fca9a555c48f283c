// swift-tools-version: 6.2
import PackageDescription

let package = Package(
    name: "Signup",
    platforms: [.macOS(.v15)],
    dependencies: [
        // Wherever your copy of Continuum lives: a path, or its repository's URL and a version.
        .package(path: "../continuum"),
    ],
    targets: [
        .executableTarget(
            name: "Signup",
            dependencies: [
                .product(name: "Continuum", package: "continuum"),
                .product(name: "ContinuumLMDB", package: "continuum"),
            ]
        ),
        .testTarget(
            name: "SignupTests",
            dependencies: [
                "Signup",
                .product(name: "ContinuumTesting", package: "continuum"),
            ]
        ),
    ]
)

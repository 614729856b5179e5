// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "workstation",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "workstation", targets: ["workstation"]),
        .library(name: "WorkstationCore", targets: ["WorkstationCore"]),
        .library(name: "WorkstationHost", targets: ["WorkstationHost"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.30.0"),
        .package(url: "https://github.com/vapor/jwt-kit", from: "5.8.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
    ],
    targets: [
        // Pure: roster and settings loading, validation, desired state, planner, renderers.
        .target(name: "WorkstationCore", dependencies: [.product(name: "Yams", package: "Yams")]),
        // Effects: host root, snapshot readers, adapters, executor, lock, journal, state.
        .target(
            name: "WorkstationHost",
            dependencies: [
                "WorkstationCore", "WorkstationIntegrations",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // Network clients (Authentik, Vault, Kubernetes), each behind a protocol.
        .target(
            name: "WorkstationIntegrations",
            dependencies: [
                "WorkstationCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // The Linux calls the dispatcher's fast path makes that Glibc's module map leaves out (epoll(7), accept4(2)).
        .target(name: "CWorkstationLinux"),
        // Data plane: per-user reverse proxy and the ttyd login shim.
        .target(
            name: "WorkstationDispatch",
            dependencies: [
                "WorkstationCore",
                "CWorkstationLinux",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            // Tuning (Benchmarks/dispatch/README.md): no run-time exclusivity checks in the release build of the data
            // plane (they were a tenth of its instructions per request); the compiler's static checks stay, and debug
            // builds (the tests) keep the run-time ones.
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]
        ),
        // VERSION (one line, the release version) is compiled in: `workstation --version`, the build_info metric,
        // and the Debian package's version (scripts/package) all read it.
        .executableTarget(
            name: "workstation",
            dependencies: [
                "WorkstationCore", "WorkstationHost", "WorkstationIntegrations", "WorkstationDispatch",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            resources: [.embedInCode("VERSION")]
        ),
        // What the test targets share, and nothing else uses: the process runner, the temp root, the tree
        // snapshot and the HTTP test server (Tests/WorkstationTestSupport).
        .target(
            name: "WorkstationTestSupport",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            path: "Tests/WorkstationTestSupport"
        ),
        // Fixtures/: the planner's data-driven cases, read from the source tree by PlannerFixtures (which also
        // rewrites their expected plans on request), so not bundled as resources.
        .testTarget(
            name: "WorkstationCoreTests",
            dependencies: ["WorkstationCore", "WorkstationTestSupport", .product(name: "Yams", package: "Yams")],
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "WorkstationHostTests",
            dependencies: ["WorkstationCore", "WorkstationHost", "WorkstationTestSupport"]
        ),
        // Authentik, Kubernetes and Vault against real HTTP servers on 127.0.0.1 started by the tests.
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "WorkstationCore", "WorkstationHost", "WorkstationIntegrations", "WorkstationTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        .testTarget(
            name: "WorkstationDispatchTests",
            dependencies: [
                "WorkstationDispatch", "WorkstationCore", "WorkstationTestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ]
        ),
        .testTarget(
            name: "EndToEndTests",
            dependencies: ["WorkstationCore", "WorkstationHost", "WorkstationTestSupport"],
            resources: []
        ),
    ]
)

// swift-tools-version: 6.1
//
// Leasehold: a networked lease coordination service for shared block volumes.
// Module plan (ARCHITECTURE.md): Core <- Store, Wire <- Server, Client <- executables.
// Only the modules that exist so far are declared; later ones keep these names:
// LeaseholdStore, LeaseholdWire, LeaseholdServer, LeaseholdClient, leaseholdd,
// leaseholdctl, leasehold-bench.
import PackageDescription

let package = Package(
    name: "leasehold",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "LeaseholdCore", targets: ["LeaseholdCore"]),
        .library(name: "LeaseholdStore", targets: ["LeaseholdStore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // Pure domain: extents, free space, busy extents, pins, layouts, sessions,
        // the Coordinator state machine and the invariant checker. No I/O, no clocks.
        .target(
            name: "LeaseholdCore",
            dependencies: [.product(name: "DequeModule", package: "swift-collections")]
        ),
        // Helpers shared by the test suites of every module: the manual clock, a
        // harness that drives the Coordinator, the seeded simulation and the naive
        // block model.
        .target(
            name: "LeaseholdTestSupport",
            dependencies: ["LeaseholdCore"]
        ),
        .testTarget(
            name: "LeaseholdCoreTests",
            dependencies: ["LeaseholdCore", "LeaseholdTestSupport"]
        ),
        // SQLite journal (GRDB on the system libsqlite3): schema and migrations, group
        // commit of the Coordinator's change sets, recovery, online snapshots.
        .target(
            name: "LeaseholdStore",
            dependencies: [
                "LeaseholdCore",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "LeaseholdStoreTests",
            dependencies: ["LeaseholdStore", "LeaseholdCore", "LeaseholdTestSupport", "leasehold-crash-helper"]
        ),
        // The workload the journal's crash test kills with SIGKILL (not shipped).
        .executableTarget(
            name: "leasehold-crash-helper",
            dependencies: ["LeaseholdStore", "LeaseholdCore"]
        ),
        .executableTarget(
            name: "LeaseholdCoreBenchmarks",
            dependencies: [
                "LeaseholdCore",
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/LeaseholdCoreBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "LeaseholdStoreBenchmarks",
            dependencies: [
                "LeaseholdCore",
                "LeaseholdStore",
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/LeaseholdStoreBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)

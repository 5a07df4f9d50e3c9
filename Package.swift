// swift-tools-version: 6.1
//
// Leasehold: a networked lease coordination service for shared block volumes.
// Module plan (ARCHITECTURE.md): Core <- Messages <- Journal <- Store; Messages <- Wire <- Server
// (Journal) and Client <- executables; Etcd <- Cluster (Journal) for cluster mode. Store does not
// import Wire; Server does not import Store.
import PackageDescription

let package = Package(
    name: "leasehold",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "LeaseholdCore", targets: ["LeaseholdCore"]),
        .library(name: "LeaseholdStore", targets: ["LeaseholdStore"]),
        .library(name: "LeaseholdMessages", targets: ["LeaseholdMessages"]),
        .library(name: "LeaseholdJournal", targets: ["LeaseholdJournal"]),
        .library(name: "LeaseholdWire", targets: ["LeaseholdWire"]),
        .library(name: "LeaseholdServer", targets: ["LeaseholdServer"]),
        .library(name: "LeaseholdClient", targets: ["LeaseholdClient"]),
        .executable(name: "leaseholdd", targets: ["leaseholdd"]),
        .executable(name: "leaseholdctl", targets: ["leaseholdctl"]),
        .executable(name: "leasehold-bench", targets: ["leasehold-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
        // Pinned exactly, with no traits: otherwise SwiftPM orders its trait flags randomly
        // and rebuilds it half the time. Only the runtime is used; the generated code is
        // committed (scripts/generate-protos).
        .package(url: "https://github.com/apple/swift-protobuf.git", exact: "1.39.0", traits: []),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
    ],
    targets: [
        // Pure domain: extents, free space, busy extents, pins, layouts, sessions,
        // the Coordinator state machine and the invariant checker. No I/O, no clocks.
        // Crypto only for SHA-256 of session secrets (kept as digests, SEMANTICS.md).
        .target(
            name: "LeaseholdCore",
            dependencies: [
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // Helpers shared by the test suites of every module: the manual clock, a
        // harness that drives the Coordinator, the seeded simulation, the naive
        // block model, and a TCP relay that fails on demand.
        .target(
            name: "LeaseholdTestSupport",
            dependencies: [
                "LeaseholdCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "LeaseholdCoreTests",
            dependencies: ["LeaseholdCore", "LeaseholdTestSupport"]
        ),
        // The messages: generated protobuf code (Generated/, from Protos/: the wire contract
        // and the journal's change sets) and their mapping to Core values. No NIO.
        .target(
            name: "LeaseholdMessages",
            dependencies: [
                "LeaseholdCore",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        .testTarget(
            name: "LeaseholdMessagesTests",
            dependencies: ["LeaseholdMessages", "LeaseholdCore", "LeaseholdTestSupport"]
        ),
        // The journal, whatever makes it durable: the sink protocol with its typed
        // outcomes, group commit with batches in flight released in order, the in-memory
        // sink, and booting a Coordinator from a sink.
        .target(
            name: "LeaseholdJournal",
            dependencies: [
                "LeaseholdCore",
                "LeaseholdMessages",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "LeaseholdJournalTests",
            dependencies: [
                "LeaseholdJournal", "LeaseholdStore", "LeaseholdCluster", "LeaseholdEtcd", "LeaseholdCore", "LeaseholdTestSupport",
                "LeaseholdClusterTestSupport",
            ]
        ),
        // etcd's v3 API through its JSON gateway (AsyncHTTPClient): KV, transactions,
        // leases, watches, maintenance; several endpoints, errors told apart by what a
        // caller may conclude about its write.
        .target(
            name: "LeaseholdEtcd",
            dependencies: [
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // Cluster mode on etcd (docs/cluster.md): the keys of a cluster, the etcd journal
        // sink with its guarded log transactions, and reading the log back.
        .target(
            name: "LeaseholdCluster",
            dependencies: [
                "LeaseholdCore",
                "LeaseholdJournal",
                "LeaseholdMessages",
                "LeaseholdEtcd",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // A leaseholdd node of a cluster: the server as standby or leader, the election,
        // the log followed into memory, takeover and standing down.
        .target(
            name: "LeaseholdNode",
            dependencies: [
                "LeaseholdServer",
                "LeaseholdClient",
                "LeaseholdStore",
                "LeaseholdCluster",
                "LeaseholdEtcd",
                "LeaseholdJournal",
                "LeaseholdCore",
                "LeaseholdMessages",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "LeaseholdNodeTests",
            dependencies: [
                "LeaseholdNode", "LeaseholdServer", "LeaseholdClient", "LeaseholdCluster", "LeaseholdEtcd", "LeaseholdCore", "LeaseholdMessages", "LeaseholdJournal",
                "LeaseholdStore", "LeaseholdCertificates", "LeaseholdTestSupport", "LeaseholdClusterTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Real etcd members on loopback for tests, and clusters in them.
        .target(
            name: "LeaseholdClusterTestSupport",
            dependencies: ["LeaseholdCluster", "LeaseholdEtcd", .product(name: "NIOSSL", package: "swift-nio-ssl")]
        ),
        .testTarget(
            name: "LeaseholdClusterTests",
            dependencies: [
                "LeaseholdCluster", "LeaseholdEtcd", "LeaseholdJournal", "LeaseholdMessages", "LeaseholdCore", "LeaseholdTestSupport",
                "LeaseholdClusterTestSupport", "LeaseholdCertificates",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // The wire: the length-prefixed frame codec, envelopes and outboxes over NIO.
        .target(
            name: "LeaseholdWire",
            dependencies: [
                "LeaseholdCore",
                "LeaseholdMessages",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "LeaseholdWireTests",
            dependencies: [
                "LeaseholdWire",
                "LeaseholdMessages",
                "LeaseholdCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
            ]
        ),
        // The network service: mutual TLS, connections, the serial owner of the
        // Coordinator with its timers and effect routing, snapshots, graceful shutdown.
        .target(
            name: "LeaseholdServer",
            dependencies: [
                "LeaseholdCore",
                "LeaseholdJournal",
                "LeaseholdMessages",
                "LeaseholdWire",
                "LeaseholdCertificates",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // The public async/await client library: sessions with slots, keepalive,
        // jeopardy, reconnect and resume; admin and storage-target APIs.
        .target(
            name: "LeaseholdClient",
            dependencies: [
                "LeaseholdCore",
                "LeaseholdMessages",
                "LeaseholdWire",
                "LeaseholdCertificates",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The client's pure state machines (connection and session lease) on a manual clock.
        .testTarget(
            name: "LeaseholdClientTests",
            dependencies: ["LeaseholdClient", "LeaseholdCore", "LeaseholdMessages"]
        ),
        // The daemon: flags, environment and config file; a ServiceGroup that shuts down
        // gracefully on SIGTERM/SIGINT; `leaseholdd certs` for development certificates.
        .executableTarget(
            name: "leaseholdd",
            dependencies: [
                "LeaseholdServer",
                "LeaseholdNode",
                "LeaseholdCluster",
                "LeaseholdEtcd",
                "LeaseholdStore",
                "LeaseholdJournal",
                "LeaseholdCore",
                "LeaseholdCertificates",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "LeaseholdServerTests",
            dependencies: [
                "LeaseholdServer",
                "LeaseholdTestSupport",
                "LeaseholdClient",
                "LeaseholdCore",
                "LeaseholdJournal",
                "LeaseholdStore",
                "LeaseholdMessages",
                "LeaseholdWire",
                "LeaseholdCertificates",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The admin and scripting CLI.
        .executableTarget(
            name: "leaseholdctl",
            dependencies: [
                "LeaseholdClient",
                "LeaseholdCertificates",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Multi-process tests: the real leaseholdd and leaseholdctl as child processes.
        .testTarget(
            name: "LeaseholdIntegrationTests",
            dependencies: [
                "leaseholdd",
                "LeaseholdTestSupport",
                "LeaseholdClusterTestSupport",
                "leaseholdctl",
                "LeaseholdClient",
                "LeaseholdCertificates",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The load generator (release build): workloads over real mutual TLS.
        .executableTarget(
            name: "leasehold-bench",
            dependencies: [
                "LeaseholdClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // A tour of the client library (README): needs only the LeaseholdClient library.
        .executableTarget(
            name: "leasehold-example",
            dependencies: ["LeaseholdClient"],
            path: "Examples/PinAndRecall"
        ),
        // Certificates for mutual TLS: a small CA, server and client leaves, and the
        // development set auto-TLS writes into a data directory.
        .target(
            name: "LeaseholdCertificates",
            dependencies: [
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ]
        ),
        // The SQLite file as a journal sink (GRDB on the system libsqlite3): schema and
        // migrations, one transaction per batch, loading, online snapshots.
        .target(
            name: "LeaseholdStore",
            dependencies: [
                "LeaseholdCore",
                "LeaseholdJournal",
                "LeaseholdMessages",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "LeaseholdStoreTests",
            dependencies: [
                "LeaseholdStore", "LeaseholdJournal", "LeaseholdCore", "LeaseholdTestSupport", "leasehold-crash-helper",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        // The workload the journal's crash test kills with SIGKILL (not shipped).
        .executableTarget(
            name: "leasehold-crash-helper",
            dependencies: ["LeaseholdStore", "LeaseholdJournal", "LeaseholdCore"]
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
                "LeaseholdJournal",
                "LeaseholdStore",
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/LeaseholdStoreBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)

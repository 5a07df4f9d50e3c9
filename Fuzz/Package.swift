// swift-tools-version: 6.1
//
// A libFuzzer target over what a server does with bytes from the network before any
// domain logic: the frame decoder, envelope decoding, and the mapping of requests,
// responses and pushes to Core values (issue 13, item 9). Its own package so that the
// project's builds never see an executable whose `main` comes from libFuzzer; built and
// run by scripts/fuzz with `swift build --sanitize=fuzzer --sanitize=address`.
import PackageDescription

let package = Package(
    name: "leasehold-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "leasehold", path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        // As the project pins it: exactly, with no traits (otherwise SwiftPM orders the
        // trait flags randomly and rebuilds everything half the time).
        .package(url: "https://github.com/apple/swift-protobuf.git", exact: "1.39.0", traits: []),
    ],
    targets: [
        .executableTarget(
            name: "FuzzDecoder",
            dependencies: [
                .product(name: "LeaseholdWire", package: "leasehold"),
                .product(name: "LeaseholdMessages", package: "leasehold"),
                .product(name: "LeaseholdCore", package: "leasehold"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        )
    ]
)

// swift-tools-version:5.9
// Swift package over libsail: `CSail` is the prebuilt static library with sail.h (made by
// build-xcframework.sh), `Sail` the Swift wrapper apps import. The linker settings repeat what
// llama-cpp-sys-2's build.rs links on Apple platforms, because a static library carries no
// link dependencies of its own. Not built in sail's environment (no Xcode there).
import PackageDescription

let package = Package(
    name: "Sail",
    platforms: [.iOS(.v15)],
    products: [
        .library(name: "Sail", targets: ["Sail"]),
    ],
    targets: [
        .binaryTarget(name: "CSail", path: "Sail.xcframework"),
        .target(
            name: "Sail",
            dependencies: ["CSail"],
            linkerSettings: [
                .linkedFramework("Foundation"),
                .linkedFramework("Accelerate"),
                .linkedFramework("Metal"),
                .linkedFramework("MetalKit"),
                .linkedLibrary("c++"),
            ]
        ),
    ]
)

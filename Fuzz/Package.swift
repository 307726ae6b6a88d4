// swift-tools-version: 6.1
// libFuzzer targets for DwarfStar's parsers of untrusted input (docs/reliability.md, "Fuzzing").
// Build and run through Scripts/fuzz.sh; the targets need the sanitizer flags it passes:
//   swift build -c release --sanitize fuzzer --sanitize address -Xswiftc -sanitize=fuzzer,address
import PackageDescription

// A path dependency is named by its directory: whatever the checkout of the main package is called.
let root = Context.packageDirectory.split(separator: "/").dropLast().last.map(String.init) ?? "DwarfStar"

func fuzzTarget(_ name: String, _ products: [String]) -> Target {
    .executableTarget(name: name, dependencies: ["FuzzSupport"] + products.map { .product(name: $0, package: root) })
}

let package = Package(
    name: "DwarfStarFuzz",
    platforms: [.macOS(.v14)],
    dependencies: [.package(path: "..")],
    targets: [
        // Input splitting, fixture paths, invariant checks; the tokenizer checks both tokenizer targets share.
        .target(name: "FuzzSupport", dependencies: [.product(name: "DwarfStar", package: root)]),
        fuzzTarget("FuzzGGUF", ["DwarfStar"]),
        fuzzTarget("FuzzTokenizerBPE", ["DwarfStar"]),
        fuzzTarget("FuzzTokenizerSPM", ["DwarfStar"]),
        fuzzTarget("FuzzChatTemplate", ["DwarfStar"]),
        fuzzTarget("FuzzJSONSchema", ["DwarfStar"]),
        fuzzTarget("FuzzServer", ["DwarfStar", "DwarfStarServer"]),
    ],
    swiftLanguageModes: [.v5]
)

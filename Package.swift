// swift-tools-version: 6.1
// DwarfStar: GGUF file → weights → model forward → sampler → session → CLI.
import PackageDescription

// Hot loops live in C (CKernels) and are always optimised, even in debug builds,
// because the tests run real models.
let cOptimise: [CSetting] = [.unsafeFlags(["-O3", "-fno-math-errno"])]

let package = Package(
    name: "DwarfStar",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "DwarfStar",
                 targets: ["GGUF", "Kernels", "KVCache", "Platform", "Tokenizers", "ChatTemplate", "Models", "Sampling", "Engine"]),
        .executable(name: "dwarfstar", targets: ["DwarfStarCLI"]),
        // The HTTP server as a library, for the fuzzing harness in Fuzz/ (its request decoders).
        .library(name: "DwarfStarServer", targets: ["Server"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.5.0"),
    ],
    targets: [
        // C: quant block structs, dequantization, int8/float dot products with runtime CPU dispatch,
        // the persistent worker pool.
        .target(name: "CKernels", cSettings: cOptimise),
        // GGUF reader (mmap, validation) and writer.
        .target(name: "GGUF", dependencies: ["CKernels"]),
        // File I/O that bypasses the page cache, SHA-256: the C helpers models and engine use besides kernels.
        .target(name: "Platform", dependencies: ["CKernels"]),
        // The only Swift face of CKernels' kernels: matmul over tensors, norms, RoPE, attention over paged
        // KV, state kernels, the worker pool.
        .target(name: "Kernels", dependencies: ["CKernels", "GGUF", "KVCache"]),
        // Paged KV cache: page pool with reference counts, copy-on-write and a prefix cache; per-sequence
        // page tables.
        .target(name: "KVCache", dependencies: ["CKernels"]),
        .target(name: "Tokenizers"),
        .target(name: "ChatTemplate"),
        // Architectures over shared blocks; registry by general.architecture.
        .target(name: "Models", dependencies: ["GGUF", "Kernels", "KVCache", "Platform"]),
        .target(name: "Sampling"),
        // Sessions: model + tokenizer + template + KV cache + sampler; model store (pull); perplexity.
        .target(name: "Engine", dependencies: ["GGUF", "Kernels", "KVCache", "Models", "Platform", "Tokenizers", "ChatTemplate", "Sampling"]),
        // OpenAI- and Anthropic-compatible HTTP server over the batch engine (sees only Engine).
        .target(name: "Server", dependencies: [
            "Engine", "Sampling", "ChatTemplate",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "DwarfStarCLI", dependencies: [
            "Engine", "GGUF", "Models", "Kernels", "KVCache", "Server",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .testTarget(name: "GGUFTests", dependencies: ["GGUF", "Kernels"]),
        .testTarget(name: "KernelsTests", dependencies: ["CKernels", "Kernels", "GGUF"], exclude: ["Fixtures"]),
        .testTarget(name: "TokenizersTests", dependencies: ["Tokenizers", "GGUF", "Engine"], exclude: ["Fixtures"]),
        .testTarget(name: "ChatTemplateTests", dependencies: ["ChatTemplate"], exclude: ["Fixtures"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "GGUF", "Kernels", "KVCache", "Engine"], exclude: ["Fixtures"]),
        .testTarget(name: "KVCacheTests", dependencies: ["KVCache"]),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "Models", "GGUF", "Sampling", "KVCache", "Platform"], exclude: ["Fixtures"]),
        .testTarget(name: "ServerTests", dependencies: ["Server", "Engine", "Sampling"], exclude: ["Fixtures"]),
    ],
    swiftLanguageModes: [.v5]
)

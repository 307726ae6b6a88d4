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
                 targets: ["GGUF", "Kernels", "KVCache", "Tokenizers", "ChatTemplate", "Models", "Sampling", "Engine", "Synthesis"]),
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
        // Swift wrappers over CKernels: matmul over tensors, norms, RoPE, attention, worker pool.
        .target(name: "Kernels", dependencies: ["CKernels", "GGUF"]),
        // Paged KV cache: page pool with reference counts, copy-on-write and a prefix cache; per-sequence
        // page tables.
        .target(name: "KVCache", dependencies: ["CKernels"]),
        .target(name: "Tokenizers"),
        .target(name: "ChatTemplate"),
        // Architectures over shared blocks; registry by general.architecture.
        .target(name: "Models", dependencies: ["CKernels", "GGUF", "Kernels", "KVCache"]),
        .target(name: "Sampling"),
        // Sessions: model + tokenizer + template + KV cache + sampler; model store (pull); perplexity.
        .target(name: "Engine", dependencies: ["CKernels", "GGUF", "Kernels", "KVCache", "Models", "Tokenizers", "ChatTemplate", "Sampling"]),
        // Random-weight GGUF writers in realistic shapes (llama, deepseek2, glm-dsa, deepseek4, qwen35moe, gemma4) for
        // `dwarfstar synth` and the synthetic-model tests; reference quantization through Kernels.
        .target(name: "Synthesis", dependencies: ["GGUF", "Kernels", "Models"]),
        // OpenAI- and Anthropic-compatible HTTP server over the batch engine (sees only Engine).
        .target(name: "Server", dependencies: [
            "Engine", "Sampling", "ChatTemplate",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "DwarfStarCLI", dependencies: [
            "Engine", "GGUF", "Models", "Kernels", "KVCache", "Server", "Synthesis",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .testTarget(name: "GGUFTests", dependencies: ["GGUF", "Kernels"]),
        .testTarget(name: "KernelsTests", dependencies: ["CKernels", "Kernels", "GGUF"], exclude: ["Fixtures"]),
        .testTarget(name: "TokenizersTests", dependencies: ["Tokenizers", "GGUF", "Engine"], exclude: ["Fixtures"]),
        .testTarget(name: "ChatTemplateTests", dependencies: ["ChatTemplate"], exclude: ["Fixtures"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "GGUF", "Kernels", "KVCache", "Engine"], exclude: ["Fixtures"]),
        .testTarget(name: "KVCacheTests", dependencies: ["KVCache"]),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "Models", "GGUF", "Sampling", "KVCache", "Synthesis"], exclude: ["Fixtures"]),
        .testTarget(name: "ServerTests", dependencies: ["Server", "Engine", "Sampling"], exclude: ["Fixtures"]),
    ],
    swiftLanguageModes: [.v5]
)

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
                 targets: ["GGUF", "Kernels", "KVCache", "Platform", "Tokenizers", "ChatTemplate", "Models", "Sampling", "Engine",
                           "Synthesis", "Quantization"]),
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
        // C: quant block structs, reference quantizers, dequantization, int8/float dot products and GEMM with
        // runtime CPU dispatch, float ops (norms, activations, attention, DeltaNet steps), the persistent worker
        // pool, SHA-256, checksums, direct-I/O helpers, the memory-bandwidth probe.
        .target(name: "CKernels", cSettings: cOptimise),
        // GGUF reader (mmap, validation) and writer; pure Swift.
        .target(name: "GGUF"),
        // The Vulkan loader opened at run time (no link-time dependency; built with the Vulkan headers where
        // they are installed) and the devices it offers: the first piece of the Vulkan backend.
        .target(name: "CVulkan", linkerSettings: [.linkedLibrary("dl", .when(platforms: [.linux]))]),
        .target(name: "VulkanBackend", dependencies: ["CVulkan"]),
        // File I/O that bypasses the page cache, SHA-256, terminal progress bars: the C helpers models and engine
        // use besides kernels.
        .target(name: "Platform", dependencies: ["CKernels"]),
        // The only Swift face of CKernels' kernels: the op interface (Backend) and its CPU backend, weight
        // matrices used in place, the quantized matmul, norms and activations, RoPE, attention over paged
        // KV, state kernels, reference quantization, the worker pool.
        .target(name: "Kernels", dependencies: ["CKernels", "GGUF", "KVCache"]),
        // Paged KV cache: page pool with reference counts, copy-on-write and a prefix cache; per-sequence
        // page tables; the disk tier; side-state (recurrent / compressor) checkpoints.
        .target(name: "KVCache", dependencies: ["CKernels"]),
        .target(name: "Tokenizers"),
        .target(name: "ChatTemplate"),
        // Architectures, each building its layer stack over the op interface; registry by
        // general.architecture; the tensor-name table.
        .target(name: "Models", dependencies: ["GGUF", "Kernels", "KVCache", "Platform"]),
        .target(name: "Sampling"),
        // Sessions: model + tokenizer + template + KV cache + sampler; session files; the continuous-batching
        // engine; model store (pull); RAM-budget placement; perplexity; bench measurements.
        .target(name: "Engine", dependencies: ["GGUF", "Kernels", "KVCache", "Models", "Platform", "Tokenizers", "ChatTemplate", "Sampling"]),
        // Random-weight GGUF writers in realistic shapes (llama, deepseek2, glm-dsa, deepseek4, qwen35moe, gemma4) for
        // `dwarfstar synth` and the synthetic-model tests; tensor names from Models' table (TensorNames.swift),
        // so writer and loaders agree; reference quantization through Kernels. Engine does not use it.
        .target(name: "Synthesis", dependencies: ["GGUF", "Kernels", "Models", "Platform"]),
        // Quantization: llama-quantize's mixes and rules, importance matrices (llama.cpp's formats, collected
        // through the op interface), the file writer (dequantize → ds_quantize_rows), conversion to floats,
        // KL divergence against reference logits, per-tensor sensitivity and the adaptive allocation.
        .target(name: "Quantization", dependencies: ["CKernels", "GGUF", "Kernels", "Models", "Engine"]),
        // OpenAI- and Anthropic-compatible HTTP server over the batch engine: Engine for models, sessions and
        // batching, Sampling for sampler parameters and output constraints (JSON schema, tool calls),
        // ChatTemplate for rendering tool definitions; never Models or Kernels directly.
        .target(name: "Server", dependencies: [
            "Engine", "Sampling", "ChatTemplate",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "Logging", package: "swift-log"),
        ],
        // The chat page, compiled into the binary (no resource bundle to ship beside it).
        resources: [.embedInCode("WebUI/chat.html")]),
        .executableTarget(name: "DwarfStarCLI", dependencies: [
            "Engine", "GGUF", "Models", "Kernels", "KVCache", "Sampling", "Server", "Synthesis", "Quantization", "Tokenizers", "Platform", "VulkanBackend",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .testTarget(name: "GGUFTests", dependencies: ["GGUF", "Kernels"]),
        .testTarget(name: "VulkanBackendTests", dependencies: ["VulkanBackend"]),
        .testTarget(name: "KernelsTests", dependencies: ["CKernels", "Kernels", "GGUF", "KVCache"], exclude: ["Fixtures"]),
        .testTarget(name: "TokenizersTests", dependencies: ["Tokenizers", "GGUF", "Engine"], exclude: ["Fixtures"]),
        .testTarget(name: "ChatTemplateTests", dependencies: ["ChatTemplate"], exclude: ["Fixtures"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "GGUF", "Kernels", "KVCache", "Engine"], exclude: ["Fixtures"]),
        .testTarget(name: "KVCacheTests", dependencies: ["KVCache"]),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "Models", "GGUF", "Sampling", "KVCache", "Platform", "Tokenizers", "Synthesis", "Quantization"],
                    exclude: ["Fixtures"]),
        .testTarget(name: "QuantizationTests", dependencies: ["Quantization", "GGUF", "Kernels", "Engine", "Models", "Platform"],
                    exclude: ["Fixtures"]),
        .testTarget(name: "ServerTests", dependencies: ["Server", "Engine", "Sampling"], exclude: ["Fixtures"]),
    ],
    swiftLanguageModes: [.v5]
)

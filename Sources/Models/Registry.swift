// Maps general.architecture to its implementation.

import GGUF
import Kernels

/// An architecture reads what its metadata adds to the common keys, adjusts `config` where its files
/// differ, and builds its layer stack; TransformerModel adds the embedding and the head.
public protocol Architecture {
    static var name: String { get }
    static func makeStack(_ config: inout ModelConfig, gguf: GGUFFile) throws -> any LayerStack
}

public enum ModelRegistry {
    public static let architectures: [any Architecture.Type] = [
        LlamaArchitecture.self, Qwen2Architecture.self, Qwen3Architecture.self, Gemma3Architecture.self,
        Qwen3MoEArchitecture.self, GLM4MoEArchitecture.self, Llama4Architecture.self, DeepSeek2Architecture.self, GLMDSAArchitecture.self,
        DeepSeek4Architecture.self, Gemma4Architecture.self, Qwen35MoEArchitecture.self,
    ]
    public static var supportedNames: [String] { architectures.map { $0.name } }

    /// The model of `gguf`, its dense matrices held as `weightLayout` asks.
    public static func load(_ gguf: GGUFFile, weightLayout: WeightLayout = .packed) throws -> TransformerModel {
        guard let arch = gguf.architecture else { throw ModelError.missingMetadata(file: gguf.path, key: "general.architecture") }
        guard let impl = architectures.first(where: { $0.name == arch }) else {
            throw ModelError.unsupportedArchitecture(file: gguf.path, architecture: arch, supported: supportedNames)
        }
        var config = try ModelConfig(gguf: gguf, architecture: arch)
        config.weightLayout = weightLayout
        let body = try impl.makeStack(&config, gguf: gguf)
        return try TransformerModel(gguf: gguf, config: config, body: body)
    }
}

// `<architecture>.<key>` metadata of a GGUF file, read the same way by every architecture file.

import GGUF

public struct ArchitectureMetadata {
    public let gguf: GGUFFile
    public let architecture: String

    public init(_ gguf: GGUFFile, architecture: String) { self.gguf = gguf; self.architecture = architecture }

    /// The value of `<architecture>.<key>` (nil: absent).
    public subscript(_ key: String) -> GGUFValue? { gguf["\(architecture).\(key)"] }

    public func int(_ key: String) -> Int? { self[key]?.int }

    /// An integer the architecture cannot do without.
    public func required(_ key: String) throws -> Int {
        guard let v = int(key) else { throw ModelError.missingMetadata(file: gguf.path, key: "\(architecture).\(key)") }
        return v
    }
}

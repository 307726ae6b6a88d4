// Streaming SHA-256 (model downloads, session and cache file checksums) over the C implementation.

import CKernels
import Foundation

public struct SHA256 {
    private var ctx = ds_sha256_ctx()
    public init() { ds_sha256_init(&ctx) }
    public mutating func update(_ data: Data) {
        data.withUnsafeBytes { ds_sha256_update(&ctx, $0.baseAddress, $0.count) }
    }
    public mutating func update(_ bytes: UnsafeRawBufferPointer) { ds_sha256_update(&ctx, bytes.baseAddress, bytes.count) }
    public mutating func hexDigest() -> String {
        var out = [UInt8](repeating: 0, count: 32)
        ds_sha256_final(&ctx, &out)
        return out.map { String(format: "%02x", $0) }.joined()
    }
}

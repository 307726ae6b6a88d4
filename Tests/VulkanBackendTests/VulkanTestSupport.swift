// What the Vulkan backend's tests share: whether a device is there (and why a test skips when not),
// deterministic values, and a CPU backend to wrap or compare with.

import Kernels
import Testing
import VulkanBackend

let hasDevice = (try? VulkanDevices.probe().get())?.isEmpty == false
/// Whether device 0 does integer dot products (lavapipe does, in software).
let hasIntegerDot = (try? VulkanDevices.probe().get())?.first?.integerDotProduct == true
let integerDotReason: Comment = "needs a Vulkan device with VK_KHR_shader_integer_dot_product (lavapipe has it)"
let lavapipeReason: Comment = "needs a Vulkan device (Mesa's lavapipe: apt install mesa-vulkan-drivers libvulkan-dev)"

/// Deterministic values in [−2, 2].
func values(_ n: Int, seed: UInt64) -> [Float] {
    var s = seed
    return (0..<n).map { _ in
        s = s &* 6364136223846793005 &+ 1442695040888963407
        return Float(Int64(bitPattern: s >> 11) % 2001 - 1000) / 500
    }
}

/// A CPU backend on two threads with attention scratch for up to 64 positions of 4 heads of 32.
func cpuBackend() -> CPUBackend {
    let pool = WorkerPool(threads: 2)
    return CPUBackend(pool: pool, attention: AttentionWorkspace(pool: pool, contextLength: 64, groupSize: 2, widestKey: 32,
                                                                widestValue: 32, heads: 4))
}

// Which backend a run's layer stacks use, resolved once with the other runtime options: the CPU, or a
// Vulkan device (products of the weights that fit a GPU budget, row ops, K/V and attention on the device;
// the remaining ops on the CPU). `auto` takes a GPU when there is one and says which; a Vulkan device that is itself the CPU
// (Mesa's lavapipe) is taken only when asked for by name, since the CPU backend runs faster there.

import Kernels
import VulkanBackend

public enum BackendChoice: String, Sendable, CaseIterable {
    case auto, cpu, vulkan
}

public enum ComputeBackendError: Error, CustomStringConvertible, Equatable {
    case unavailable(String)
    case noSuchDevice(Int, count: Int)

    public var description: String {
        switch self {
        case .unavailable(let reason): return "--backend vulkan: \(reason)"
        case .noSuchDevice(let n, let count): return "--gpu-device \(n): the machine has \(count) Vulkan device\(count == 1 ? "" : "s") (see dwarfstar devices)"
        }
    }
}

/// The backend of a run: a provider (nil: the CPU) and the line that says so at load.
public struct ResolvedBackend: Sendable {
    public let provider: BackendProvider?
    public let line: String

    public static let cpu = ResolvedBackend(provider: nil, line: "backend: cpu")

    /// The devices, probed once per process.
    static let devices: Result<[VulkanDevice], VulkanUnavailable> = VulkanDevices.probe()

    /// `choice` (nil: the CPU, the library's default; the CLI passes auto) on device `device` (nil: the best)
    /// with `budgetBytes` of weights on it (nil: 90% of its memory). Which matrices go there is planned with the
    /// model (RuntimeOptions.placeOnDevice).
    /// `integerDot`: products of the 32-element block types by integer dot products (nil: where the device
    /// does them in hardware; true where it has none is an error).
    public static func resolve(_ choice: BackendChoice?, device: Int?, budgetBytes: Int?, integerDot: Bool? = nil) throws -> ResolvedBackend {
        guard let choice, choice != .cpu else { return .cpu }
        let explicit = choice == .vulkan
        let found: [VulkanDevice]
        switch devices {
        case .failure(let why):
            if explicit { throw ComputeBackendError.unavailable(why.reason) }
            return ResolvedBackend(provider: nil, line: "backend: cpu (auto: no GPU; \(why.reason))")
        case .success(let list): found = list
        }
        let chosen: VulkanDevice
        if let device {
            guard let d = found.first(where: { $0.index == device }) else { throw ComputeBackendError.noSuchDevice(device, count: found.count) }
            chosen = d
        } else {
            let rank: [VulkanDevice.Kind] = [.discreteGPU, .integratedGPU, .virtualGPU, .other] + (explicit ? [.cpu] : [])
            guard let best = rank.lazy.compactMap({ kind in found.first { $0.kind == kind } }).first else {
                let names = found.map { "\($0.name) (\($0.kind.rawValue))" }.joined(separator: ", ")
                return ResolvedBackend(provider: nil, line: "backend: cpu (auto: no GPU; the Vulkan devices here run on the CPU: \(names); "
                                       + "--backend vulkan uses them anyway)")
            }
            chosen = best
        }
        let context: VulkanContext
        do {
            context = try VulkanContext(deviceIndex: chosen.index, budgetBytes: budgetBytes)
        } catch {
            if explicit { throw ComputeBackendError.unavailable("\(error)") }
            return ResolvedBackend(provider: nil, line: "backend: cpu (auto: \(chosen.name) would not open: \(error))")
        }
        if let integerDot {
            guard !integerDot || context.integerDotAvailable else {
                throw ComputeBackendError.unavailable("\(chosen.name) has no integer dot products (VK_KHR_shader_integer_dot_product)")
            }
            context.integerDotProducts = integerDot
        }
        let dot = context.integerDotProducts ? "int-dot products for Q4_0/Q4_1/Q5_0/Q5_1/Q8_0" : "float products"
        return ResolvedBackend(provider: VulkanBackendProvider(context: context),
                               line: "backend: \(chosen.summary); GPU budget \(context.budgetBytes >> 20) MiB; \(dot); products of the weights that fit, "
                                   + "norms, RoPE, activations, K/V and attention run there, the remaining ops on the CPU")
    }
}

// devices: the compute devices this build can use (the CPU, and Vulkan devices where the loader offers any).

import ArgumentParser
import Foundation
import VulkanBackend

struct Devices: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The compute devices this build can use: the CPU, and each Vulkan device (or why there is none).")

    @Flag(help: "Also run each product kernel on each Vulkan device against the scalar reference, and measure its weight read speed (exit status 1 if a kernel is off).")
    var check = false

    func run() throws {
        print("cpu: \(ProcessInfo.processInfo.activeProcessorCount) cores, \(ProcessInfo.processInfo.physicalMemory >> 20) MiB")
        switch VulkanDevices.probe() {
        case .success(let devices):
            var failed = false
            for device in devices {
                print(device.summary)
                if check { failed = try checkKernels(device) || failed }
            }
            if failed { throw ExitCode(1) }
        case .failure(let unavailable):
            print("vulkan: none: \(unavailable.reason)")
        }
    }

    /// Prints one line per kernel and the read speed; true if a kernel is off.
    func checkKernels(_ device: VulkanDevice) throws -> Bool {
        do {
            let context = try VulkanContext(deviceIndex: device.index)
            let results = try context.checkKernels()
            for r in results {
                let name = r.type.description.padding(toLength: 7, withPad: " ", startingAt: 0)
                print("  \(name) \(r.passed ? "ok " : "OFF") " + String(format: "max relative error %.1e", r.relativeError))
            }
            print(String(format: "  product read speed %.1f GB/s (Q8_0, 64 MiB, one token)", try context.productReadBandwidth()))
            return results.contains { !$0.passed }
        } catch {
            print("  check failed: \(error)")
            return true
        }
    }
}

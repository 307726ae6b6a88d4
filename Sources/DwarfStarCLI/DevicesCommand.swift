// devices: the compute devices this build can use (the CPU, and Vulkan devices where the loader offers any).

import ArgumentParser
import Foundation
import VulkanBackend

struct Devices: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The compute devices this build can use: the CPU, and each Vulkan device (or why there is none).")

    func run() throws {
        print("cpu: \(ProcessInfo.processInfo.activeProcessorCount) cores, \(ProcessInfo.processInfo.physicalMemory >> 20) MiB")
        switch VulkanDevices.probe() {
        case .success(let devices):
            for device in devices { print(device.summary) }
        case .failure(let unavailable):
            print("vulkan: none: \(unavailable.reason)")
        }
    }
}

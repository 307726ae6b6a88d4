// Device selection for the Vulkan backend, on Mesa's lavapipe (a conforming Vulkan device that runs on
// the CPU; .ci/run installs Debian's mesa-vulkan-drivers and libvulkan-dev).

import Foundation
import Testing
import VulkanBackend

enum Lavapipe {
    /// lavapipe's ICD manifest is installed (Debian: mesa-vulkan-drivers).
    static let installed: Bool = {
        let directory = "/usr/share/vulkan/icd.d"
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return files.contains { $0.hasPrefix("lvp_icd") }
    }()
}

@Suite struct VulkanDeviceTests {
    @Test(.enabled(if: Lavapipe.installed, "needs Mesa's lavapipe (apt install mesa-vulkan-drivers libvulkan-dev)"))
    func lavapipeIsFoundWithItsCapabilities() throws {
        let devices = try VulkanDevices.probe().get()
        let lavapipe = try #require(devices.first { $0.driver == "llvmpipe" || $0.name.hasPrefix("llvmpipe") }, "devices: \(devices.map(\.summary))")
        #expect(lavapipe.kind == .cpu)
        #expect(lavapipe.apiVersion.hasPrefix("1."))
        #expect(lavapipe.subgroupSize >= 1 && lavapipe.maxWorkgroupInvocations >= 128 && lavapipe.maxSharedMemory >= 16 << 10)
        #expect(lavapipe.maxStorageBufferRange >= 1 << 27 && lavapipe.maxAllocation >= lavapipe.maxStorageBufferRange)
        #expect(lavapipe.unifiedMemory && lavapipe.deviceLocalBytes > 0)
        #expect(lavapipe.storage16Bit && lavapipe.float16)
        #expect(lavapipe.summary.hasPrefix("vulkan:\(lavapipe.index) llvmpipe"))
        #expect(devices.enumerated().allSatisfy { $0.offset == $0.element.index })
    }
}

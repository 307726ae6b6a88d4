// What several test modules share: reading a child process's output. Foundation's readDataToEndOfFile traps on
// EINTR, which a signal to another thread of the test process (a Vulkan driver's) can cause; this read retries.

import Foundation

public func readToEnd(_ handle: FileHandle) -> Data {
    var data = Data()
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(handle.fileDescriptor, $0.baseAddress, $0.count) }
        if n > 0 { data.append(contentsOf: buffer[0..<n]); continue }
        if n < 0 && errno == EINTR { continue }
        return data
    }
}

// File reads that bypass or release the page cache (streamed MoE experts, the disk-read probe).

import CKernels

public enum FileIO {
    /// A read-only descriptor that bypasses the page cache (O_DIRECT on Linux, F_NOCACHE on macOS), or
    /// −1 where the file system refuses it.
    public static func openDirectReadOnly(_ path: String) -> Int32 { ds_open_direct_readonly(path) }

    /// Tells the kernel the page cache may drop bytes [offset, offset + length) of `fd` (0 on success).
    @discardableResult
    public static func dropCached(_ fd: Int32, offset: Int, length: Int) -> Int32 {
        ds_drop_cached(fd, Int64(offset), Int64(length))
    }
}

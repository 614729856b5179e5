import Foundation

// Glibc's module map does not export <sys/xattr.h>; these are the C functions of getxattr(2), declared here.
@_silgen_name("lgetxattr")
private func c_lgetxattr(
    _ path: UnsafePointer<CChar>,
    _ name: UnsafePointer<CChar>,
    _ value: UnsafeMutableRawPointer?,
    _ size: Int
) -> Int

@_silgen_name("fgetxattr")
private func c_fgetxattr(
    _ fd: Int32,
    _ name: UnsafePointer<CChar>,
    _ value: UnsafeMutableRawPointer?,
    _ size: Int
) -> Int

/// The value of extended attribute `name` of `path` itself (a symlink is not followed), `getxattr(2)`;
/// nil when absent or unreadable. At most 64 KiB.
func extendedAttribute(path: String, _ name: String) -> Data? {
    var buf = [UInt8](repeating: 0, count: 65536)
    let n = buf.withUnsafeMutableBytes { c_lgetxattr(path, name, $0.baseAddress, $0.count) }
    return n > 0 ? Data(buf[0..<n]) : nil
}

/// The value of extended attribute `name` of an open descriptor, `fgetxattr(2)`; nil when absent.
func extendedAttribute(fd: Int32, _ name: String) -> Data? {
    var buf = [UInt8](repeating: 0, count: 65536)
    let n = buf.withUnsafeMutableBytes { c_fgetxattr(fd, name, $0.baseAddress, $0.count) }
    return n > 0 ? Data(buf[0..<n]) : nil
}

import Foundation

/// The root every host path is resolved under: `/` in production, a temporary directory in tests and the demo.
/// All reads and writes go through `path(_:)`; the real tools get `--prefix`/`--root` with `prefixArgument`.
public struct HostRoot: Sendable, Hashable {
    /// Absolute directory, without a trailing slash except for `/` itself.
    public let directory: String

    public init(_ directory: String) {
        var d = directory
        while d.count > 1 && d.hasSuffix("/") { d.removeLast() }
        self.directory = d
    }

    public static let system = HostRoot("/")

    /// True when this is the real root `/`.
    public var isSystem: Bool { directory == "/" }

    /// `root.path("/etc/passwd")` -> `<root>/etc/passwd`.
    public func path(_ hostPath: String) -> String {
        isSystem ? hostPath : directory + (hostPath.hasPrefix("/") ? hostPath : "/" + hostPath)
    }

    /// Reads a file under the root; nil when absent.
    public func read(_ hostPath: String) -> Data? {
        FileManager.default.contents(atPath: path(hostPath))
    }
}

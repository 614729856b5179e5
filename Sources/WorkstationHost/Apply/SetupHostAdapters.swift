import Foundation
import WorkstationCore

#if canImport(Glibc)
import Glibc
#endif

/// Root-owned system paths that are created only if absent (`/etc/skel/.claude` and its links).
public enum SystemFiles {
    /// `mkdir(2)` with `mode` (parents 0755); an existing directory is accepted as it is.
    /// - Throws: `FileWriteError` when the path exists as something else or mkdir fails.
    public static func createDirectory(_ fullPath: String, mode: mode_t) throws {
        let parent = (fullPath as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(
            atPath: parent,
            withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o755]
        )
        if mkdir(fullPath, mode) != 0 {
            let e = errno
            var st = stat()
            guard e == EEXIST, lstat(fullPath, &st) == 0, st.st_mode & S_IFMT == S_IFDIR else {
                throw FileWriteError(path: fullPath, operation: "mkdir", errno: e)
            }
            return
        }
        guard chmod(fullPath, mode) == 0 else { throw FileWriteError(path: fullPath, operation: "chmod", errno: errno) }
    }

    /// `symlink(2)` (parents 0755), which never replaces; the same link already there is accepted.
    /// - Throws: `FileWriteError` (EEXIST) when something else is at the path.
    public static func createSymlink(_ fullPath: String, target: String) throws {
        let parent = (fullPath as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(
            atPath: parent,
            withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o755]
        )
        if symlink(target, fullPath) != 0 {
            let e = errno
            if e == EEXIST, (try? FileManager.default.destinationOfSymbolicLink(atPath: fullPath)) == target { return }
            throw FileWriteError(path: fullPath, operation: "symlink", errno: e)
        }
    }
}

/// Adds one group entry to a directory's access ACL with `setfacl(1)` from Debian's `acl` package.
///
/// The directory is first opened by walking from the root with `O_NOFOLLOW` on every component, so a link swapped
/// in since observe is refused, and `setfacl` is handed `/proc/<pid>/fd/<n>`, the very directory checked. The entry
/// names the group by number (the root's `/etc/group`, not the host's NSS). Additive: without extended entries
/// `setfacl -m` computes the mask as the group bits plus the new entry, so no one else gains anything; with extended
/// entries the mask is widened by exactly the granted bits (`-n -m ...,m::...`).
public struct ACLAdapter {
    public let root: HostRoot
    public let runner: any CommandRunner

    public init(root: HostRoot, runner: any CommandRunner) {
        self.root = root
        self.runner = runner
    }

    /// - Parameters: `perms` like `--x` or `r-x`.
    /// - Throws: `ACLError` when the group is unknown or the path is not a plain directory path; `CommandError`
    ///   when setfacl fails.
    public func grant(path: String, group: String, perms: String) throws {
        guard let gid = AccountDatabase.group(root.read("/etc/group") ?? Data()).first(where: { $0.name == group })?.gid
        else {
            throw ACLError.noGroup(group)
        }
        let fd = try openNoFollow(path)
        defer { close(fd) }
        let bits = UInt8((perms.contains("r") ? 4 : 0) | (perms.contains("w") ? 2 : 0) | (perms.contains("x") ? 1 : 0))
        var spec = "g:\(gid):\(perms)"
        var args = ["setfacl"]
        if let acl = readACL(fd), let mask = acl.first(where: { $0.tag == .mask }) {
            spec += ",m::\(permsText(mask.perms | bits))"
            args.append("-n")
        }
        try runner.check(args + ["-m", spec, "/proc/\(getpid())/fd/\(fd)"])
    }

    func openNoFollow(_ path: String) throws -> Int32 {
        var fd = open(root.path("/"), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw ACLError.notADirectory(path, "cannot open the root") }
        for comp in path.split(separator: "/") {
            guard comp != "..", comp != "." else {
                close(fd)
                throw ACLError.notADirectory(path, "the path has . or ..")
            }
            let next = openat(fd, String(comp), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            let e = errno
            close(fd)
            guard next >= 0 else {
                throw ACLError.notADirectory(
                    path,
                    e == ELOOP || e == ENOTDIR
                        ? "'\(comp)' is now a symlink or not a directory (changed since observe); refused"
                        : String(cString: strerror(e))
                )
            }
            fd = next
        }
        return fd
    }

    func readACL(_ fd: Int32) -> [ACLEntry]? {
        extendedAttribute(fd: fd, "system.posix_acl_access").flatMap(ACLEntry.decode)
    }
}

public enum ACLError: Error, CustomStringConvertible {
    case noGroup(String)
    case notADirectory(String, String)
    public var description: String {
        switch self {
        case .noGroup(let g):
            "group \(g) does not exist under the root; create it first (apply or setup-host creates it)"
        case .notADirectory(let p, let why): "cannot set an ACL on \(p): \(why)"
        }
    }
}

/// Installs Debian packages with `apt-get(8)`: `apt-get install -y --no-install-recommends -- NAMES`, non-interactive.
/// Only on the real root: apt-get cannot install into a `--root` prefix.
public struct PackageAdapter {
    public let root: HostRoot
    public let runner: any CommandRunner

    public init(root: HostRoot, runner: any CommandRunner) {
        self.root = root
        self.runner = runner
    }

    /// - Throws: `PackageError.notSystemRoot` under a prefix; `CommandError` when apt-get fails.
    public func install(_ names: [String]) throws {
        guard root.isSystem else { throw PackageError.notSystemRoot(root.directory) }
        try runner.check(
            ["apt-get", "install", "-y", "--no-install-recommends", "--"] + names,
            environment: ["DEBIAN_FRONTEND": "noninteractive"]
        )
    }

    /// Installed package names from a dpkg status file (`dpkg(1)`, `deb-control(5)` stanzas): a stanza counts when
    /// its `Status:` field ends in `installed` (so `deinstall ok config-files` does not).
    public static func installed(status data: Data) -> Set<String> {
        var out = Set<String>()
        for stanza in String(decoding: data, as: UTF8.self).components(separatedBy: "\n\n") {
            var name: String?
            var ok = false
            for line in stanza.split(separator: "\n") {
                if line.hasPrefix("Package:") { name = line.dropFirst(8).trimmingCharacters(in: .whitespaces) }
                if line.hasPrefix("Status:") { ok = line.split(separator: " ").last == "installed" }
            }
            if let name, ok { out.insert(name) }
        }
        return out
    }
}

public enum PackageError: Error, CustomStringConvertible {
    case notSystemRoot(String)
    public var description: String {
        switch self {
        case .notSystemRoot(let d):
            "apt-get cannot install into the root \(d); run setup-host --install-packages on the host itself"
        }
    }
}

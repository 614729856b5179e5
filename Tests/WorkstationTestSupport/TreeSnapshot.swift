import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Every entry under a directory as `lstat(2)` and the bytes see it: kind, permission bits, owner, content (regular
/// files) and link target (symlinks); links are never followed. Two snapshots are equal exactly when nothing under
/// the directory was created, removed, written, renamed, chowned or chmodded: the proof that a refused or read-only
/// run changed nothing. Times are left out (reading a file changes its atime).
public struct TreeSnapshot: Equatable, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable { case directory, file, link, other }

    public struct Entry: Equatable, Sendable, CustomStringConvertible {
        public var kind: Kind
        /// Permission bits with setuid, setgid and sticky (`st_mode & 07777`).
        public var mode: UInt32
        public var uid: UInt32
        public var gid: UInt32
        /// A regular file's bytes.
        public var content: Data?
        /// A symlink's target as written.
        public var linkTarget: String?

        public var description: String {
            "\(kind.rawValue) mode \(String(mode, radix: 8)) owner \(uid):\(gid)"
                + (linkTarget.map { " -> \($0)" } ?? "") + (content.map { " \($0.count) bytes" } ?? "")
        }
    }

    /// Path relative to the directory, without a leading slash (`etc/passwd`; `""` is the directory itself) ->
    /// entry.
    public var entries: [String: Entry]

    /// Walks `directory`.
    /// - Parameter excluding: subtrees to leave out, as paths relative to the directory, with or without a leading
    ///   slash (`/var/lib/workstation` and `var/lib/workstation` are the same).
    public init(_ directory: String, excluding: [String] = []) {
        let skip = Set(excluding.map { $0.hasPrefix("/") ? String($0.dropFirst()) : $0 })
        entries = [:]
        walk(directory, "", skip)
    }

    private init(entries: [String: Entry]) { self.entries = entries }

    private mutating func walk(_ base: String, _ rel: String, _ skip: Set<String>) {
        if skip.contains(rel) { return }
        let full = rel.isEmpty ? base : base + "/" + rel
        var st = stat()
        guard lstat(full, &st) == 0 else { return }
        let type = st.st_mode & S_IFMT
        var e = Entry(kind: .other, mode: UInt32(st.st_mode & 0o7777), uid: st.st_uid, gid: st.st_gid)
        switch type {
        case S_IFREG:
            e.kind = .file
            e.content = FileManager.default.contents(atPath: full) ?? Data()
        case S_IFLNK:
            e.kind = .link
            e.linkTarget = try? FileManager.default.destinationOfSymbolicLink(atPath: full)
        case S_IFDIR:
            e.kind = .directory
        default: break
        }
        entries[rel] = e
        if type == S_IFDIR {
            for name in ((try? FileManager.default.contentsOfDirectory(atPath: full)) ?? []).sorted() {
                walk(base, rel.isEmpty ? name : rel + "/" + name, skip)
            }
        }
    }

    /// The entry at `path` (relative, no leading slash).
    public subscript(_ path: String) -> Entry? { entries[path] }

    /// True when nothing is under the directory (the directory itself aside).
    public var isEmpty: Bool { entries.keys.allSatisfy(\.isEmpty) }

    /// The relative paths of every entry but the directory itself, sorted.
    public var paths: [String] { entries.keys.filter { !$0.isEmpty }.sorted() }

    /// Only the entries at `path` and below it (relative, no leading slash).
    public func under(_ path: String) -> TreeSnapshot {
        TreeSnapshot(entries: entries.filter { $0.key == path || $0.key.hasPrefix(path + "/") })
    }

    /// The entries but those at and below each of `paths` (relative, no leading slash).
    public func excluding(_ paths: [String]) -> TreeSnapshot {
        TreeSnapshot(
            entries: entries.filter { entry in !paths.contains { entry.key == $0 || entry.key.hasPrefix($0 + "/") } }
        )
    }

    /// The paths of the regular files holding `needle` and of the links whose target holds it, sorted.
    public func paths(containing needle: Data) -> [String] {
        entries.filter { _, e in
            e.content?.range(of: needle) != nil || e.linkTarget.map { Data($0.utf8).range(of: needle) != nil } == true
        }
        .map(\.key).sorted()
    }

    /// The relative paths added, removed or changed between this snapshot and `other`, sorted.
    public func changedPaths(to other: TreeSnapshot) -> [String] {
        Set(entries.keys).union(other.entries.keys).filter { entries[$0] != other.entries[$0] }.sorted()
    }

    /// What differs from `other`, one line per path (`added /p: ...`, `removed /p: ...`, `changed /p: a => b`),
    /// sorted by path; empty when equal.
    public func differences(to other: TreeSnapshot) -> [String] {
        var out: [String] = []
        for k in Set(entries.keys).union(other.entries.keys).sorted() {
            switch (entries[k], other.entries[k]) {
            case (nil, let b?): out.append("added /\(k): \(b)")
            case (let a?, nil): out.append("removed /\(k): \(a)")
            case (let a?, let b?) where a != b:
                out.append("changed /\(k): \(a) => \(b)" + (a.description == b.description ? " (other bytes)" : ""))
            default: break
            }
        }
        return out
    }

    /// One line per entry, sorted by path (what a failed `#expect(a == b)` prints).
    public var description: String {
        entries.keys.sorted().map { "/\($0): \(entries[$0]!)" }.joined(separator: "\n")
    }
}

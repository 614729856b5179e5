import Foundation

/// What `lstat(2)` says about a path, plus the link target or (small, regular) file content.
public struct PathState: Sendable, Hashable, Codable {
    public enum Kind: String, Sendable, Codable { case absent, file, directory, symlink, other }
    public var kind: Kind
    /// Permission bits, e.g. `0o700`.
    public var mode: UInt32
    public var uid: Int
    public var gid: Int
    /// For a symlink, its target as written.
    public var linkTarget: String?
    /// For a regular file read by request, its bytes.
    public var content: Data?
    /// Hard links to a regular file (`st_nlink`); root never tightens or rewrites a file with more than one.
    public var linkCount: Int = 1
    /// True when the path could not be reached because a directory on the way is a symlink or not a directory
    /// (kind `.other`): workstation never follows it, so anything planned there is a conflict.
    public var blocked: Bool = false

    public init(
        kind: Kind,
        mode: UInt32 = 0,
        uid: Int = 0,
        gid: Int = 0,
        linkTarget: String? = nil,
        content: Data? = nil
    ) {
        self.kind = kind
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.linkTarget = linkTarget
        self.content = content
    }

    public static let absent = PathState(kind: .absent)
}

/// Path states by host path: a dictionary split into `PathTable.shardCount` shards by a hash of the path, so that
/// observe's readers fill the shards in parallel (`fill(_:)`) instead of merging a large host's paths on one thread.
/// Reads and writes go through `subscript`, as on a dictionary; two tables are equal when they hold the same paths.
/// Paths are told apart by their bytes, as the kernel tells names apart: two Unicode spellings of one name (NFC and
/// NFD, which String's `==` takes as equal) are two entries, as they are two files.
public struct PathTable: Sendable, Hashable, ExpressibleByDictionaryLiteral {
    public static let shardCount = 8
    private var shards: [[PathKey: PathState]] = Array(repeating: [:], count: PathTable.shardCount)

    public init(dictionaryLiteral elements: (String, PathState)...) {
        for (k, v) in elements { self[k] = v }
    }

    /// The shard of `path`: FNV-1a over its UTF-8 bytes, modulo `shardCount`.
    public static func shard(of path: String) -> Int { PathKey(path).shard }

    public subscript(path: String) -> PathState? {
        get {
            let key = PathKey(path)
            return shards[key.shard][key]
        }
        set {
            let key = PathKey(path)
            shards[key.shard][key] = newValue
        }
    }

    public var count: Int { shards.reduce(0) { $0 + $1.count } }

    /// Room for `n` paths in all, spread over the shards.
    public mutating func reserveCapacity(_ n: Int) {
        for i in shards.indices { shards[i].reserveCapacity(n / Self.shardCount + 1) }
    }

    /// Adds `entries`; a path already present keeps what `combine(old, new)` returns.
    public mutating func merge(
        _ entries: [(String, PathState)],
        uniquingKeysWith combine: (PathState, PathState) -> PathState
    ) {
        for (k, v) in entries {
            let key = PathKey(k)
            shards[key.shard].merge(CollectionOfOne((key, v)), uniquingKeysWith: combine)
        }
    }

    /// Adds entries already sorted by shard (`parts[worker][shard]`, each entry's shard as `shard(of:)` gives it),
    /// one thread per shard; a path present twice keeps what `combine(old, new)` returns, in the order of `parts`.
    public mutating func fill(
        _ parts: [[[(String, PathState)]]],
        uniquingKeysWith combine: @escaping @Sendable (PathState, PathState) -> PathState
    ) {
        // Each shard grows where it lies: `parallelUpdate` hands every iteration its own element, referenced nowhere
        // else, so no shard is copied.
        parallelUpdate(&shards) { i, shard in
            shard.reserveCapacity(shard.count + parts.reduce(0) { $0 + $1[i].count })
            for part in parts {
                shard.merge(
                    part[i].lazy.map { entry in
                        let key = PathKey(entry.0)
                        assert(key.shard == i, "\(entry.0) handed to shard \(i), belongs in \(key.shard)")
                        return (key, entry.1)
                    },
                    uniquingKeysWith: combine
                )
            }
        }
    }
}

/// A path as a dictionary key, told apart from others by its UTF-8 bytes (`memcmp`), not by Unicode canonical
/// equivalence as String is: the kernel compares names by byte. Its FNV-1a hash over those bytes, taken when the key
/// is made, picks the shard and is what a dictionary hashes (the paths are workstation's own, not chosen to collide).
public struct PathKey: Hashable, Sendable {
    public let path: String
    let fnv: UInt32

    public init(_ path: String) {
        self.path = path
        fnv = HostPath.withBytes(of: path) { bytes in
            var h: UInt32 = 2_166_136_261
            for b in bytes { h = (h ^ UInt32(b)) &* 16_777_619 }
            return h
        }
    }

    var shard: Int { Int(fnv % UInt32(PathTable.shardCount)) }

    public static func == (a: PathKey, b: PathKey) -> Bool { a.fnv == b.fnv && HostPath.sameBytes(a.path, b.path) }

    public func hash(into hasher: inout Hasher) { hasher.combine(fnv) }
}

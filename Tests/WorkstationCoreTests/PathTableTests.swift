import Foundation
import Testing

@testable import WorkstationCore

/// `PathTable`: the snapshot's path map, split in shards that observe fills in parallel.
@Suite struct PathTableTests {
    static func state(_ i: Int, content: Bool = false) -> PathState {
        PathState(
            kind: content ? .file : .directory,
            mode: 0o700,
            uid: 1000 + i,
            gid: 1000 + i,
            content: content ? Data("v\(i)".utf8) : nil
        )
    }

    @Test func readsWhatWasWrittenAndForgetsWhatWasRemoved() {
        var t: PathTable = ["/home/alice": Self.state(1)]
        t["/home/bob"] = Self.state(2)
        #expect(t["/home/alice"] == Self.state(1))
        #expect(t["/home/bob"] == Self.state(2))
        #expect(t["/home/carol"] == nil)
        #expect(t.count == 2)
        t["/home/alice"] = nil
        #expect(t["/home/alice"] == nil)
        #expect(t.count == 1)
    }

    @Test func shardOfAPathIsStableAndInRange() {
        #expect(PathTable.shard(of: "/home/alice") == PathTable.shard(of: String("/home/alice".reversed().reversed())))
        // FNV-1a of the bytes: the same in every process (no hash seed).
        #expect(PathTable.shard(of: "/home/alice") == Int(UInt32(0x9B3A_5B7A) % UInt32(PathTable.shardCount)))
        var used = Set<Int>()
        for i in 0..<200 {
            let s = PathTable.shard(of: "/home/u\(i)/.claude/skills")
            #expect((0..<PathTable.shardCount).contains(s))
            used.insert(s)
        }
        #expect(used.count == PathTable.shardCount, "200 paths should reach every shard, reached \(used.sorted())")
    }

    /// The parallel fill equals inserting the same parts one by one with `merge`, including the rule for a path
    /// observed twice (the observation with content wins; else the later one), and equal tables compare equal.
    @Test func parallelFillEqualsSequentialMerge() {
        let keep: @Sendable (PathState, PathState) -> PathState = { old, new in
            new.content != nil || old.content == nil ? new : old
        }
        // Three workers; paths 0..<300, each worker reading overlapping ranges, some with content.
        var flat: [[(String, PathState)]] = []
        for w in 0..<3 {
            var part: [(String, PathState)] = []
            for i in stride(from: w * 80, to: w * 80 + 140, by: 1) {
                part.append(("/home/u\(i % 300)/f", Self.state(i + w * 1000, content: (i + w) % 3 == 0)))
            }
            flat.append(part)
        }
        var sequential: PathTable = ["/etc/t3-serve/dispatch.json": Self.state(9, content: true)]
        var parallel = sequential
        for part in flat { sequential.merge(part, uniquingKeysWith: keep) }
        let sharded = flat.map { part in
            var shards = Array(repeating: [(String, PathState)](), count: PathTable.shardCount)
            for (p, st) in part { shards[PathTable.shard(of: p)].append((p, st)) }
            return shards
        }
        parallel.fill(sharded, uniquingKeysWith: keep)
        #expect(parallel == sequential)
        #expect(parallel.count == 301)
        // A path read by two workers, the second without content: the first one's content stays.
        let twice = "/home/u81/f"
        #expect(parallel[twice]?.content != nil)
        #expect(parallel["/etc/t3-serve/dispatch.json"] == Self.state(9, content: true))
    }

    /// Paths are told apart by bytes, as the kernel tells names apart: the NFD spelling of a stored NFC path is
    /// another path (String's == takes them as equal), whichever shard either lands in.
    @Test func twoSpellingsOfOneNameAreTwoPaths() {
        var table: PathTable = [:]
        let bases = ["/home/caf", "/home/ren", "/home/jos", "/srv/a", "/srv/b", "/srv/c", "/srv/d", "/srv/e"]
        for (i, base) in bases.enumerated() { table[base + "\u{E9}"] = Self.state(i) }
        for (i, base) in bases.enumerated() {
            #expect(base + "e\u{301}" == base + "\u{E9}")  // equal as Strings
            #expect(table[base + "e\u{301}"] == nil, "\(base)e\u{301}")
            #expect(table[base + "\u{E9}"] == Self.state(i))
        }
        for (i, base) in bases.enumerated() { table[base + "e\u{301}"] = Self.state(i + 10) }
        #expect(table.count == 2 * bases.count)
        for (i, base) in bases.enumerated() { #expect(table[base + "e\u{301}"] == Self.state(i + 10)) }
    }
}

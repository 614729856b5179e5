import Foundation
import Testing

@testable import WorkstationCore

/// Paths are joined, compared and split by byte, as the kernel treats them: not by Swift's Characters (a combining
/// mark after `/` fuses with it) nor by Unicode canonical equivalence (two spellings of é are two directories).
@Suite struct PathBytesTests {
    @Test(arguments: [
        (["/home/alice", ".claude"], "/home/alice/.claude"),
        (["/home/alice/", "/.claude"], "/home/alice/.claude"),
        (["/srv/base", "skills", "x"], "/srv/base/skills/x"),
        (["/home/alice", "\u{301}x"], "/home/alice/\u{301}x"),
    ])
    func joinsWithOneSlash(_ parts: [String], _ expected: String) {
        let joined = parts.dropFirst().reduce(parts[0]) { joinPath($0, $1) }
        #expect(Array(joined.utf8) == Array(expected.utf8))
    }

    @Test func restAfterAPrefixComparesBytes() {
        #expect(pathRest("/home/alice/.claude", after: "/home/alice/") == ".claude")
        #expect(pathRest("/home/alice", after: "/home/alice") == "")
        #expect(pathRest("/home/bob/x", after: "/home/alice/") == nil)
        // NFD "e\u{301}" and NFC "\u{e9}" are equal Strings, but different names on disk.
        let nfd = "/home/e\u{301}/x"
        let nfc = "/home/\u{e9}/"
        #expect(nfd.hasPrefix(nfc))
        #expect(pathRest(nfd, after: nfc) == nil)
    }

    @Test(arguments: [
        ("/home/alice", "/home", true),
        ("/home/alice", "/home/", true),
        ("/home/alice/x", "/home", false),
        ("/home", "/home", false),
        ("/home/..", "/home", false),
        ("/homes/alice", "/home", false),
        ("/home/\u{301}x", "/home", true),  // one name, which begins with a combining mark
        // U+0600 fuses with the '/' after it into one Character: only the '/' is dropped from the parent.
        ("/home/alice", "/home\u{600}/", false),
        ("/home\u{600}/alice", "/home\u{600}/", true),
    ])
    func directChildIsOneNameBelow(_ path: String, _ parent: String, _ expected: Bool) {
        #expect(isDirectChild(path, of: parent) == expected)
    }

    /// The secret-file guard looks up exactly the paths observe was told to watch, even for an odd home spelling.
    @Test func secretFileLookupsAreWatchedPaths() {
        let planner = Planner(settings: Settings())
        let u = DesiredUser(
            entry: RosterEntry(osUser: "alice", authentikUser: "alice", k8sUser: "alice", tier: .powerUser),
            uid: 1001,
            home: "/home/alice//",
            groups: ["workstation"],
            ports: [:],
            accountExists: true
        )
        var o = HostSnapshot()
        // ~/.claude and ~/.kube are directories, ~/.claude/settings.json is group-writable, the rest is absent.
        for w in planner.secretFileWatchedPaths(u) {
            if w.path.hasSuffix("/settings.json") {
                o.paths[w.path] = PathState(kind: .file, mode: 0o664, uid: 1001)
            } else if w.path.hasSuffix("/.claude") || w.path.hasSuffix("/.kube") {
                o.paths[w.path] = PathState(kind: .directory, mode: 0o700, uid: 1001)
            }
        }
        #expect(planner.secretFileChanges(u, o).map(\.kind) == [.update])
    }

    /// Every watched secret-file path marked: directories on the way, the files themselves group-writable.
    static func observedSecretFiles(_ planner: Planner, _ u: DesiredUser) -> HostSnapshot {
        var o = HostSnapshot()
        let watched = planner.secretFileWatchedPaths(u).map(\.path)
        for p in watched {
            let isDir = watched.contains { $0 != p && pathRest($0, after: p + "/") != nil }
            o.paths[p] =
                isDir
                ? PathState(kind: .directory, mode: 0o700, uid: 1001) : PathState(kind: .file, mode: 0o664, uid: 1001)
        }
        return o
    }

    /// `secret_files` may spell a path with extra slashes; it is looked up as it is watched, and tightened.
    @Test func aSecretFileSpelledWithExtraSlashesIsStillTightened() throws {
        let settings = try Settings.parse(
            Data("setup_host:\n  secret_files: [\".kube//config\", \".vault-token/\"]\n".utf8),
            file: "workstation.yaml"
        )
        let planner = Planner(settings: settings)
        let u = DesiredUser(
            entry: RosterEntry(osUser: "alice", authentikUser: "alice", k8sUser: "alice", tier: .powerUser),
            uid: 1001,
            home: "/home/alice",
            groups: ["workstation"],
            ports: [:],
            accountExists: true
        )
        #expect(planner.secretFileChanges(u, Self.observedSecretFiles(planner, u)).map(\.kind) == [.update, .update])
    }

    /// A home whose trailing '/' fuses with a mark before it: watched and looked up alike.
    @Test func secretFileLookupsAreWatchedPathsAfterAPrependMark() {
        let planner = Planner(settings: Settings())
        let u = DesiredUser(
            entry: RosterEntry(osUser: "alice", authentikUser: "alice", k8sUser: "alice", tier: .powerUser),
            uid: 1001,
            home: "/home/alice\u{600}/",
            groups: ["workstation"],
            ports: [:],
            accountExists: true
        )
        #expect(
            planner.secretFileChanges(u, Self.observedSecretFiles(planner, u)).map(\.kind) == [
                .update, .update, .update, .update, .update,
            ]
        )
    }
}

import Foundation
import Testing
import WorkstationCore
@testable import WorkstationHost

#if canImport(Glibc)
    import Glibc
#endif

/// Host state a user or a broken machine can plant, read safely.
@Suite struct HostileHostStateTests {
    func tempRoot() throws -> HostRoot {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ws-hostile-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir + "/home/alice", withIntermediateDirectories: true)
        return HostRoot(dir)
    }

    @Test func theHomeWriterRefusesHomesThatAreNotHomes() throws {
        let root = try tempRoot()
        defer { try? FileManager.default.removeItem(atPath: root.directory) }
        let writer = HomeWriter(root: root)
        for home in ["/", "/etc", "/home/..", "relative/alice"] {
            #expect(throws: HomeWriteError.self) {
                try writer.secureHome(home: home, owner: .init(uid: 1005, gid: 1005), chown: true, mode: 0o700)
            }
        }
        var st = stat()
        #expect(stat("/", &st) == 0 && st.st_uid == 0, "the machine's / is untouched")
    }

    @Test func aStateFileThatIsNotARegularFileIsAnError() throws {
        let root = try tempRoot()
        defer { try? FileManager.default.removeItem(atPath: root.directory) }
        try FileManager.default.createDirectory(atPath: root.path("/var/lib/workstation"), withIntermediateDirectories: true)
        #expect(mkfifo(root.path("/var/lib/workstation/state.json"), 0o600) == 0)
        let error = #expect(throws: ObserveError.self) { try StateStore(root: root, settings: Settings()).load() }
        #expect(error?.description.contains("not a regular file") == true)
    }

    @Test func aPathBehindALinkInAHomeIsBlockedNotAbsent() throws {
        let root = try tempRoot()
        defer { try? FileManager.default.removeItem(atPath: root.directory) }
        try FileManager.default.createDirectory(atPath: root.path("/outside/bin"), withIntermediateDirectories: true)
        #expect(symlink(root.path("/outside"), root.path("/home/alice/.local")) == 0)
        let st = Observer(root: root, settings: Settings()).homePathState(home: "/home/alice", relative: ".local/bin/start-agent")
        #expect(st.kind == .other && st.blocked)
        #expect(Observer(root: root, settings: Settings()).homePathState(home: "/home/alice", relative: ".missing/x").kind == .absent)
    }
}

@Suite struct EnclosingHomeTests {
    @Test(arguments: [
        ("/home/alice/.claude/settings.json", "/home/alice"),
        ("/home/alice/x", "/home/alice"),
        ("/home/alice", nil),  // the home itself is not below it
        ("/home/alicex/.bashrc", nil),  // a name that only starts like a home
        ("/srv/team/bob/notes", "/srv/team/bob"),  // the longest enclosing home wins
        ("/srv/team/other", "/srv/team"),
        ("/etc/passwd", nil),
    ] as [(String, String?)])
    func pathsAreMatchedToTheLongestHomeAbove(_ path: String, _ expected: String?) {
        let homes: Set<String> = ["/home/alice", "/srv/team", "/srv/team/bob"]
        #expect(Observer.enclosingHome(of: path, in: homes) == expected)
    }
}

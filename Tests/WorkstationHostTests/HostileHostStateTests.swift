import Foundation
import Testing
import WorkstationCore
import WorkstationTestSupport

@testable import WorkstationHost

#if canImport(Glibc)
import Glibc
#endif

/// Host state a user or a broken machine can plant, read safely.
@Suite struct HostileHostStateTests {
    /// A temp root holding an empty `/home/alice`.
    func tempRoot() throws -> TempRoot {
        let temp = try TempRoot("hostile")
        try temp.createDirectory("/home/alice")
        return temp
    }

    @Test func theHomeWriterRefusesHomesThatAreNotHomes() throws {
        let temp = try tempRoot()
        let root = HostRoot(temp.path)
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
        let temp = try tempRoot()
        let root = HostRoot(temp.path)
        try FileManager.default.createDirectory(
            atPath: root.path("/var/lib/workstation"),
            withIntermediateDirectories: true
        )
        #expect(mkfifo(root.path("/var/lib/workstation/state.json"), 0o600) == 0)
        let error = #expect(throws: ObserveError.self) { try StateStore(root: root, settings: Settings()).load() }
        #expect(error?.description.contains("not a regular file") == true)
    }

    @Test func aPathBehindALinkInAHomeIsBlockedNotAbsent() throws {
        let temp = try tempRoot()
        let root = HostRoot(temp.path)
        try FileManager.default.createDirectory(atPath: root.path("/outside/bin"), withIntermediateDirectories: true)
        #expect(symlink(root.path("/outside"), root.path("/home/alice/.local")) == 0)
        let st = Observer(root: root, settings: Settings()).homePathState(
            home: "/home/alice",
            relative: ".local/bin/start-agent"
        )
        #expect(st.kind == .other && st.blocked)
        #expect(
            Observer(root: root, settings: Settings()).homePathState(home: "/home/alice", relative: ".missing/x").kind
                == .absent
        )
    }
}

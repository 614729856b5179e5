import Foundation
import Testing
import WorkstationTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// The archive stage through the binary: nothing of the person's left in /etc/systemd, and the uid it retires
/// never handed out again, even when state.json is lost.
@Suite(.serialized) struct ArchiveEndToEndTests {
    /// The archive removes every file apply wrote for the person under /etc/systemd (unit and slice drop-ins) and
    /// the drop-in directories they leave empty; a directory holding someone else's file stays.
    @Test(arguments: [false, true])
    func archiveLeavesNoDropInsOrEmptyUnitDirectories(foreignFileInDropInDirectory: Bool) throws {
        let h = try LifecycleHost()
        let uid = try #require(h.uid("alice"))
        let unitDir = "/etc/systemd/system/t3-serve@alice.service.d"
        let sliceDir = "/etc/systemd/system/user-\(uid).slice.d"
        // as apply writes it with budgets
        try h.root.write(sliceDir + "/50-workstation.conf", "[Slice]\nMemoryMax=4G\n")
        if foreignFileInDropInDirectory { try h.root.write(unitDir + "/10-local.conf", "[Service]\nNice=5\n") }
        try h.setRoster(without: "alice")
        #expect(try h.run(["apply"]).status == 0)
        for stage in [["cut"], ["revoke"], ["archive", "--confirm", "alice"]] {
            let r = try h.run(["offboard", "alice", "--stage"] + stage)
            #expect(r.status == 0, "\(stage): \(r.stderr)")
        }
        var st = stat()
        #expect(lstat(h.root.file(unitDir + "/50-workstation.conf"), &st) != 0)
        #expect(lstat(h.root.file(sliceDir), &st) != 0, "the slice drop-in and its directory are gone")
        #expect((lstat(h.root.file(unitDir), &st) == 0) == foreignFileInDropInDirectory)
        if foreignFileInDropInDirectory { #expect(h.root.read(unitDir + "/10-local.conf") == "[Service]\nNice=5\n") }
        #expect(h.root.read("/etc/systemd/system/user-\(uid).slice.d/50-workstation.conf") == nil)
    }

    enum Loss: String, CaseIterable { case deleted, emptied, emptyObject }

    /// After an archive, state.json is lost (deleted, truncated to nothing is refused as unreadable so it is
    /// replaced, or replaced by `{}`): a new person still never gets the retired uid, recovered from the archive.
    @Test(arguments: Loss.allCases)
    func theRetirementOutlivesTheStateFile(loss: Loss) throws {
        let h = try LifecycleHost()
        let uid = try #require(h.uid("alice"))
        try h.setRoster(without: "alice")
        #expect(try h.run(["apply"]).status == 0)
        for stage in [["cut"], ["revoke"], ["archive", "--confirm", "alice"]] {
            #expect(try h.run(["offboard", "alice", "--stage"] + stage).status == 0)
        }
        // userdel may keep the private group; drop it, so only the retirement guards the uid.
        let groups =
            (h.root.read("/etc/group") ?? "").split(separator: "\n").filter { !$0.contains(":\(uid):") }.joined(
                separator: "\n"
            ) + "\n"
        try h.root.write("/etc/group", groups)
        let state = h.root.file("/var/lib/workstation/state.json")
        switch loss {
        case .deleted: unlink(state)
        case .emptied, .emptyObject:
            try (loss == .emptied ? "{\"version\": 1}\n" : "{}\n").write(
                toFile: state,
                atomically: true,
                encoding: .utf8
            )
        }
        unlink(h.root.file("/var/lib/workstation/state.log"))
        try
            (LifecycleHost.fullRoster.replacingOccurrences(
                of:
                    "  alice: { authentik_user: alice.smith, k8s_user: alice, tier: power-user, email: alice@example.org }\n",
                with: ""
            )
            + "  dave: { authentik_user: dave99, k8s_user: dave99, tier: power-user }\n").write(
                toFile: h.roster,
                atomically: true,
                encoding: .utf8
            )
        let r = try h.run(["apply"])
        #expect(r.status == 0, "\(r.stderr)")
        let dave = try #require(h.uid("dave"))
        #expect(dave != uid, "dave got the retired uid \(uid)")
        #expect((try h.state()["retired_uids"] as? [Int])?.contains(uid) == true, "the retirement is on record again")
    }
}

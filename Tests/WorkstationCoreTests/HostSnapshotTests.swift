import Foundation
import Testing

@testable import WorkstationCore

/// The snapshot's hashed lookups (account, group, membership) stay in step with edits of passwd and groups.
@Suite struct HostSnapshotTests {
    @Test func snapshotLookupsFollowEdits() {
        var snap = HostSnapshot()
        snap.passwd = [PasswdEntry(name: "a", uid: 1000, gid: 1000, home: "/home/a", shell: "/bin/sh")]
        snap.passwd.append(PasswdEntry(name: "b", uid: 1001, gid: 1001, home: "/home/b", shell: "/bin/sh"))
        snap.passwd.append(PasswdEntry(name: "a", uid: 1002, gid: 1002, home: "/home/a2", shell: "/bin/sh"))
        #expect(snap.account("b")?.uid == 1001 && snap.account("a")?.uid == 1000 && snap.account("c") == nil)
        snap.groups = [GroupEntry(name: "sudo", gid: 27, members: ["a"])]
        snap.groups[0].members.append("b")
        #expect(snap.isMember("b", of: "sudo") && !snap.isMember("c", of: "sudo") && !snap.isMember("a", of: "nogroup"))
    }
}

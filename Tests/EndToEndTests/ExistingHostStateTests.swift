import Foundation
import Testing
import WorkstationCore
import WorkstationHost
import WorkstationTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Host state that existed before workstation: it survives, or is taken over only as the safety classes allow.
@Suite(.serialized) struct ExistingHostStateTests {
    func tool(_ name: String, prefix root: TempRoot, _ args: [String]) throws {
        let r = try TestProcess.accountTool(name, prefix: root.path, args)
        try #require(r.status == 0, "\(name) \(args.joined(separator: " ")): \(r.stderr)")
    }

    func members(_ root: TempRoot, _ group: String) -> [String] {
        AccountDatabase.group(Data((root.read("/etc/group") ?? "").utf8)).first { $0.name == group }?.members ?? []
    }

    func apply(_ root: TempRoot, _ roster: String, _ inputs: TempRoot) throws -> ProcessOutput {
        try inputs.write("/r.yaml", roster)
        return try CLI.run([
            "apply", "--roster", inputs.file("/r.yaml"), "--settings", Fixture.settingsPath, "--root", root.path,
        ])
    }

    /// Hand-made memberships (of a managed user, and of an unmanaged account in a managed group) survive applies,
    /// including one that no longer asks for a group workstation added.
    @Test func handMadeGroupMembershipsSurvive() throws {
        let root = try TempRoot()
        let inputs = try TempRoot()
        try Fixture.seed(root)
        try tool("groupadd", prefix: root, ["devs"])
        try tool("groupadd", prefix: root, ["--system", "workstation"])
        try tool("useradd", prefix: root, ["-m", "-G", "users,audio", "alice"])
        try tool("usermod", prefix: root, ["-aG", "devs", "alice"])
        try tool("useradd", prefix: root, ["-m", "-G", "workstation,devs", "erin"])  // unmanaged, in the managed group
        let first = try apply(
            root,
            "users:\n  alice: { authentik_user: alice, k8s_user: alice, tier: power-user, groups: [ops] }\n",
            inputs
        )
        #expect(first.status == 0, "\(first.stderr)")
        for g in ["users", "audio", "devs", "workstation", "workstation-power-user", "ops"] {
            #expect(members(root, g).contains("alice"), "alice lost or lacks \(g)")
        }
        #expect(
            members(root, "workstation").contains("erin") && members(root, "devs").contains("erin"),
            "erin's memberships changed"
        )
        // The roster stops asking for ops: the membership stays (removing it is a revoke, never apply).
        let second = try apply(
            root,
            "users:\n  alice: { authentik_user: alice, k8s_user: alice, tier: power-user }\n",
            inputs
        )
        #expect(second.status == 0, "\(second.stderr)")
        #expect(members(root, "ops").contains("alice"))
        #expect(members(root, "users").contains("alice") && members(root, "devs").contains("alice"))
    }

    /// A root-owned 0755 home (with and without an account) ends owned by the user and 0700; what is inside it is
    /// not chowned, and a link inside pointing at a root file is not followed.
    @Test func rootOwnedOpenHomeIsTakenOverWithoutRecursion() throws {
        let root = try TempRoot()
        let inputs = try TempRoot()
        try Fixture.seed(root)
        try tool("useradd", prefix: root, ["dave"])  // an account without its home created
        for name in ["dave", "frank"] {  // frank has no account yet: useradd -m meets an existing home
            let home = root.file("/home/\(name)")
            try FileManager.default.createDirectory(atPath: home + "/projects", withIntermediateDirectories: true)
            try "restored\n".write(toFile: home + "/projects/README", atomically: false, encoding: .utf8)
            try FileManager.default.createSymbolicLink(
                atPath: home + "/shadow-link",
                withDestinationPath: root.file("/etc/shadow")
            )
            try FileManager.default.createSymbolicLink(
                atPath: home + "/etc-link",
                withDestinationPath: root.file("/etc")
            )
            chmod(home, 0o755)
            chown(home, 0, 0)
        }
        var shadowBefore = stat()
        lstat(root.file("/etc/shadow"), &shadowBefore)
        var etcBefore = stat()
        lstat(root.file("/etc"), &etcBefore)
        let r = try apply(
            root,
            """
            users:
              dave: { authentik_user: dave, k8s_user: dave, tier: power-user }
              frank: { authentik_user: frank, k8s_user: frank, tier: power-user }

            """,
            inputs
        )
        #expect(r.status == 0, "\(r.stderr)")
        let passwd = AccountDatabase.passwd(Data((root.read("/etc/passwd") ?? "").utf8))
        for name in ["dave", "frank"] {
            let uid = try #require(passwd.first { $0.name == name }?.uid)
            let home = root.file("/home/\(name)")
            var st = stat()
            lstat(home, &st)
            #expect(
                Int(st.st_uid) == uid && st.st_mode & 0o7777 == 0o700,
                "\(name)'s home: uid \(st.st_uid) mode \(String(st.st_mode & 0o7777, radix: 8))"
            )
            for inner in ["/projects", "/projects/README", "/shadow-link", "/etc-link"] {
                var s = stat()
                lstat(home + inner, &s)
                #expect(s.st_uid == 0, "\(name)\(inner) was chowned to \(s.st_uid)")
            }
        }
        var shadowAfter = stat()
        lstat(root.file("/etc/shadow"), &shadowAfter)
        var etcAfter = stat()
        lstat(root.file("/etc"), &etcAfter)
        #expect(
            shadowAfter.st_uid == 0 && shadowAfter.st_mode == shadowBefore.st_mode,
            "the link target /etc/shadow changed owner or mode"
        )
        #expect(
            etcAfter.st_uid == 0 && etcAfter.st_mode == etcBefore.st_mode,
            "the link target /etc changed owner or mode"
        )
        let plan = try CLI.run([
            "plan", "--roster", inputs.file("/r.yaml"), "--settings", Fixture.settingsPath, "--root", root.path,
            "--detailed-exitcode",
        ])
        #expect(plan.status == 0, "\(plan.stdout)")
    }

    /// An account without a home is a reported conflict; apply does not try (and fail) to create ~/.claude in it.
    @Test func accountWithoutAHomeIsAConflictNotAFailure() throws {
        let root = try TempRoot()
        let inputs = try TempRoot()
        try Fixture.seed(root)
        try tool("useradd", prefix: root, ["dave"])
        let r = try apply(root, "users:\n  dave: { authentik_user: dave, k8s_user: dave, tier: power-user }\n", inputs)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("home /home/dave of dave is missing"), "\(r.stdout)")
        #expect(!FileManager.default.fileExists(atPath: root.file("/home/dave")))
    }
}

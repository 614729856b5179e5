import Foundation
import Testing
import WorkstationCore
import WorkstationTestSupport

@testable import WorkstationHost

/// Many accounts created in one `systemd-sysusers` run (real tool, `--root` on a temp root): each as useradd made
/// it (uid, private group, memberships, a locked password, a 0700 home with the skeleton), a failure named per
/// person, and a home a stopped run did not make is made by the next plan.
@Suite(.serialized) struct AccountBatchTests {
    func account(_ name: String, _ uid: Int, comment: String = "someone@example.org") -> Change {
        Change(
            id: .account(name),
            user: name,
            kind: .create,
            safety: .additive,
            summary: "create account \(name)",
            action: .createAccount(
                AccountSpec(
                    name: name,
                    uid: uid,
                    home: "/home/\(name)",
                    shell: "/bin/bash",
                    groups: ["users"],
                    comment: comment
                )
            )
        )
    }

    func executor(_ root: TempRoot) throws -> Executor {
        Executor(
            root: HostRoot(root.path),
            settings: Settings(),
            runner: ProcessRunner(),
            journal: nil,
            systemdRunning: false,
            state: WorkstationState()
        )
    }

    @Test func severalAccountsAreMadeInOneRunAsUseraddMadeThem() throws {
        let root = try TempRoot()
        try Fixture.seed(root)
        let executor = try executor(root)
        let report = executor.runExplicit([account("alice", 1501), account("bob", 1502), account("carol", 1503)])
        #expect(report.failed.isEmpty, "\(report.failed.map(\.error))")
        #expect(executor.runner.spawned == 1, "one systemd-sysusers run, no useradd")
        for (name, uid) in [("alice", 1501), ("bob", 1502), ("carol", 1503)] {
            let passwd = root.read("/etc/passwd") ?? ""
            #expect(passwd.contains("\n\(name):x:\(uid):\(uid):someone@example.org:/home/\(name):/bin/bash\n"))
            #expect((root.read("/etc/group") ?? "").contains("\n\(name):x:\(uid):\n"))
            let shadow = (root.read("/etc/shadow") ?? "").split(separator: "\n").first { $0.hasPrefix("\(name):") }
            #expect(shadow?.split(separator: ":", omittingEmptySubsequences: false)[1].hasPrefix("!") == true)
            var st = stat()
            #expect(
                lstat(root.file("/home/\(name)"), &st) == 0 && st.st_mode & 0o7777 == 0o700 && Int(st.st_uid) == uid
            )
            #expect(root.read("/home/\(name)/.bashrc") == root.read("/etc/skel/.bashrc"))
            #expect(executor.state.accounts[name] == .init(uid: uid, created: true))
            #expect(executor.state.addedMemberships[name] == ["users"])
        }
        let users = (root.read("/etc/group") ?? "").split(separator: "\n").first { $0.hasPrefix("users:") } ?? ""
        #expect(users.hasSuffix("alice,bob,carol") || users.hasSuffix(":alice,bob,carol"), "\(users)")
        #expect(executor.state.intents == nil, "every intent settled")
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: root.file("/home")).allSatisfy { !$0.hasPrefix(".") }
        )
    }

    @Test func anAccountWhoseUidIsTakenFailsNamingItAndTheOthersConverge() throws {
        let root = try TempRoot()
        try Fixture.seed(root)
        let executor = try executor(root)
        // Two people planned on one uid (as when the uid is taken while apply runs): the second gets another.
        let report = executor.runExplicit([account("alice", 1601), account("bob", 1601), account("carol", 1602)])
        #expect(report.failed.count == 1, "\(report.failed.map(\.error))")
        let failed = try #require(report.failed.first)
        #expect(["account:alice", "account:bob"].contains(failed.change.id))
        #expect(failed.error.contains("1601") && failed.error.contains(failed.change.user!), "\(failed.error)")
        #expect(report.applied.map(\.id).contains("account:carol"))
        #expect(report.applied.count == 2)
    }

    @Test(arguments: [
        ("someone@example.org", true), ("Alice Smith", true), ("", true), ("a\"b", false), ("a:b", false),
        ("a\\b", false), ("tab\there", false), ("quote'", false),
    ])
    func aCommentSysusersWouldReadOtherwiseGoesToUseradd(_ comment: String, _ batched: Bool) {
        let spec = AccountSpec(
            name: "alice",
            uid: 1501,
            home: "/home/alice",
            shell: "/bin/bash",
            groups: ["users"],
            comment: comment
        )
        #expect((Executor.sysusersConfig([spec]) != nil) == batched)
    }

    /// A host's subordinate id files and login.defs lines, and what useradd allocates there for a new account.
    struct SubordinateCase: CustomTestStringConvertible, Sendable {
        var name: String
        /// Contents of `/etc/subuid` and `/etc/subgid` before; nil: the file is absent.
        var subuid: String?
        var subgid: String?
        var loginDefs: String = ""
        var testDescription: String { name }
    }

    static let subordinateCases: [SubordinateCase] = [
        .init(name: "empty files", subuid: "", subgid: ""),
        .init(name: "no files", subuid: nil, subgid: nil),
        .init(name: "only subgid", subuid: nil, subgid: ""),
        .init(
            name: "ranges of others, a hole too small",
            subuid: "dave:100000:65536\nerin:165636:65536\n",
            subgid: "dave:100000:1000\n"
        ),
        .init(
            name: "counts and span from login.defs",
            subuid: "",
            subgid: "",
            loginDefs: "SUB_UID_MIN 200000\nSUB_UID_COUNT 1000\nSUB_GID_COUNT 0\n"
        ),
    ]

    /// sysusers allocates no subordinate ids; the batch gives each account the ranges useradd gives it alone, where
    /// useradd gives them.
    @Test(arguments: subordinateCases)
    func subordinateRangesAreTheOnesUseraddGives(_ c: SubordinateCase) throws {
        var files: [[String: String]] = []
        for batched in [true, false] {
            let root = try TempRoot()
            try Fixture.seed(root)
            if let subuid = c.subuid { try root.write("/etc/subuid", subuid) }
            if let subgid = c.subgid { try root.write("/etc/subgid", subgid) }
            try root.write("/etc/login.defs", (root.read("/etc/login.defs") ?? "") + c.loginDefs)
            let executor = try executor(root)
            let people = [account("alice", 1501), account("bob", 1502), account("carol", 1503)]
            for changes in batched ? [people] : people.map({ [$0] }) {
                let report = executor.runExplicit(changes)
                #expect(report.failed.isEmpty, "\(report.failed.map(\.error))")
            }
            if batched {
                #expect(
                    (root.read("/etc/shadow") ?? "").contains("\nalice:!*:"),
                    "the batch went through systemd-sysusers"
                )
            }
            files.append([
                "subuid": root.read("/etc/subuid") ?? "(absent)", "subgid": root.read("/etc/subgid") ?? "(absent)",
            ])
        }
        #expect(files[0] == files[1], "batched: \(files[0]); one by one with useradd: \(files[1])")
    }

    @Test func aHomeAStoppedRunDidNotMakeIsMadeByTheNextApply() throws {
        let root = try TempRoot()
        let inputs = try TempRoot()
        try Fixture.seed(root)
        try inputs.write("/r.yaml", Fixture.roster(count: 3))
        let args = ["--roster", inputs.file("/r.yaml"), "--settings", Fixture.settingsPath, "--root", root.path]
        #expect(try CLI.run(["apply"] + args).status == 0)
        // As if the run had stopped after creating the accounts and before this home.
        try FileManager.default.removeItem(atPath: root.file("/home/u0001"))
        let plan = try CLI.run(["plan"] + args)
        #expect(plan.stdout.contains("create home /home/u0001 of u0001"), "\(plan.stdout)")
        let apply = try CLI.run(["apply"] + args)
        #expect(apply.status == 0, "\(apply.stderr)")
        var st = stat()
        #expect(lstat(root.file("/home/u0001"), &st) == 0 && st.st_mode & 0o7777 == 0o700 && st.st_uid != 0)
        #expect(root.read("/home/u0001/.profile") == root.read("/etc/skel/.profile"))
        #expect(try CLI.run(["plan", "--detailed-exitcode"] + args).status == 0)
    }
}

import Foundation
import Testing

@testable import WorkstationCore

/// Offboarding that loses nothing and leaves no access: the pure parts (planner, renderers, name parsing).
@Suite struct LifecycleIntegrityTests {
    static let alice = RosterEntry(
        osUser: "alice",
        authentikUser: "alice.smith",
        k8sUser: "alice",
        tier: .powerUser,
        email: "alice@example.org"
    )
    static let bob = RosterEntry(
        osUser: "bob-dev",
        authentikUser: "bob",
        k8sUser: "bob",
        tier: .namespaceOwner,
        namespaces: ["team-bob"],
        email: "bob@example.org"
    )

    /// alice (uid 1001) and bob-dev (uid 1002) exist with homes; `extra` adds paths.
    static func host(_ extra: [String: PathState] = [:]) -> HostSnapshot {
        var snap = HostSnapshot()
        snap.passwd = [
            PasswdEntry(name: "alice", uid: 1001, gid: 1001, home: "/home/alice", shell: "/bin/bash"),
            PasswdEntry(name: "bob-dev", uid: 1002, gid: 1002, home: "/home/bob-dev", shell: "/bin/bash"),
        ]
        snap.paths["/home/alice"] = PathState(kind: .directory, mode: 0o700, uid: 1001, gid: 1001)
        snap.paths["/home/bob-dev"] = PathState(kind: .directory, mode: 0o700, uid: 1002, gid: 1002)
        for (k, v) in extra { snap.paths[k] = v }
        return snap
    }

    // MARK: retired uids outlive state.json

    @Test(
        arguments: [
            ("alice-1001-20250102T030405Z.tar.gz", 1001),
            ("alice-1001-20250102T030405Z.tar.gz.sha256", 1001),
            ("alice-1001-20250102T030405Z.tar.gz.partial", 1001),
            ("bob-dev-1002-20250102T030405Z.tar.gz", 1002),  // a '-' in the os_user
            ("a-b-c-60000-20991231T235959Z.tar.gz", 60000),
            ("alice-1001-20250102T030405Z.tar", nil),
            ("alice-20250102T030405Z.tar.gz", nil),  // no uid
            ("alice-x1001-20250102T030405Z.tar.gz", nil),
            ("alice-1001-2025-01-02.tar.gz", nil),  // not the stamp
            ("-1001-20250102T030405Z.tar.gz", nil),  // no name
            ("alice-0-20250102T030405Z.tar.gz", nil),  // never root
            ("notes.txt", nil),
        ] as [(String, Int?)]
    )
    func archiveNamesCarryTheRetiredUid(name: String, uid: Int?) {
        #expect(OffboardingRecord.Archive.retiredUid(fromFileName: name) == uid)
    }

    @Test func archiveNameRoundTrips() {
        for (user, uid) in [("alice", 1001), ("bob-dev", 1002), ("x", 59999)] {
            let name = OffboardingRecord.Archive.fileName(user: user, uid: uid, stamp: "20250102T030405Z")
            #expect(OffboardingRecord.Archive.retiredUid(fromFileName: name) == uid)
        }
    }

    @Test func aRetiredUidFromTheArchivesIsNeverHandedOut() {
        var snap = Self.host()
        snap.passwd.removeAll { $0.name == "alice" }
        snap.state.retiredUids = [1000, 1001]
        let d = desire(
            roster: Roster(entries: [
                RosterEntry(osUser: "carl", authentikUser: "carl", k8sUser: "carl", tier: .powerUser)
            ]),
            settings: Settings(),
            snapshot: snap
        )
        #expect(d.users.first?.uid == 1003, "1000 and 1001 retired, 1002 taken")
    }

    // MARK: revoke deletes only what is unchanged

    @Test(
        arguments: [
            ([:], ["delete"], ["/home/alice/.claude.json"]),
            (["/home/alice/.claude.json": "changed since workstation wrote it"], ["kept"], []),
        ] as [([String: String], [String], [String])]
    )
    func revokeDeletesOnlyUnchangedFiles(kept: [String: String], kinds: [String], deleted: [String]) {
        var snap = Self.host()
        snap.state.secretFilesWritten["alice"] = ["/home/alice/.claude.json"]
        let changes = Planner(settings: Settings()).revokeChanges(user: "alice", observed: snap, kept: kept)
        #expect(changes.map { $0.action == nil ? "kept" : "delete" } == kinds)
        let removed = changes.compactMap { c -> String? in
            if case .removeHomeEntry(_, let p, _)? = c.action { return p }
            return nil
        }
        #expect(removed == deleted)
        for c in changes where c.action == nil {
            #expect(
                c.kind == .conflict && c.summary.contains("changed since workstation wrote it")
                    && c.reason?.contains("archive") == true
            )
        }
    }

    // MARK: archive removes everything apply wrote

    @Test(arguments: [
        ([String](), 2),  // account + archive only: no drop-in present
        (["/etc/systemd/system/t3-serve@alice.service.d/50-workstation.conf"], 3),
        (
            [
                "/etc/systemd/system/t3-serve@alice.service.d/50-workstation.conf",
                "/etc/systemd/system/user-1001.slice.d/50-workstation.conf",
            ], 4
        ),
        (["/etc/systemd/system/user-1001.slice.d/50-workstation.conf"], 3),
    ])
    func archiveRemovesEveryDropInWritten(present: [String], count: Int) {
        var extra: [String: PathState] = [:]
        for p in present { extra[p] = PathState(kind: .file, mode: 0o644) }
        let changes = Planner(settings: Settings()).archiveChanges(
            user: "alice",
            uid: 1001,
            home: "/home/alice",
            archive: "/var/backups/a.tar.gz",
            observed: Self.host(extra)
        )
        #expect(changes.count == count)
        let removed = changes.compactMap { c -> String? in
            if case .removeSystemFile(let p)? = c.action { return p }
            return nil
        }
        #expect(removed == present)
        #expect(
            changes.dropFirst(2).allSatisfy { $0.dependsOn == ["account:alice"] && $0.summary.contains("once empty") }
        )
    }

    // MARK: revocation no gate holds back

    @Test(arguments: [
        // (ttyd map lines, roster keeps, admins, dropped)
        (["alice.smith=alice", "bob=bob-dev"], ["alice"], [String](), ["bob-dev"]),
        (["alice.smith=alice", "bob=bob-dev"], ["alice", "bob-dev"], [String](), [String]()),
        (["alice.smith=alice", "carol=carol"], ["alice"], ["carol"], [String]()),  // an admin is never dropped
        // a pair the roster no longer routes
        (["alice.smith=alice", "mallory=alice"], ["alice"], [String](), ["alice"]),
        ([String](), ["alice"], [String](), [String]()),
    ])
    func leaversAreDroppedWithoutAddingAnyone(
        lines: [String],
        keep: [String],
        admins: [String],
        dropped: [String]
    ) throws {
        var settings = Settings()
        settings.accounts.adminGroup = "sudo"
        var snap = Self.host()
        snap.groups = [GroupEntry(name: "sudo", gid: 27, members: admins)]
        let ttyd = Data(("# generated\n" + lines.map { $0 + "\n" }.joined()).utf8)
        snap.paths[settings.derived.ttydUserMap] = PathState(kind: .file, mode: 0o644, content: ttyd)
        var users: [String: DispatchMap.User] = [:]
        for (i, l) in lines.enumerated() {
            let kv = l.split(separator: "=").map(String.init)
            users[kv[0]] = DispatchMap.User(osUser: kv[1], port: 3774 + i, ports: ["t3-serve@": 3774 + i])
        }
        snap.paths[settings.derived.dispatch] = PathState(
            kind: .file,
            mode: 0o644,
            content: DispatchMap(users: users).encoded()
        )
        // The roster now also onboards "dave" (who must not appear: nothing is added).
        let entries =
            [Self.alice, Self.bob].filter { keep.contains($0.osUser) }
            + [RosterEntry(osUser: "dave", authentikUser: "dave", k8sUser: "dave", tier: .powerUser)]
        let d = desire(roster: Roster(entries: entries), settings: settings, snapshot: snap)
        let (changes, who) = Planner(settings: settings).revocationOnlyChanges(d, snap)
        #expect(who == dropped)
        #expect(changes.count == (dropped.isEmpty ? 0 : 2))
        for c in changes {
            guard case .writeFile(let path, let content, _)? = c.action else {
                Issue.record("no write")
                continue
            }
            let text = String(decoding: content, as: UTF8.self)
            #expect(!text.contains("dave"), "\(path) gained someone: \(text)")
            for l in lines where path == settings.derived.ttydUserMap {
                let os = String(l.split(separator: "=")[1])
                let ak = String(l.split(separator: "=")[0])
                let stays = admins.contains(os) || d.identities.contains { $0.authentikUser == ak && $0.osUser == os }
                #expect(text.contains(l + "\n") == stays, "\(l) in \(text)")
            }
        }
    }

    // MARK: one owner per RBAC object, and the exact revocation command

    @Test(arguments: [
        (Set<String>(), ["alice", "bob-dev"]),
        (Set(["alice"]), ["bob-dev"]),
        (Set(["alice", "bob"]), [String]()),
    ])
    func renderRbacBindsOnlyPeopleK8sUsersDoesNot(provisioned: Set<String>, bound: [String]) throws {
        let yaml = try KubernetesManifests.rbac(
            roster: Roster(entries: [Self.alice, Self.bob]),
            settings: KubernetesSettings(),
            provisioned: provisioned
        )
        for os in ["alice", "bob-dev"] {
            #expect(yaml.contains("workstation/os-user: \"\(os)\"") == bound.contains(os), "\(os)\n\(yaml)")
            #expect(yaml.contains("# not bound here: \(os) ") == !bound.contains(os))
        }
        // Every binding carries the person label (the selector the revoke stage prints matches it).
        let bindings = yaml.components(separatedBy: "---\n").filter { $0.contains("Binding") }
        #expect(
            bindings.allSatisfy {
                $0.contains("app.kubernetes.io/managed-by: workstation") && $0.contains("workstation/os-user:")
            }
        )
    }

    @Test(arguments: [
        (true as Bool?, false, true),
        (false as Bool?, true, false),
        (nil as Bool?, true, true),
    ])
    func revokeStepsNameTheOwnerOfTheBindings(inK8sUsers: Bool?, kubectl: Bool, k8sUsers: Bool) {
        let steps = Planner(settings: Settings()).clusterRevocationSteps(
            user: "bob_dev",
            identity: RecordedIdentity(
                authentikUser: "bob",
                k8sUser: "bob",
                tier: "namespace-owner",
                namespaces: ["team-bob"]
            ),
            inK8sUsers: inK8sUsers
        )
        let command =
            "kubectl delete rolebindings,clusterrolebindings --all-namespaces -l app.kubernetes.io/managed-by=workstation,workstation/os-user=bob-dev"
        #expect(steps.contains { $0.hasSuffix(command) } == kubectl, "\(steps)")
        #expect(steps.contains { $0.contains("remove the k8s_users entry 'bob'") } == k8sUsers, "\(steps)")
    }

    @Test(arguments: [
        ("alice@example.org" as String?, "alice@example.org" as String?, false),
        ("alice@example.org", nil, false),  // k8s_users names no email: nothing to compare
        ("alice@example.org", "mallory@example.org", true),
        (nil, "alice@example.org", true),
        ("Alice@example.org", "alice@example.org", true),  // the binding subject is matched exactly
    ])
    func theRosterEmailIsCheckedAgainstK8sUsers(roster: String?, k8s: String?, mismatch: Bool) {
        var e = Self.alice
        e.email = roster
        var snap = Self.host()
        var obs = K8sUsersObservation(file: "/etc/workstation/k8s_users.json")
        obs.entries["alice"] = K8sUserEntry(
            role: "power-user",
            namespaces: [],
            email: k8s,
            location: SourceLocation(file: "k8s_users.json", line: 2, column: 3)
        )
        snap.remote.k8sUsers = obs
        let problems = Planner(settings: Settings()).kubernetesCrossCheck(Roster(entries: [e]), snap)
        #expect(problems.contains { $0.message.contains("email") } == mismatch, "\(problems)")
    }

    @Test(arguments: [
        (["alice", "bob"], true),  // bob-dev left; 'bob' still in k8s_users
        (["alice"], false),  // removed from k8s_users too
    ])
    func peopleWhoLeftButRemainInK8sUsersAreReported(k8sUsers: [String], reported: Bool) {
        var settings = Settings()
        settings.kubernetes = KubernetesSettings()
        settings.kubernetes?.k8sUsersFile = "/etc/workstation/k8s_users.json"
        var snap = Self.host()
        snap.state.identities["bob-dev"] = RecordedIdentity(
            authentikUser: "bob",
            k8sUser: "bob",
            tier: "namespace-owner",
            namespaces: ["team-bob"]
        )
        var obs = K8sUsersObservation(file: "/etc/workstation/k8s_users.json")
        for k in k8sUsers {
            obs.entries[k] = K8sUserEntry(
                role: k == "bob" ? "namespace-owner" : "power-user",
                namespaces: k == "bob" ? ["team-bob"] : [],
                email: "\(k)@example.org",
                location: SourceLocation(file: "k8s_users.json", line: 1, column: 1)
            )
        }
        snap.remote.k8sUsers = obs
        let d = desire(roster: Roster(entries: [Self.alice]), settings: settings, snapshot: snap)
        let plan = Planner(settings: settings).plan(desired: d, observed: snap)
        let left = plan.changes.filter { $0.id == "k8s-users-left:bob-dev" }
        #expect(left.count == (reported ? 1 : 0))
        if let c = left.first {
            #expect(c.kind == .pending && c.safety == .revoke && c.summary.contains("still grants 'bob'"))
            #expect(c.command == KubernetesManifests.revocationCommand(osUser: "bob-dev"))
        }
    }

    // MARK: secrets never land in a git working tree; failed reads are retried

    static func vaultSettings(_ target: String, infra: String? = "https://git.example.org/infra.git") -> Settings {
        var s = Settings()
        var v = VaultSettings(url: "https://vault.example.org")
        v.secretFiles = [SecretFileSpec(name: "tok", path: "p", key: "k", target: target)]
        s.vault = v
        s.infraRepo.url = infra
        return s
    }

    @Test(
        arguments: [
            (
                "code/.beads/credential", [String: PathState](), "https://git.example.org/infra.git" as String?,
                "is the infra clone"
            ),
            ("code/.beads/credential", [:], nil as String?, "written on a later run once it does"),
            // no clone, no .git: a plain directory
            ("code/.beads/credential", ["/home/alice/code": PathState(kind: .directory)], nil, nil),
            (
                "code/.beads/credential",
                [
                    "/home/alice/code": PathState(kind: .directory),
                    "/home/alice/code/.git": PathState(kind: .directory),
                ], nil, "is a git working tree"
            ),
            (
                "proj/sub/.env",
                ["/home/alice/proj": PathState(kind: .directory), "/home/alice/proj/.git": PathState(kind: .file)], nil,
                "/home/alice/proj is a git working tree"
            ),
            (
                ".config/tool/token", ["/home/alice/.git": PathState(kind: .directory)], nil,
                "/home/alice is a git working tree"
            ),
            (".config/tool/token", [:], "https://git.example.org/infra.git", nil),
            (".claude.json", [:], "https://git.example.org/infra.git", nil),
        ] as [(String, [String: PathState], String?, String?)]
    )
    func secretTargetsInsideAGitWorkingTreeAreRefused(
        target: String,
        paths: [String: PathState],
        infra: String?,
        blocker: String?
    ) {
        let settings = Self.vaultSettings(target, infra: infra)
        let snap = Self.host(paths)
        let d = desire(roster: Roster(entries: [Self.alice]), settings: settings, snapshot: snap)
        let plans = Planner(settings: settings).secretFilePlans(d, snap)
        #expect(plans.count == 1)
        if let blocker {
            #expect(plans.first?.blocker?.contains(blocker) == true, "\(plans.first?.blocker ?? "nil")")
        } else {
            #expect(plans.first?.blocker == nil)
        }
        let watched = Planner(settings: settings).integrationWatchedPaths(d.users[0]).map(\.path)
        #expect(watched.contains("/home/alice/.git"))
    }

    @Test(
        arguments: [
            (false, false, "never writes into an existing ~/.claude"),
            (true, false, nil),  // pending since a failed read: written now
            (true, true, "never writes into an existing ~/.claude"),  // never through a link, pending or not
        ] as [(Bool, Bool, String?)]
    )
    func aSecretWhoseReadFailedIsWrittenOnceItsDirectoryExists(pending: Bool, link: Bool, blocker: String?) {
        let settings = Self.vaultSettings(".claude/token", infra: nil)
        var snap = Self.host([
            "/home/alice/.claude": link
                ? PathState(kind: .symlink, linkTarget: "/tmp") : PathState(kind: .directory, mode: 0o700, uid: 1001)
        ])
        if pending { snap.state.secretFilesPending["alice"] = ["/home/alice/.claude/token"] }
        let d = desire(roster: Roster(entries: [Self.alice]), settings: settings, snapshot: snap)
        let p = Planner(settings: settings)
        let plans = p.secretFilePlans(d, snap)
        if let blocker {
            #expect(plans.first?.blocker?.contains(blocker) == true, "\(plans.first?.blocker ?? "nil")")
        } else {
            #expect(plans.first?.blocker == nil)
        }
        // A read that fails is recorded as pending, and reported as an error that says it is retried.
        if blocker == nil {
            snap.remote.vault = VaultObservation()
            snap.remote.vault?.secrets["tok"] = .failed("503 sealed")
            #expect(p.unreadSecretFiles(d, snap) == ["alice": ["/home/alice/.claude/token"]])
            let plan = p.plan(desired: d, observed: snap)
            #expect(
                plan.errors.contains { $0.contains("503 sealed") && $0.contains("retried on every run") },
                "\(plan.errors)"
            )
        }
    }

    // MARK: a local-path infra repository

    @Test(
        arguments: [
            // (repo state, .git state, safe.directory in /etc/gitconfig, expected problem)
            (PathState(kind: .absent), nil as PathState?, nil as String?, "does not exist" as String?),
            (
                PathState(kind: .directory, mode: 0o755, uid: 0), PathState(kind: .directory, mode: 0o755, uid: 0), nil,
                "detected dubious ownership"
            ),
            (
                PathState(kind: .directory, mode: 0o755, uid: 0), PathState(kind: .directory, mode: 0o755, uid: 0),
                "/srv/infra", nil
            ),
            (
                PathState(kind: .directory, mode: 0o755, uid: 0), PathState(kind: .directory, mode: 0o755, uid: 0), "*",
                nil
            ),
            (PathState(kind: .directory, mode: 0o755, uid: 0), nil, "/srv/infra", nil),  // bare
            (PathState(kind: .directory, mode: 0o700, uid: 0), nil, "/srv/infra", "cannot be read by alice"),
            (PathState(kind: .directory, mode: 0o750, uid: 0, gid: 1001), nil, "/srv/infra", nil),  // via the group
            (
                PathState(kind: .directory, mode: 0o700, uid: 1001),
                PathState(kind: .directory, mode: 0o700, uid: 1001), nil, nil
            ),  // their own
            (PathState(kind: .file), nil, nil, "not a repository directory"),
        ] as [(PathState, PathState?, String?, String?)]
    )
    func aLocalRepositoryGitCannotCloneIsPredicted(repo: PathState, git: PathState?, safe: String?, problem: String?) {
        var settings = Settings()
        settings.infraRepo.url = "file:///srv/infra/"
        var extra: [String: PathState] = ["/srv/infra": repo]
        if let git { extra["/srv/infra/.git"] = git }
        if let safe {
            extra["/etc/gitconfig"] = PathState(
                kind: .file,
                content: Data("[user]\n\tname = x\n[safe]\n\tdirectory = \(safe)\n".utf8)
            )
        }
        var snap = Self.host(extra)
        snap.state.accounts["alice"] = .init(uid: 1001, created: true)
        let d = desire(roster: Roster(entries: [Self.alice]), settings: settings, snapshot: snap)
        let plan = Planner(settings: settings).plan(desired: d, observed: snap)
        let clone = plan.changes.first { $0.id == "clone:/home/alice/code" }
        let launcher = plan.changes.first { $0.id == "file:/home/alice/start-agent.sh" }
        if let problem {
            #expect(
                clone?.kind == .conflict && clone?.action == nil && clone?.summary.contains(problem) == true,
                "\(clone?.summary ?? "nil")"
            )
            #expect(launcher == nil, "no launcher without a clone")
        } else {
            #expect(clone?.kind == .create, "\(clone?.summary ?? "nil")")
            #expect(launcher?.dependsOn.map(\.description).contains("clone:/home/alice/code") == true)
        }
        #expect(Planner(settings: settings).watchedPaths(d).map(\.path).contains("/srv/infra/.git"))
    }

    @Test func theLauncherWaitsForTheClone() {
        var settings = Settings()
        settings.infraRepo.url = "https://git.example.org/infra.git"
        var snap = Self.host()
        snap.passwd.removeAll { $0.name == "alice" }
        let d = desire(roster: Roster(entries: [Self.alice]), settings: settings, snapshot: snap)
        let plan = Planner(settings: settings).plan(desired: d, observed: snap)
        let launcher = plan.changes.first { $0.id == "file:/home/alice/start-agent.sh" }
        #expect(
            launcher?.dependsOn.map(\.description).contains("clone:/home/alice/code") == true,
            "\(launcher?.dependsOn ?? [])"
        )
        // ~/code a symlink (the old model): nothing cloned, so no launcher either.
        var linked = Self.host(["/home/alice/code": PathState(kind: .symlink, linkTarget: "/home/carol/code")])
        linked.state.accounts["alice"] = .init(uid: 1001, created: true)
        let d2 = desire(roster: Roster(entries: [Self.alice]), settings: settings, snapshot: linked)
        #expect(
            !Planner(settings: settings).plan(desired: d2, observed: linked).changes.contains {
                $0.id == "file:/home/alice/start-agent.sh"
            }
        )
    }

    @Test(arguments: [
        ("[safe]\n\tdirectory = /srv/a\n\tdirectory = \"/srv/b c\"\n", Set(["/srv/a", "/srv/b c"])),
        ("[core]\n\tdirectory = /srv/a\n", Set<String>()),
        ("[Safe]\ndirectory=/srv/a ; comment\n", Set(["/srv/a"])),
        ("", Set<String>()),
    ])
    func safeDirectoriesAreRead(text: String, dirs: Set<String>) {
        #expect(Planner.safeDirectories(Data(text.utf8)) == dirs)
    }
}

import Foundation
import Testing

@testable import WorkstationCore

@Suite struct RedactionTests {
    @Test(arguments: [
        ("https://alice:s3cret@git.example.org/infra.git", "https://***@git.example.org/infra.git"),
        ("https://ghp_token123@git.example.org/infra.git", "https://***@git.example.org/infra.git"),
        (
            "fatal: unable to access 'http://u:p@127.0.0.1:8080/x.git/': 401",
            "fatal: unable to access 'http://***@127.0.0.1:8080/x.git/': 401"
        ),
        ("ssh://git@git.example.org:2222/infra.git", "ssh://***@git.example.org:2222/infra.git"),
        ("https://git.example.org/a@b/infra.git", "https://git.example.org/a@b/infra.git"),
        ("git@git.example.org:infra/infra.git", "git@git.example.org:infra/infra.git"),
        (
            "two: https://a:b@x.example.org and https://c:d@y.example.org/",
            "two: https://***@x.example.org and https://***@y.example.org/"
        ),
        ("https://user:p@ss@git.example.org/x", "https://***@git.example.org/x"),
        ("no url here", "no url here"),
    ])
    func hidesUserInfo(_ input: String, _ expected: String) {
        #expect(redactCredentials(input) == expected)
    }

    @Test func stripsForTheBareURL() {
        #expect(
            redactCredentials("https://alice:s3cret@git.example.org/infra.git", replacement: "")
                == "https://git.example.org/infra.git"
        )
    }
}

@Suite struct InfraRepoSettingsTests {
    @Test(arguments: [
        "https://git.example.org/infra/infra.git", "http://127.0.0.1:3000/infra.git",
        "ssh://git@git.example.org/infra.git",
        "git@git.example.org:infra/infra.git", "/srv/git/infra.git", "file:///srv/git/infra.git",
        "git://git.example.org/infra.git",
    ])
    func acceptsCloneURLs(_ url: String) {
        #expect(repoURLProblem(url) == nil)
    }

    @Test(arguments: [
        ("", "is empty"), ("ext::sh -c id", "whitespace"), ("ext::id", "transport"), ("-uinfra", "starts with '-'"),
        ("https://", "no host"), ("infra", "not a clone URL"), ("fd::3", "transport"),
        ("https://a:secret@x.example.org/ y", "https://***@x.example.org/"),
    ])
    func refusesOthers(_ url: String, _ fragment: String) throws {
        let p = try #require(repoURLProblem(url))
        #expect(p.contains(fragment), "\(p)")
        #expect(!p.contains("secret"))
    }

    @Test func defaultsWhenAbsent() throws {
        let s = try Settings.parse(Data("lock_timeout: 5\n".utf8), file: "workstation.yaml")
        #expect(s.infraRepo.url == nil)
        #expect(s.infraRepo.directory == "code")
        #expect(s.infraRepo.launcherPath == "start-agent.sh")
        #expect(s.infraRepo.partialDirectory == ".code.workstation-partial")
    }

    @Test func parsesEveryKey() throws {
        let yaml = """
            infra_repo:
              url: https://git.example.org/infra.git
              branch: main
              directory: infra
              launcher_path: bin/start.sh
              launcher_template: "cd {code} && exec agent # {user}"

            """
        let s = try Settings.parse(Data(yaml.utf8), file: "workstation.yaml").infraRepo
        #expect(s.url == "https://git.example.org/infra.git" && s.branch == "main" && s.directory == "infra")
        #expect(s.launcherPath == "bin/start.sh")
        #expect(
            s.launcher(user: "alice", codePath: "/home/alice/it's") == "cd '/home/alice/it'\\''s' && exec agent # alice"
        )
    }

    @Test func errorsAreLocated() throws {
        let yaml = "infra_repo:\n  url: https://git.example.org/infra.git\n  branch: \"a..b\"\n"
        let e = try #require(throws: ValidationFailure.self) {
            try Settings.parse(Data(yaml.utf8), file: "workstation.yaml")
        }
        #expect(
            e.description.contains("workstation.yaml:3:11: error: infra_repo.branch 'a..b' is not a valid branch name"),
            "\(e.description)"
        )
    }

    @Test func rosterRepoOverrideIsChecked() throws {
        let roster =
            "users:\n  alice: { authentik_user: alice, k8s_user: alice, tier: power-user, repo: { url: \"-oops\" } }\n"
        let e = try #require(throws: ValidationFailure.self) {
            try Roster.parse(Data(roster.utf8), file: "roster.yaml", settings: Settings())
        }
        #expect(
            e.description.contains("roster.yaml:2:") && e.description.contains("repo.url '-oops' starts with '-'"),
            "\(e.description)"
        )
    }
}

@Suite struct InfraClonePlannerTests {
    static func settings(_ url: String?) -> Settings {
        var s = Settings()
        s.infraRepo.url = url
        s.infraRepo.branch = "main"
        return s
    }

    static func plan(
        roster: String = "users:\n  alice: { authentik_user: alice, k8s_user: alice, tier: power-user }\n",
        settings: Settings,
        host: (inout HostSnapshot) -> Void = { _ in }
    ) throws -> Plan {
        let r = try Roster.parse(Data(roster.utf8), file: "roster.yaml", settings: settings)
        var snap = HostSnapshot()
        host(&snap)
        let desired = desire(roster: r, settings: settings, snapshot: snap)
        return Planner(settings: settings).plan(desired: desired, observed: snap)
    }

    /// alice exists with her home.
    static func existingAlice(_ s: inout HostSnapshot) {
        s.passwd = [PasswdEntry(name: "alice", uid: 1001, gid: 1001, home: "/home/alice", shell: "/bin/bash")]
        s.paths["/home/alice"] = PathState(kind: .directory, mode: 0o700, uid: 1001, gid: 1001)
    }

    @Test func absentCodeIsACloneWithTheURLRedacted() throws {
        let p = try Self.plan(settings: Self.settings("https://deploy:s3cret@git.example.org/infra.git"))
        let c = try #require(p.changes.first { $0.id == "clone:/home/alice/code" })
        #expect(c.kind == .create && c.safety == .additive && c.dependsOn == ["account:alice"])
        #expect(
            c.summary
                == "clone https://***@git.example.org/infra.git into /home/alice/code as alice (keyless: git-crypt files stay encrypted)"
        )
        #expect(!PlanRenderer.human(p).contains("s3cret"))
        #expect(!PlanRenderer.json(p).contains("s3cret"))
        guard case .cloneInfraRepo(let spec) = c.action else {
            Issue.record("not a clone action")
            return
        }
        #expect(spec.url == "https://deploy:s3cret@git.example.org/infra.git" && spec.branch == "main")
        // A new account also gets its launcher.
        #expect(p.changes.contains { $0.id == "file:/home/alice/start-agent.sh" && $0.kind == .create })
    }

    @Test func theRosterOverrideWins() throws {
        let roster =
            "users:\n  alice: { authentik_user: alice, k8s_user: alice, tier: power-user, repo: { url: \"git@git.example.org:alice/infra.git\", branch: dev } }\n"
        let p = try Self.plan(roster: roster, settings: Self.settings("https://git.example.org/infra.git"))
        let c = try #require(p.changes.first { $0.id == "clone:/home/alice/code" })
        #expect(c.fields.contains(FieldChange("url", nil, "git@git.example.org:alice/infra.git")))
        #expect(c.fields.contains(FieldChange("branch", nil, "dev")))
    }

    @Test(arguments: [PathState.Kind.symlink, .directory, .file])
    func anythingAtCodeIsKept(_ kind: PathState.Kind) throws {
        let p = try Self.plan(settings: Self.settings("https://git.example.org/infra.git")) { s in
            Self.existingAlice(&s)
            s.paths["/home/alice/code"] = PathState(
                kind: kind,
                uid: 1001,
                linkTarget: kind == .symlink ? "/srv/shared/infra" : nil
            )
        }
        #expect(!p.changes.contains { $0.id.description.hasPrefix("clone:") })
        switch kind {
        case .symlink:
            #expect(p.notes.contains("alice: /home/alice/code is a symlink to /srv/shared/infra; kept, not cloned"))
        case .file: #expect(p.notes.contains("alice: /home/alice/code is a file, not a clone; kept, not cloned"))
        default: #expect(!p.notes.contains { $0.hasPrefix("alice:") })
        }
        // An account that existed before workstation gets no launcher.
        #expect(!p.changes.contains { $0.id.description.hasPrefix("file:/home/alice/") })
    }

    @Test func aLeftoverPartialCloneIsShown() throws {
        let p = try Self.plan(settings: Self.settings("https://git.example.org/infra.git")) { s in
            Self.existingAlice(&s)
            s.paths["/home/alice/.code.workstation-partial"] = PathState(kind: .directory, uid: 1001)
        }
        let c = try #require(p.changes.first { $0.id == "clone:/home/alice/code" })
        #expect(c.dependsOn.isEmpty)
        #expect(c.fields.contains { $0.field == "leftover" && $0.after == "removed as alice" })
    }

    @Test func noSourceMeansOneNoteAndNoChange() throws {
        let roster =
            "users:\n  alice: { authentik_user: alice, k8s_user: alice, tier: power-user }\n  bob: { authentik_user: bob, k8s_user: bob, tier: power-user }\n"
        let p = try Self.plan(roster: roster, settings: Self.settings(nil))
        #expect(
            !p.changes.contains {
                $0.id.description.hasPrefix("clone:") || $0.id.description.hasSuffix("start-agent.sh")
            }
        )
        #expect(p.notes.filter { $0.hasPrefix("infra clones are off") }.count == 1)
    }

    @Test func watchedPathsCoverTheCloneItsSiblingAndTheLauncher() throws {
        let s = Self.settings("https://git.example.org/infra.git")
        let r = try Roster.parse(
            Data("users:\n  alice: { authentik_user: alice, k8s_user: alice, tier: power-user }\n".utf8),
            file: "r",
            settings: s
        )
        let d = desire(roster: r, settings: s, snapshot: HostSnapshot())
        let paths = Set(Planner(settings: s).watchedPaths(d).map(\.path))
        #expect(
            paths.isSuperset(of: [
                "/home/alice/code", "/home/alice/.code.workstation-partial", "/home/alice/start-agent.sh",
            ])
        )
    }
}

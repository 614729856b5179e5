import Foundation
import Testing

@testable import WorkstationCore

/// An infra repository on a local path: a clone git would refuse is predicted, the launcher waits for the clone,
/// and git's safe.directory entries are read.
@Suite struct LocalInfraRepoTests {

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
        var snap = LifecycleFixture.host(extra)
        snap.state.accounts["alice"] = .init(uid: 1001, created: true)
        let d = desire(roster: Roster(entries: [LifecycleFixture.alice]), settings: settings, snapshot: snap)
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
        var snap = LifecycleFixture.host()
        snap.passwd.removeAll { $0.name == "alice" }
        let d = desire(roster: Roster(entries: [LifecycleFixture.alice]), settings: settings, snapshot: snap)
        let plan = Planner(settings: settings).plan(desired: d, observed: snap)
        let launcher = plan.changes.first { $0.id == "file:/home/alice/start-agent.sh" }
        #expect(
            launcher?.dependsOn.map(\.description).contains("clone:/home/alice/code") == true,
            "\(launcher?.dependsOn ?? [])"
        )
        // ~/code a symlink (the old model): nothing cloned, so no launcher either.
        var linked = LifecycleFixture.host([
            "/home/alice/code": PathState(kind: .symlink, linkTarget: "/home/carol/code")
        ])
        linked.state.accounts["alice"] = .init(uid: 1001, created: true)
        let d2 = desire(roster: Roster(entries: [LifecycleFixture.alice]), settings: settings, snapshot: linked)
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

import Foundation
import Testing

@testable import WorkstationCore

/// Secret files from Vault: never planned inside a git working tree, and a failed read written once its directory
/// exists.
@Suite struct SecretFilePlanTests {

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
        let snap = LifecycleFixture.host(paths)
        let d = desire(roster: Roster(entries: [LifecycleFixture.alice]), settings: settings, snapshot: snap)
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
        var snap = LifecycleFixture.host([
            "/home/alice/.claude": link
                ? PathState(kind: .symlink, linkTarget: "/tmp") : PathState(kind: .directory, mode: 0o700, uid: 1001)
        ])
        if pending { snap.state.secretFilesPending["alice"] = ["/home/alice/.claude/token"] }
        let d = desire(roster: Roster(entries: [LifecycleFixture.alice]), settings: settings, snapshot: snap)
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
}

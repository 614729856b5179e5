import Foundation
import Testing

@testable import WorkstationCore

/// Planner fixtures: (roster, host snapshot) -> expected changes.
@Suite struct PlannerFixtureTests {
    static let roster = """
        users:
          carol: { authentik_user: carol, k8s_user: carol, tier: admin }
          alice: { authentik_user: alice.smith, k8s_user: alice, tier: power-user }
          bob: { authentik_user: bob, k8s_user: bob, tier: namespace-owner, namespaces: [team-bob] }
        """

    /// A fresh Debian host: base accounts, a sudo group, the t3 template installed.
    static func freshHost() -> HostSnapshot {
        var s = HostSnapshot()
        s.passwd = [PasswdEntry(name: "root", uid: 0, gid: 0, home: "/root", shell: "/bin/bash")]
        s.groups = [
            GroupEntry(name: "root", gid: 0, members: []), GroupEntry(name: "sudo", gid: 27, members: []),
            GroupEntry(name: "docker", gid: 998, members: []), GroupEntry(name: "video", gid: 44, members: []),
        ]
        s.paths["/etc/systemd/system/t3-serve@.service"] = PathState(kind: .file, mode: 0o644)
        return s
    }

    func plan(_ host: HostSnapshot) throws -> (Plan, DesiredState) { try plan(Self.roster, host) }

    func plan(_ yaml: String, _ host: HostSnapshot, settings: Settings = Settings()) throws -> (Plan, DesiredState) {
        let r = try Roster.parse(Data(yaml.utf8), file: "roster.yaml", settings: settings)
        let d = desire(roster: r, settings: settings, snapshot: host)
        #expect(d.diagnostics.isEmpty, "\(d.diagnostics)")
        return (Planner(settings: settings).plan(desired: d, observed: host), d)
    }

    /// A snapshot of the host after a converged apply of `plan`'s desired state.
    func converged(_ host: HostSnapshot, _ d: DesiredState, settings: Settings = Settings()) -> HostSnapshot {
        var s = host
        for u in d.users {
            if s.account(u.osUser) == nil {
                s.passwd.append(PasswdEntry(name: u.osUser, uid: u.uid, gid: u.uid, home: u.home, shell: "/bin/bash"))
            }
            for g in u.groups {
                if let i = s.groups.firstIndex(where: { $0.name == g }) {
                    if !s.groups[i].members.contains(u.osUser) { s.groups[i].members.append(u.osUser) }
                } else {
                    s.groups.append(GroupEntry(name: g, gid: 900 + s.groups.count, members: [u.osUser]))
                }
            }
            s.paths[u.home] = PathState(kind: .directory, mode: 0o700, uid: u.uid, gid: u.uid)
            s.paths[u.home + "/.claude"] = PathState(kind: .directory, mode: 0o700, uid: u.uid, gid: u.uid)
            for item in settings.inheritedItems {
                s.paths["\(u.home)/.claude/\(item)"] = PathState(
                    kind: .symlink,
                    linkTarget: "\(settings.configBase)/\(item)"
                )
            }
            let planner = Planner(settings: settings)
            if let content = planner.sliceDropInContent(for: u.entry) {
                s.paths[planner.sliceDropInPath(uid: u.uid)] = PathState(kind: .file, mode: 0o644, content: content)
            }
            for unit in settings.units {
                s.paths[planner.dropInPath(unit, u.osUser)] = PathState(
                    kind: .file,
                    mode: 0o644,
                    content: planner.dropInContent(unit, u)
                )
                s.enabledUnits.insert(unit.instance(u.osUser))
            }
        }
        s.paths[settings.derived.ttydUserMap] = PathState(kind: .file, mode: 0o644, content: d.ttydUserMap)
        s.paths[settings.derived.dispatch] = PathState(kind: .file, mode: 0o644, content: d.dispatch)
        s.state.ports = d.ports
        return s
    }

    @Test func freshHostGetsEverythingInOrder() throws {
        let (p, d) = try plan(Self.freshHost())
        #expect(
            p.changes.map(\.id.description) == [
                "group:workstation", "group:workstation-power-user", "group:workstation-namespace-owner",
                "account:alice", "dir:/home/alice/.claude", "link:/home/alice/.claude/skills",
                "link:/home/alice/.claude/rules",
                "link:/home/alice/.claude/agents", "link:/home/alice/.claude/commands",
                "account:bob", "dir:/home/bob/.claude", "link:/home/bob/.claude/skills", "link:/home/bob/.claude/rules",
                "link:/home/bob/.claude/agents", "link:/home/bob/.claude/commands",
                "file:/etc/ttyd-user-map", "file:/etc/t3-serve/dispatch.json",
                "file:/etc/systemd/system/user-1000.slice.d/50-workstation.conf",
                "file:/etc/systemd/system/user-1001.slice.d/50-workstation.conf",
                "file:/etc/systemd/system/t3-serve@alice.service.d/50-workstation.conf", "unit:t3-serve@alice.service",
                "file:/etc/systemd/system/t3-serve@bob.service.d/50-workstation.conf", "unit:t3-serve@bob.service",
            ]
        )
        #expect(p.changes.allSatisfy { $0.kind == .create })
        #expect(d.users.map(\.uid) == [1000, 1001])
        #expect(d.users.first?.groups == ["workstation", "workstation-power-user"])
        // The adopted admin is routed but never provisioned.
        #expect(!p.changes.contains { $0.user == "carol" })
        #expect(String(decoding: d.ttydUserMap, as: UTF8.self).hasSuffix("alice.smith=alice\nbob=bob\ncarol=carol\n"))
        let map = try DispatchMap.decode(d.dispatch)
        #expect(
            map.users["carol"]?.port == 3774 && map.users["alice.smith"]?.port == 3775
                && map.users["bob"]?.osUser == "bob"
        )
        // No group, account or home was given sudo or docker.
        if case .createAccount(let spec) = p.changes.first(where: { $0.id == "account:alice" })?.action {
            #expect(!spec.groups.contains("sudo") && !spec.groups.contains("docker"))
        } else {
            Issue.record("account change has no createAccount action")
        }
    }

    @Test func convergedHostPlansToNothing() throws {
        let (_, d) = try plan(Self.freshHost())
        let (p, _) = try plan(converged(Self.freshHost(), d))
        #expect(p.changes.isEmpty, "\(PlanRenderer.human(p))")
    }

    @Test func existingUserKeepsForeignStateAndGetsOnlyWhatIsMissing() throws {
        var host = Self.freshHost()
        host.passwd.append(PasswdEntry(name: "alice", uid: 1500, gid: 1500, home: "/home/alice", shell: "/bin/zsh"))
        host.groups[host.groups.firstIndex { $0.name == "docker" }!].members = ["alice"]
        host.groups[host.groups.firstIndex { $0.name == "video" }!].members = ["alice"]
        host.paths["/home/alice"] = PathState(kind: .directory, mode: 0o750, uid: 1500, gid: 1500)
        host.paths["/home/alice/.claude"] = PathState(kind: .directory, mode: 0o700, uid: 1500, gid: 1500)
        host.paths["/home/alice/.claude/skills"] = PathState(kind: .directory, mode: 0o755, uid: 1500, gid: 1500)
        host.paths["/home/alice/.claude/rules"] = PathState(kind: .symlink, linkTarget: "/home/carol/.claude/rules")
        let yaml = "users:\n  alice: { authentik_user: alice, k8s_user: alice, tier: power-user }\n"
        let (p, d) = try plan(yaml, host)
        #expect(d.users.first?.uid == 1500)
        let byId = Dictionary(uniqueKeysWithValues: p.changes.map { ($0.id, $0) })
        #expect(byId["account:alice"] == nil)
        #expect(byId["membership:alice:workstation"]?.kind == .create)
        #expect(byId["membership:alice:workstation-power-user"]?.kind == .create)
        // docker is a violation: pending revoke with its command, never run by apply.
        let violation = try #require(byId["violation:alice:docker"])
        #expect(
            violation.kind == .pending && violation.safety == .revoke && violation.command == "gpasswd -d alice docker"
        )
        #expect(!p.actionable.contains { $0.id == violation.id })
        // A hand-made membership (video) is not touched at all.
        #expect(!p.changes.contains { $0.id.description.contains("video") })
        // The home is tightened, not chowned.
        #expect(byId["home:alice"]?.fields == [FieldChange("mode", "0750", "0700")])
        if case .secureHome(_, _, let chownTo, let mode) = byId["home:alice"]?.action {
            #expect(chownTo == nil && mode == 0o700)
        }
        // A real skills directory and a foreign link are conflicts, left alone.
        #expect(byId["link:/home/alice/.claude/skills"]?.kind == .conflict)
        #expect(byId["link:/home/alice/.claude/rules"]?.kind == .conflict)
        #expect(byId["link:/home/alice/.claude/agents"]?.kind == .create)
        #expect(byId["dir:/home/alice/.claude"] == nil)
    }

    @Test func rootOwnedHomeIsChownedAndTightened() throws {
        var host = Self.freshHost()
        host.passwd.append(PasswdEntry(name: "alice", uid: 1000, gid: 1000, home: "/home/alice", shell: "/bin/bash"))
        host.paths["/home/alice"] = PathState(kind: .directory, mode: 0o755, uid: 0, gid: 0)
        let (p, _) = try plan("users:\n  alice: { authentik_user: alice, k8s_user: alice, tier: power-user }\n", host)
        let home = try #require(p.changes.first { $0.id == "home:alice" })
        #expect(home.safety == .tighten)
        #expect(home.action == .secureHome(user: "alice", path: "/home/alice", chownTo: 1000, mode: 0o700))
    }

    @Test func homeOwnedBySomeoneElseIsAConflict() throws {
        var host = Self.freshHost()
        host.passwd.append(PasswdEntry(name: "alice", uid: 1000, gid: 1000, home: "/home/alice", shell: "/bin/bash"))
        host.paths["/home/alice"] = PathState(kind: .directory, mode: 0o700, uid: 1001, gid: 1001)
        let (p, _) = try plan("users:\n  alice: { authentik_user: alice, k8s_user: alice, tier: power-user }\n", host)
        #expect(p.changes.first { $0.id == "home:alice" }?.kind == .conflict)
    }

    @Test func liveDispatchPortsAreAdoptedAndNewOnesAvoidThem() throws {
        var host = Self.freshHost()
        host.paths["/etc/t3-serve/dispatch.json"] = PathState(
            kind: .file,
            mode: 0o644,
            content: Data(#"{"alice.smith": {"port": 3775}, "bob": 3774}"#.utf8)
        )
        let (_, d) = try plan(host)
        #expect(d.ports["t3-serve@"]?["alice"] == 3775)
        #expect(d.ports["t3-serve@"]?["bob"] == 3774)
        #expect(d.ports["t3-serve@"]?["carol"] == 3776)
    }

    @Test func recordedAndPinnedPortsWin() throws {
        var host = Self.freshHost()
        host.state.ports = ["t3-serve@": ["alice": 3800]]
        let yaml = Self.roster.replacingOccurrences(
            of: "namespaces: [team-bob] }",
            with: "namespaces: [team-bob], port: 3900 }"
        )
        let (_, d) = try plan(yaml, host)
        #expect(d.ports["t3-serve@"]?["alice"] == 3800)
        #expect(d.ports["t3-serve@"]?["bob"] == 3900)
    }

    @Test func departedUserLeavesDerivedFilesAndIsOffboardPending() throws {
        let (_, d) = try plan(Self.freshHost())
        var host = converged(Self.freshHost(), d)
        host.state.accounts = ["alice": .init(uid: 1000, created: true), "bob": .init(uid: 1001, created: true)]
        let yaml = Self.roster.split(separator: "\n").filter { !$0.contains("bob") }.joined(separator: "\n")
        let (p, d2) = try plan(yaml, host)
        let pending = try #require(p.changes.first { $0.id == "offboard:bob" })
        #expect(pending.kind == .pending && pending.command == "workstation offboard bob --stage cut")
        #expect(!String(decoding: d2.ttydUserMap, as: UTF8.self).contains("bob"))
        #expect(try DispatchMap.decode(d2.dispatch).users["bob"] == nil)
        #expect(
            p.actionable.map(\.id.description).sorted() == [
                "file:/etc/t3-serve/dispatch.json", "file:/etc/ttyd-user-map",
            ]
        )
        // bob's port stays reserved.
        #expect(d2.ports["t3-serve@"]?["bob"] == 3776)
    }

    @Test func lockoutGuardRefusesDroppingAnAdminAndNamesBothFixes() throws {
        let (_, d) = try plan(Self.freshHost())
        var host = converged(Self.freshHost(), d)
        host.groups[host.groups.firstIndex { $0.name == "sudo" }!].members = ["carol"]
        let withoutCarol = Self.roster.split(separator: "\n").filter { !$0.contains("carol") }.joined(separator: "\n")
        let (p, _) = try plan(withoutCarol, host)
        let refusal = try #require(p.refusals.first)
        #expect(refusal.gate == .lockoutGuard)
        #expect(
            refusal.message.contains("'carol'") && refusal.message.contains("tier: admin")
                && refusal.message.contains("admins:")
        )
        // Declaring carol in settings instead is accepted, and keeps her entry.
        var settings = Settings()
        settings.admins = [AdminDeclaration(osUser: "carol", authentikUser: "carol")]
        let (p2, d2) = try plan(withoutCarol, host, settings: settings)
        #expect(p2.refusals.isEmpty)
        #expect(String(decoding: d2.ttydUserMap, as: UTF8.self).contains("carol=carol"))
    }

    @Test func pinnedUidHeldByAnotherAccountIsALocatedError() throws {
        var host = Self.freshHost()
        host.passwd.append(PasswdEntry(name: "svc", uid: 1500, gid: 1500, home: "/srv", shell: "/bin/false"))
        let r = try Roster.parse(
            Data("users:\n  alice: { authentik_user: a, k8s_user: a, tier: power-user, uid: 1500 }\n".utf8),
            file: "roster.yaml"
        )
        let d = desire(roster: r, settings: Settings(), snapshot: host)
        #expect(
            d.diagnostics.map(\.description) == [
                "roster.yaml:2:3: error: uid 1500 of 'alice' is already used by account 'svc'; pick a free uid or remove the pin"
            ]
        )
    }

    @Test func retiredAndTakenUidsAreNeverHandedOut() throws {
        var host = Self.freshHost()
        host.state.retiredUids = [1000]
        host.groups.append(GroupEntry(name: "team", gid: 1001, members: []))
        let (_, d) = try plan(host)
        #expect(d.users.map(\.uid) == [1002, 1003])
    }

    @Test func missingTemplateUnitIsAConflictNotAFailure() throws {
        var host = Self.freshHost()
        host.paths = [:]
        let (p, _) = try plan(host)
        let unit = try #require(p.changes.first { $0.id == "unit:t3-serve@alice.service" })
        #expect(unit.kind == .conflict && unit.action == nil)
    }

    @Test func humanRendererGroupsPerUserWithSymbolsAndSummary() throws {
        var host = Self.freshHost()
        host.passwd.append(PasswdEntry(name: "alice", uid: 1000, gid: 1000, home: "/home/alice", shell: "/bin/bash"))
        host.paths["/home/alice"] = PathState(kind: .directory, mode: 0o755, uid: 1000, gid: 1000)
        host.groups[host.groups.firstIndex { $0.name == "sudo" }!].members = ["alice"]
        let (p, _) = try plan("users:\n  alice: { authentik_user: alice, k8s_user: alice, tier: power-user }\n", host)
        let text = PlanRenderer.human(p)
        #expect(text.contains("\nalice\n  ! alice is in group sudo"))
        #expect(text.contains("  ~ secure home /home/alice [tighten]\n      mode: 0755 -> 0700\n"))
        #expect(text.contains("  ! alice is in group sudo, which a power-user must not hold [revoke]"))
        #expect(text.contains("      run: gpasswd -d alice sudo\n"))
        #expect(text.contains("Plan: 14 to create, 1 to update, 1 pending revoke/destroy, 0 conflicts.\n"))
        let json = try #require(
            try JSONSerialization.jsonObject(with: Data(PlanRenderer.json(p).utf8)) as? [String: Any]
        )
        #expect((json["summary"] as? [String: Int])?["pending"] == 1)
    }
}

extension PlannerFixtureTests {
    @Test func exhaustedPortRangeIsALocatedError() throws {
        var settings = Settings()
        settings.units = [PerUserUnit(template: "t3-serve@", portRange: 3774...3775, portEnvironment: "T3CODE_PORT")]
        let r = try Roster.parse(Data(Self.roster.utf8), file: "roster.yaml", settings: settings)
        let d = desire(roster: r, settings: settings, snapshot: Self.freshHost())
        #expect(
            d.diagnostics.map(\.description) == [
                "roster.yaml:4:3: error: no free port left for 'bob' in the port_range of t3-serve@ (3774-3775, 2 ports); widen port_range in workstation.yaml"
            ]
        )
    }
}

extension PlannerFixtureTests {
    @Test func lineDiffsReadInFileOrder() {
        let before = "a\nb\nc\nd\n"
        let after = "a\nx\nd\ny\n"
        #expect(
            lineDiff(before, after) == [
                FieldChange("line", "b", nil), FieldChange("line", "c", nil),
                FieldChange("line", nil, "x"), FieldChange("line", nil, "y"),
            ]
        )
    }
}

/// A large roster is planned in slices on several threads; the joined slices must be the plan of one pass.
@Suite struct PlannerSliceTests {
    @Test func slicedPlanningEqualsOnePass() throws {
        var host = PlannerFixtureTests.freshHost()
        // Some people exist already (with a hand-made forbidden membership), some are new: every kind of change.
        let yaml =
            "users:\n"
            + (0..<230).map { "  u\($0): { authentik_user: u\($0), k8s_user: u\($0), tier: power-user }" }.joined(
                separator: "\n"
            )
        for i in stride(from: 0, to: 230, by: 3) {
            host.passwd.append(
                PasswdEntry(name: "u\(i)", uid: 2000 + i, gid: 2000 + i, home: "/home/u\(i)", shell: "/bin/bash")
            )
            host.paths["/home/u\(i)"] = PathState(kind: .directory, mode: 0o755, uid: 0, gid: 0)
        }
        host.groups[1].members = ["u3", "u30"]
        var settings = Settings()
        settings.units[0].portRange = 20000...29999
        let roster = try Roster.parse(Data(yaml.utf8), file: "roster.yaml", settings: settings)
        let d = desire(roster: roster, settings: settings, snapshot: host)
        #expect(d.diagnostics.isEmpty)
        let planner = Planner(settings: settings)
        let one = planner.perUserSlices(d.users, host, slices: 1)
        #expect(one.count == 1)
        for n in [2, 3, 7] {
            let parts = planner.perUserSlices(d.users, host, slices: n)
            #expect(parts.count == n)
            #expect(parts.flatMap(\.plan.changes) == one[0].plan.changes)
            #expect(parts.flatMap(\.budgets) == one[0].budgets)
            #expect(parts.flatMap(\.units) == one[0].units)
            #expect(Array(Set(parts.flatMap(\.plan.notes))).sorted() == Array(Set(one[0].plan.notes)).sorted())
        }
        #expect(one[0].plan.changes.contains { $0.id == "violation:u3:sudo" })
        #expect(one[0].plan.changes.contains { $0.id == "account:u1" })
        #expect(one[0].units.contains { $0.id == "unit:t3-serve@u1.service" })
        // And the whole plan (which slices above 200 people) has them in roster order, budgets and units last.
        let full = planner.plan(desired: d, observed: host)
        let accounts = full.changes.filter { $0.id.description.hasPrefix("account:") }.map(\.id.description)
        #expect(
            accounts == one[0].plan.changes.filter { $0.id.description.hasPrefix("account:") }.map(\.id.description)
        )
        #expect(Array(full.changes.suffix(one[0].units.count)) == one[0].units)
    }
}

/// Suggested commands in messages act on the run's own inputs and root.
@Suite struct SuggestedCommandTests {
    @Test(arguments: [
        ("run workstation apply to regenerate them", "run workstation apply --root /r to regenerate them"),
        ("fix: workstation setup-host --install-packages", "fix: workstation setup-host --root /r --install-packages"),
        ("`workstation offboard bob --stage cut`", "`workstation offboard --root /r bob --stage cut`"),
        ("workstation status", "workstation status --root /r"),
        ("then workstation apply.", "then workstation apply --root /r."),
        ("workstation plan, then workstation apply", "workstation plan --root /r, then workstation apply --root /r"),
        // Not commands: a path, a unit name, another word, an unknown subcommand, one that already carries them.
        ("see /etc/workstation apply", "see /etc/workstation apply"),
        ("workstation-dispatch apply", "workstation-dispatch apply"),
        ("the workstation applies", "the workstation applies"),
        ("workstation dispatch --listen x", "workstation dispatch --listen x"),
        ("workstation apply --root /r", "workstation apply --root /r"),
        ("", ""),
    ])
    func carriesTheOptions(text: String, expected: String) {
        #expect(SuggestedCommand.carrying(" --root /r", in: text) == expected)
    }

    @Test func noOptionsLeaveTheTextAlone() {
        #expect(SuggestedCommand.carrying("", in: "run workstation apply") == "run workstation apply")
    }
}

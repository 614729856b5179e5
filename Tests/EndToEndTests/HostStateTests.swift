import Foundation
import Testing
import WorkstationCore
import WorkstationHost

#if canImport(Glibc)
import Glibc
#endif

/// Host state that existed before workstation: it survives, or is taken over only as the safety classes allow.
@Suite(.serialized) struct HostStateTests {
    func tool(_ name: String, prefix root: TempRoot, _ args: [String]) throws {
        let r = try CLI.accountTool(name, prefix: root.path, args)
        try #require(r.status == 0, "\(name) \(args.joined(separator: " ")): \(r.stderr)")
    }

    func members(_ root: TempRoot, _ group: String) -> [String] {
        AccountDatabase.group(Data((root.read("/etc/group") ?? "").utf8)).first { $0.name == group }?.members ?? []
    }

    func apply(_ root: TempRoot, _ roster: String, _ inputs: TempRoot) throws -> CLIResult {
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

/// Readers of the derived files (the dispatcher, the ttyd login shim) see only whole versions while apply rewrites
/// them, and an invalid roster leaves the last good versions in place.
@Suite(.serialized, .enabled(if: slowSuitesEnabled, "slow: skipped while WORKSTATION_SKIP_SLOW is set"))
struct RegenerationReaderTests {
    final class Reader: @unchecked Sendable {
        let paths: [String]
        let valid: [[Data]]
        let lock = NSLock()
        var reads = 0
        var bad: [String] = []
        var seen: [Set<Int>]
        var stop = false
        init(paths: [String], valid: [[Data]]) {
            self.paths = paths
            self.valid = valid
            seen = paths.map { _ in [] }
        }
        func loop() {
            while !lock.withLock({ stop }) {
                for (i, p) in paths.enumerated() {
                    guard let d = FileManager.default.contents(atPath: p) else {
                        lock.withLock { bad.append("\(p) missing") }
                        continue
                    }
                    if let v = valid[i].firstIndex(of: d) {
                        lock.withLock {
                            seen[i].insert(v)
                            reads += 1
                        }
                    } else {
                        lock.withLock { bad.append("\(p): \(d.count) bytes, not a whole version") }
                    }
                }
            }
        }
    }

    @Test func readersSeeWholeVersionsAcrossAThousandRegenerations() throws {
        let dir = try TempRoot()
        let inputs = try TempRoot()
        let root = HostRoot(dir.path)
        try Fixture.seed(dir)
        let count = 8
        try inputs.write("/a.yaml", Fixture.roster(count: count, authentikPrefix: "id-"))
        try inputs.write("/b.yaml", Fixture.roster(count: count, authentikPrefix: "ak-"))
        let a = try Engine.load(InputPaths(roster: inputs.file("/a.yaml"), settings: Fixture.settingsPath), root: root)
        let b = try Engine.load(InputPaths(roster: inputs.file("/b.yaml"), settings: Fixture.settingsPath), root: root)
        let runner = ProcessRunner()
        let files = ["/etc/ttyd-user-map", "/etc/t3-serve/dispatch.json"]
        var versions: [[Data]] = [[], []]
        for loaded in [a, b] {
            let o = try Engine.apply(loaded, root: root, runner: runner)
            try #require(o.succeeded, "\(o.report.failed.map { $0.error })")
            for (i, f) in files.enumerated() { versions[i].append(try #require(root.read(f))) }
        }
        #expect(versions[0][0] != versions[0][1] && versions[1][0] != versions[1][1])
        let reader = Reader(paths: files.map(root.path), valid: versions)
        let done = DispatchSemaphore(value: 0)
        Thread {
            reader.loop()
            done.signal()
        }.start()
        let spawnedBefore = runner.spawned
        for i in 0..<1000 {
            let o = try Engine.apply(i % 2 == 0 ? a : b, root: root, runner: runner)
            if !o.succeeded {
                Issue.record("regeneration \(i) failed: \(o.report.failed.map { $0.error })")
                break
            }
        }
        reader.lock.withLock { reader.stop = true }
        done.wait()
        #expect(
            runner.spawned == spawnedBefore,
            "regenerating derived files spawned \(runner.spawned - spawnedBefore) processes"
        )
        #expect(reader.bad.isEmpty, "\(reader.bad.count) bad reads, first: \(reader.bad.prefix(5))")
        #expect(reader.reads > 1000, "the reader ran only \(reader.reads) times")
        #expect(
            reader.seen.allSatisfy { $0 == [0, 1] },
            "the reader should have seen both versions of both files: \(reader.seen)"
        )

        // An invalid roster: error, and the files (indeed the whole root) stay as the last good apply left them.
        let before = RootSnapshot(dir.path)
        try inputs.write(
            "/bad.yaml",
            Fixture.roster(count: count) + "  Bad User: { authentik_user: x, k8s_user: x, tier: power-user }\n"
        )
        let r = try CLI.run([
            "apply", "--roster", inputs.file("/bad.yaml"), "--settings", Fixture.settingsPath, "--root", dir.path,
        ])
        #expect(r.status == 1 && r.stderr.contains("contains whitespace"), "\(r.stderr)")
        #expect(RootSnapshot(dir.path) == before)
    }
}

/// A converged host: plan and apply spawn nothing and change nothing but workstation's own bookkeeping.
@Suite struct NoOpRunTests {
    @Test func noOpPlanAndApplySpawnNoProcess() throws {
        let root = try TempRoot()
        let inputs = try TempRoot()
        try Fixture.seed(root)
        try inputs.write("/r.yaml", Fixture.roster(count: 12))
        let args = [
            "--roster", inputs.file("/r.yaml"), "--settings", Fixture.settingsPath, "--root", root.path, "--json",
            "--timings",
        ]
        let first = try CLI.run(["apply"] + args)
        try #require(first.status == 0, "\(first.stderr)")
        let firstJSON = try #require(try JSONSerialization.jsonObject(with: Data(first.stdout.utf8)) as? [String: Any])
        let spawned = firstJSON["processes_spawned"] as? Int ?? 0
        #expect(
            spawned >= 2 && spawned < 12,
            "the first apply creates every account in one systemd-sysusers run and enables every unit in one systemctl: \(spawned)"
        )
        let firstCPU = try #require(firstJSON["cpu_ms"] as? [String: Int], "apply --json reports cpu_ms")
        #expect(
            (firstCPU["tools"] ?? 0) > 0 && (firstCPU["workstation"] ?? 0) > 0,
            "cpu_ms of the first apply: \(firstCPU)"
        )
        let before = RootSnapshot(root.path)
        for command in ["plan", "apply"] {
            let r = try CLI.run([command] + args)
            #expect(r.status == 0, "\(r.stderr)")
            let obj = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            #expect(
                obj["processes_spawned"] as? Int == 0,
                "\(command): \(String(describing: obj["processes_spawned"]))"
            )
            #expect(
                (obj["cpu_ms"] as? [String: Int])?["tools"] == 0,
                "\(command): a no-op ran no tool, yet \(String(describing: obj["cpu_ms"]))"
            )
            #expect((obj["summary"] as? [String: Any])?["actionable"] as? Int == 0)
        }
        let changed = before.differences(to: RootSnapshot(root.path)).filter { !$0.contains("/var/lib/workstation/") }
        #expect(changed.isEmpty, "\(changed)")
    }
}

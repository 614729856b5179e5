import Foundation
import Testing
import WorkstationCore
import WorkstationHost

#if canImport(Glibc)
import Glibc
#endif

/// A `workstation` process started in the background, so a test can kill it or race another against it.
final class BackgroundRun: @unchecked Sendable {
    let process = Process()
    private let out = Pipe(), err = Pipe()
    private var outData = Data(), errData = Data()
    private let group = DispatchGroup()

    init(_ args: [String]) throws {
        process.executableURL = URL(fileURLWithPath: CLI.binary)
        process.arguments = args
        var env = ProcessInfo.processInfo.environment
        env["NO_COLOR"] = "1"
        process.environment = env
        process.standardOutput = out
        process.standardError = err
        try process.run()
        for (pipe, isOut) in [(out, true), (err, false)] {
            group.enter()
            DispatchQueue.global().async {
                let d = pipe.fileHandleForReading.readDataToEndOfFile()
                if isOut { self.outData = d } else { self.errData = d }
                self.group.leave()
            }
        }
    }

    var pid: pid_t { process.processIdentifier }

    /// `kill -9` the process; its children (an account tool in flight, run with --prefix) are left to finish, as after a real crash.
    func kill9() { kill(pid, SIGKILL) }

    func wait() -> CLIResult {
        process.waitUntilExit()
        group.wait()
        let status =
            process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
        return CLIResult(
            status: status,
            stdout: String(decoding: outData, as: UTF8.self),
            stderr: String(decoding: errData, as: UTF8.self)
        )
    }
}

/// Waits until no process mentions `root` on its command line (the orphaned tools of a killed apply).
func waitForOrphans(of root: String) {
    for _ in 0..<600 {
        let busy = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).contains { pid in
            guard Int32(pid) != nil, Int32(pid) != getpid(),
                let d = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline")
            else { return false }
            let cmd = String(decoding: d, as: UTF8.self)
            return cmd.contains(root) && !cmd.contains("swift-testing") && !cmd.contains("xctest")
        }
        if !busy { return }
        usleep(20_000)
    }
}

/// Invariants that must hold at every instant, even right after a `kill -9`.
enum Invariants {
    /// Every line of passwd/group/shadow has its fields, and no name appears twice.
    static func accountDatabasesParse(_ root: TempRoot) -> [String] {
        var problems: [String] = []
        for (file, fields) in [("/etc/passwd", 7), ("/etc/group", 4), ("/etc/shadow", 9), ("/etc/gshadow", 4)] {
            guard let text = root.read(file) else {
                problems.append("\(file) is missing")
                continue
            }
            if !text.isEmpty && !text.hasSuffix("\n") { problems.append("\(file) does not end in a newline (torn)") }
            var names = Set<String>()
            for line in text.split(separator: "\n") {
                let f = line.split(separator: ":", omittingEmptySubsequences: false)
                if f.count != fields { problems.append("\(file): malformed line '\(line)'") }
                if !names.insert(String(f[0])).inserted { problems.append("\(file): \(f[0]) appears twice") }
            }
        }
        return problems
    }

    /// Every journal line is a whole JSON entry. `kill -9` cannot tear a line (each is one `write(2)` with
    /// `O_APPEND`), so this is strict: a torn or partial line fails.
    static func journalParses(_ root: TempRoot) -> [String] {
        guard let data = FileManager.default.contents(atPath: root.file("/var/lib/workstation/journal.jsonl")),
            !data.isEmpty
        else { return [] }
        var problems: [String] = []
        if data.last != 0x0A { problems.append("journal does not end in a newline (torn last line)") }
        let read = Journal.read(data)
        if let torn = read.tornTail { problems.append("journal has a torn last line: \(torn.prefix(200))") }
        for bad in read.malformed {
            problems.append("journal line \(bad.line) is not an entry: \(bad.text.prefix(200))")
        }
        return problems
    }

    static func stateParses(_ root: TempRoot) -> [String] {
        do {
            _ = try StateStore(root: HostRoot(root.path), settings: Settings()).load()
            return []
        } catch {
            return ["state.json: \(error)"]
        }
    }

    /// A drop-in is whole: exactly the five lines workstation writes.
    static func dropInsWhole(_ root: TempRoot) -> [String] {
        let dir = root.file("/etc/systemd/system")
        var problems: [String] = []
        for d in ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []) where d.hasSuffix(".service.d") {
            guard let text = root.read("/etc/systemd/system/\(d)/50-workstation.conf") else { continue }
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            let ok =
                lines.count == 6 && lines[0].hasPrefix("# generated by workstation") && lines[1] == "[Service]"
                && lines[2].hasPrefix("Slice=user-") && lines[3].hasPrefix("Environment=T3CODE_PORT=")
                && lines[4].hasPrefix("TasksMax=") && lines[5].isEmpty
            if !ok { problems.append("drop-in \(d) is torn: \(text.debugDescription)") }
        }
        return problems
    }
}

@Suite(.serialized, .enabled(if: slowSuitesEnabled, "slow: skipped while WORKSTATION_SKIP_SLOW is set"))
struct FaultTests {
    /// kill -9 an apply of 200 users at many seeded moments; after each kill every derived file is one complete
    /// version (the previous or the next roster's), the account databases, journal and state parse; at the end one
    /// uninterrupted apply converges and a second plan is empty.
    @Test func killNineAtRandomMomentsNeverTearsAndTheNextApplyConverges() throws {
        let seed = testSeed("killNine")
        var rng = SeededGenerator(seed: seed)
        let root = try TempRoot()
        let inputs = try TempRoot()
        try Fixture.seed(root)
        let count = 200
        // Two rosters with the same people and different IdP names: each run rewrites both derived files.
        try inputs.write("/a.yaml", Fixture.roster(count: count, authentikPrefix: "id-"))
        try inputs.write("/b.yaml", Fixture.roster(count: count, authentikPrefix: "ak-"))
        // The example settings have 100 ports; 200 people need a wider range.
        try inputs.write(
            "/s.yaml",
            "units:\n  - { template: t3-serve@, port_range: [20000, 20999], port_env: T3CODE_PORT }\ncapacity:\n  max_active_users: 10000\n"
        )
        let settings = inputs.file("/s.yaml")
        func ttydMap(_ prefix: String?) -> String {
            DerivedFileRenderer.header
                + (prefix.map { p in (0..<count).map { String(format: "\(p)u%04d=u%04d\n", $0, $0) }.sorted().joined() }
                    ?? "")
        }
        let validMaps = [ttydMap(nil), ttydMap("id-"), ttydMap("ak-")]
        let validDispatchKeys: [Set<String>] = [
            [], Set((0..<count).map { String(format: "id-u%04d", $0) }),
            Set((0..<count).map { String(format: "ak-u%04d", $0) }),
        ]

        func checkInvariants(_ when: String) {
            if let map = root.read("/etc/ttyd-user-map") {
                #expect(
                    validMaps.contains(map),
                    "seed \(seed), \(when): /etc/ttyd-user-map is not a complete version (\(map.utf8.count) bytes)"
                )
            }
            if let data = FileManager.default.contents(atPath: root.file("/etc/t3-serve/dispatch.json")) {
                let map = try? DispatchMap.decode(data)
                #expect(map != nil, "seed \(seed), \(when): dispatch.json does not parse (\(data.count) bytes)")
                if let map {
                    #expect(
                        validDispatchKeys.contains(Set(map.users.keys)),
                        "seed \(seed), \(when): dispatch.json is a mix of versions"
                    )
                }
            }
            let problems =
                Invariants.accountDatabasesParse(root) + Invariants.journalParses(root) + Invariants.stateParses(root)
                + Invariants.dropInsWhole(root)
            #expect(problems.isEmpty, "seed \(seed), \(when):\n\(problems.prefix(10).joined(separator: "\n"))")
        }

        // Phase 1 kills land while accounts are created; after one uninterrupted apply converges, phase 2 kills land
        // in short runs that only rewrite the derived files (plan, write, verify, save state).
        var killed = [0, 0]
        func killLoop(phase: Int, runs: Int, delays: ClosedRange<UInt32>) throws {
            for i in 0..<runs {
                let roster = (i + phase) % 2 == 0 ? "/a.yaml" : "/b.yaml"
                let run = try BackgroundRun([
                    "apply", "--roster", inputs.file(roster), "--settings", settings, "--root", root.path,
                ])
                let delay = UInt32.random(in: delays, using: &rng)
                usleep(delay)
                if run.process.isRunning {
                    run.kill9()
                    killed[phase] += 1
                }
                let r = run.wait()
                waitForOrphans(of: root.path)
                print("killNine: phase \(phase + 1) run \(i) (\(roster)) after \(delay / 1000) ms: exit \(r.status)")
                #expect(
                    r.status == 128 + SIGKILL || r.status == 0,
                    "seed \(seed), phase \(phase + 1) run \(i): \(r.stderr.suffix(1500))"
                )
                checkInvariants("after phase \(phase + 1) run \(i) (killed after \(delay / 1000) ms)")
            }
        }
        try killLoop(phase: 0, runs: 8, delays: 30_000...2_500_000)
        let converge = try CLI.run([
            "apply", "--roster", inputs.file("/a.yaml"), "--settings", settings, "--root", root.path,
        ])
        #expect(
            converge.status == 0,
            "seed \(seed): the apply after the phase 1 kills did not converge: \(converge.stderr.suffix(3000))"
        )
        checkInvariants("after the converging apply")
        try killLoop(phase: 1, runs: 12, delays: 20_000...260_000)
        #expect(
            killed[0] > 0 && killed[1] > 0,
            "seed \(seed): runs killed per phase \(killed); every run finished before its kill"
        )

        let final = try CLI.run([
            "apply", "--roster", inputs.file("/a.yaml"), "--settings", settings, "--root", root.path,
        ])
        #expect(
            final.status == 0,
            "seed \(seed): the apply after the kills did not converge: \(final.stderr.suffix(3000))"
        )
        checkInvariants("after the final apply")
        #expect(root.read("/etc/ttyd-user-map") == validMaps[1])
        let plan = try CLI.run([
            "plan", "--roster", inputs.file("/a.yaml"), "--settings", settings, "--root", root.path,
            "--detailed-exitcode",
        ])
        #expect(plan.status == 0, "seed \(seed): second plan not empty:\n\(plan.stdout.prefix(3000))")
        // Accounts created by a run that was killed are still recorded as created by workstation.
        let state = try StateStore(root: HostRoot(root.path), settings: Settings()).load()
        let notCreated = (0..<count).map { String(format: "u%04d", $0) }.filter { state.accounts[$0]?.created != true }
        #expect(
            notCreated.isEmpty,
            "seed \(seed): accounts workstation created but recorded as adopted or missing: \(notCreated.prefix(10))"
        )
        #expect(
            state.createdGroups.contains("workstation"),
            "seed \(seed): the workstation group it created is not recorded: \(state.createdGroups)"
        )
    }

    /// kill -9 just after the first account appears: the next apply records it as created by workstation,
    /// not adopted (so later stages know it is workstation's to archive).
    @Test func accountCreatedBeforeAKillIsRecordedAsCreated() throws {
        let root = try TempRoot()
        let inputs = try TempRoot()
        try Fixture.seed(root)
        try inputs.write("/r.yaml", Fixture.roster(count: 40))
        let run = try BackgroundRun([
            "apply", "--roster", inputs.file("/r.yaml"), "--settings", Fixture.settingsPath, "--root", root.path,
        ])
        // Kill once u0001 exists: the executor is sequential, so everything for u0000 (account, journal, state) is done.
        for _ in 0..<5000 where root.read("/etc/passwd")?.contains("u0001:") != true { usleep(2_000) }
        run.kill9()
        _ = run.wait()
        waitForOrphans(of: root.path)
        #expect(root.read("/etc/passwd")?.contains("u0000:") == true)
        let again = try CLI.run([
            "apply", "--roster", inputs.file("/r.yaml"), "--settings", Fixture.settingsPath, "--root", root.path,
        ])
        #expect(again.status == 0, "\(again.stderr.suffix(2000))")
        let state = try StateStore(root: HostRoot(root.path), settings: Settings()).load()
        #expect(
            state.accounts["u0000"]?.created == true,
            "u0000 was created by the killed run but is recorded as \(String(describing: state.accounts["u0000"]))"
        )
        #expect(state.addedMemberships["u0000"]?.contains("workstation") == true)
    }

    /// Two applies started together: one holds the lock, the other waits, finds nothing to do, and the host is as
    /// after one apply (each change journaled once, by one run).
    @Test func twoAppliesStartedTogetherRunOneAtATime() throws {
        let root = try TempRoot()
        let inputs = try TempRoot()
        try Fixture.seed(root)
        try inputs.write("/r.yaml", Fixture.roster(count: 20))
        try inputs.write("/s.yaml", "lock_timeout: 600\ncapacity:\n  max_active_users: 10000\n")
        let args = [
            "apply", "--roster", inputs.file("/r.yaml"), "--settings", inputs.file("/s.yaml"), "--root", root.path,
            "--json",
        ]
        let runs = try (0..<3).map { _ in try BackgroundRun(args) }
        let results = runs.map { $0.wait() }
        for r in results { #expect(r.status == 0, "\(r.stderr.suffix(1500))") }
        let applied = results.map { r -> Int in
            let obj = (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [String: Any]
            return (obj?["applied"] as? [Any])?.count ?? -1
        }
        #expect(applied.filter { $0 > 0 }.count == 1, "exactly one run does the work: \(applied)")
        let journal = Journal.read(
            FileManager.default.contents(atPath: root.file("/var/lib/workstation/journal.jsonl")) ?? Data()
        )
        let runIDs = Set(journal.entries.map(\.run))
        #expect(journal.entries.count > 0)
        // The seeding run journaled too; every later entry belongs to one run, and no change id repeats in it.
        let ids = journal.entries.filter {
            $0.change != "file:/etc/ttyd-user-map" && $0.change != "file:/etc/t3-serve/dispatch.json"
        }.map(\.change)
        #expect(
            Set(ids).count == ids.count,
            "a change was applied twice: \(ids.count) entries, \(Set(ids).count) distinct"
        )
        #expect(runIDs.count <= 2, "runs that changed something: \(runIDs.count)")
        #expect(journal.entries.allSatisfy { $0.result == "ok" })
        #expect(Invariants.accountDatabasesParse(root).isEmpty)
        let plan = try CLI.run([
            "plan", "--roster", inputs.file("/r.yaml"), "--settings", inputs.file("/s.yaml"), "--root", root.path,
            "--detailed-exitcode",
        ])
        #expect(plan.status == 0, "\(plan.stdout.prefix(2000))")
    }

    /// The timer's run finds an apply in progress: with no wait allowed it exits 1 with the lock message, prints
    /// no plan and changes nothing; the first apply completes.
    @Test func aSecondInvocationDuringAnApplyExitsOneCleanly() throws {
        let root = try TempRoot()
        let inputs = try TempRoot()
        try Fixture.seed(root)
        try inputs.write("/r.yaml", Fixture.roster(count: 30))
        try inputs.write("/s.yaml", "lock_timeout: 0\n")
        let lockPath = root.file("/var/lib/workstation/lock")
        let first = try BackgroundRun([
            "apply", "--roster", inputs.file("/r.yaml"), "--settings", Fixture.settingsPath, "--root", root.path,
        ])
        // Wait until the first run holds the lock (a shared probe fails while it is held exclusively).
        var held = false
        for _ in 0..<2000 where !held {
            let fd = open(lockPath, O_RDONLY)
            if fd >= 0 {
                if flock(fd, LOCK_SH | LOCK_NB) != 0 { held = true } else { flock(fd, LOCK_UN) }
                close(fd)
            }
            if !held { usleep(2_000) }
        }
        #expect(held, "the first apply never took the lock")
        let second = try CLI.run([
            "apply", "--roster", inputs.file("/r.yaml"), "--settings", inputs.file("/s.yaml"), "--root", root.path,
        ])
        #expect(second.status == 1)
        #expect(second.stderr.contains("another workstation run holds"), "\(second.stderr)")
        #expect(second.stdout.isEmpty, "\(second.stdout)")
        let r = first.wait()
        #expect(r.status == 0, "\(r.stderr.suffix(1500))")
        let plan = try CLI.run([
            "plan", "--roster", inputs.file("/r.yaml"), "--settings", Fixture.settingsPath, "--root", root.path,
            "--detailed-exitcode",
        ])
        #expect(plan.status == 0)
    }

    /// Account creation (useradd --prefix) fails for one user (a group of that name exists), one home is read-only (immutable) and the ttyd map is
    /// immutable: each error names the user (where there is one) and the command or path; every other user converges;
    /// exit 1.
    @Test func failingToolsMidRunNameTheUserAndTheOthersConverge() throws {
        let root = try TempRoot()
        let inputs = try TempRoot()
        try Fixture.seed(root)
        // u0003: useradd -U fails, its group name is taken. u0005: exists, its home cannot be written.
        for (tool, args) in [("groupadd", ["u0003"]), ("useradd", ["-m", "u0005"])] {
            let r = try CLI.accountTool(tool, prefix: root.path, args)
            #expect(r.status == 0, "\(tool) \(args): \(r.stderr)")
        }
        let immutable = [root.file("/home/u0005"), root.file("/etc/ttyd-user-map")]
        defer { for p in immutable { _ = try? CLI.runTool("/usr/bin/chattr", ["-i", p]) } }
        for p in immutable {
            let r = try CLI.runTool("/usr/bin/chattr", ["+i", p])
            try #require(r.status == 0, "chattr +i needs CAP_LINUX_IMMUTABLE: \(r.stderr)")
        }
        try inputs.write("/r.yaml", Fixture.roster(count: 8))
        let r = try CLI.run([
            "apply", "--roster", inputs.file("/r.yaml"), "--settings", Fixture.settingsPath, "--root", root.path,
            "--json",
        ])
        #expect(r.status == 1)
        let errors = r.stderr.split(separator: "\n").filter { $0.hasPrefix("error: ") }
        #expect(
            errors.contains {
                $0.contains("u0003") && $0.contains("useradd") && $0.contains("exited")
                    && $0.contains("group u0003 exists")
            },
            "useradd failure must name u0003 and the command:\n\(r.stderr)"
        )
        #expect(
            errors.contains { $0.contains("u0005") && $0.contains("/home/u0005/.claude") },
            "the home failure must name u0005 and the path:\n\(r.stderr)"
        )
        #expect(errors.contains { $0.contains("/etc/ttyd-user-map") }, "the read-only file must be named:\n\(r.stderr)")
        // Everyone else converged: what is left to do belongs to u0003, u0005 or the immutable file only.
        let plan = try CLI.run([
            "plan", "--roster", inputs.file("/r.yaml"), "--settings", Fixture.settingsPath, "--root", root.path,
            "--json",
        ])
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(plan.stdout.utf8)) as? [String: Any])
        let left = ((obj["changes"] as? [[String: Any]]) ?? []).filter { $0["actionable"] as? Bool == true }
        let owners = Set(left.map { ($0["user"] as? String) ?? ($0["id"] as? String ?? "?") })
        #expect(
            owners.isSubset(of: ["u0003", "u0005", "file:/etc/ttyd-user-map"]),
            "not converged: \(owners.sorted())"
        )
        for u in ["u0000", "u0001", "u0002", "u0004", "u0006", "u0007"] {
            #expect(root.read("/etc/passwd")?.contains("\n\(u):") == true, "\(u) has no account")
            #expect(
                (try? FileManager.default.destinationOfSymbolicLink(atPath: root.file("/home/\(u)/.claude/skills")))
                    != nil,
                "\(u) has no skills link"
            )
        }
    }
}

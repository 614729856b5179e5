import Foundation
import Testing

@testable import WorkstationCore

@Suite struct CapacitySettingsTests {
    @Test func capacitySectionParsesEveryKey() throws {
        let s = try Settings.parse(
            Data(
                """
                capacity:
                  reserve: 10G
                  min_swap: 2G
                  max_active_users: 3
                  budgets:
                    power-user: {high: 5G, max: 6G, swap_max: 1G}
                """.utf8
            ),
            file: "workstation.yaml"
        )
        #expect(s.capacity.reserve == 10 << 30)
        #expect(s.capacity.minSwap == 2 << 30)
        #expect(s.capacity.maxActiveUsers == 3)
        #expect(s.capacity.budgets[.powerUser] == MemoryBudget(high: 5 << 30, max: 6 << 30, swapMax: 1 << 30))
        // Untouched tiers keep their default.
        #expect(s.capacity.budgets[.namespaceOwner] == CapacitySettings().budgets[.namespaceOwner])
    }

    @Test func absentSectionKeepsDefaults() throws {
        let s = try Settings.parse(Data("config_base: /srv/base\n".utf8), file: "workstation.yaml")
        #expect(s.capacity == CapacitySettings())
    }

    @Test(arguments: [
        ("capacity:\n  reserve: lots\n", "workstation.yaml:2:12: error: capacity.reserve 'lots' is not a size"),
        (
            "capacity:\n  max_active_user: 3\n",
            "workstation.yaml:2:3: error: unknown key 'max_active_user' in capacity; did you mean 'max_active_users'?"
        ),
        (
            "capacity:\n  budgets:\n    admin: {high: 1G, max: 2G, swap_max: 0}\n",
            "workstation.yaml:3:5: error: unknown key 'admin' in capacity.budgets"
        ),
        (
            "capacity:\n  budgets:\n    power-user: {high: 3G, max: 2G, swap_max: 0}\n",
            "high (3221225472 bytes) must not exceed max"
        ),
        (
            "capacity:\n  tasks_max:\n    power-user: 10\n",
            "workstation.yaml:3:17: error: capacity.tasks_max.power-user"
        ),
        (
            "capacity:\n  tasks_max:\n    power-user: 5000000\n",
            "workstation.yaml:3:17: error: capacity.tasks_max.power-user"
        ),
        (
            "capacity:\n  tasks_max:\n    power-user: lots\n",
            "workstation.yaml:3:17: error: capacity.tasks_max.power-user"
        ),
        (
            "capacity:\n  tasks_max:\n    admin: 100\n",
            "workstation.yaml:3:5: error: unknown key 'admin' in capacity.tasks_max"
        ),
        ("capacity:\n  tasks_max: 100\n", "workstation.yaml:2:14: error: capacity.tasks_max"),
    ])
    func badCapacityIsLocated(_ yaml: String, _ expected: String) {
        #expect {
            try Settings.parse(Data(yaml.utf8), file: "workstation.yaml")
        } throws: { error in
            "\(error)".contains(expected)
        }
    }
}

@Suite struct KernelFileParserTests {
    @Test func meminfoInKibibytes() throws {
        let m = try #require(
            MemoryInfo.parse(
                Data(
                    """
                    MemTotal:       24684096 kB
                    MemFree:        19231636 kB
                    MemAvailable:   23424008 kB
                    SwapTotal:       8388604 kB
                    SwapFree:        8388000 kB
                    """.utf8
                )
            )
        )
        #expect(m.total == 24_684_096 * 1024)
        #expect(m.available == 23_424_008 * 1024)
        #expect(m.swapTotal == 8_388_604 * 1024 && m.swapFree == 8_388_000 * 1024)
    }

    @Test func meminfoWithoutMemTotalIsUnknown() {
        #expect(MemoryInfo.parse(Data("SwapTotal: 0 kB\n".utf8)) == nil)
        #expect(MemoryInfo.parse(Data()) == nil)
    }

    @Test func pressureLinesBecomeRatiosAndSeconds() throws {
        let p = try #require(
            PressureStall.parse(
                Data(
                    """
                    some avg10=1.50 avg60=0.25 avg300=0.00 total=2500000
                    full avg10=0.10 avg60=0.00 avg300=0.00 total=1000
                    """.utf8
                )
            )
        )
        #expect(p.some?.avg10 == 0.015 && p.some?.avg60 == 0.0025 && p.some?.totalSeconds == 2.5)
        #expect(p.full?.totalSeconds == 0.001)
        #expect(PressureStall.parse(Data("garbage\n".utf8)) == nil)
    }

    @Test func processStatusAndStatWithAwkwardName() throws {
        let status = Data("Name:\tt3 (serve)\nUid:\t1001\t1001\t1001\t1001\nVmRSS:\t  204800 kB\n".utf8)
        let stat = Data("4242 (t3 (serve) x) S 1 4242 4240 34816 4242 4194304\n".utf8)
        let p = try #require(ProcessSample.parse(pid: 4242, status: status, stat: stat))
        #expect(p.name == "t3 (serve)" && p.uid == 1001 && p.residentBytes == 204800 * 1024)
        #expect(p.session == 4240 && p.tty == 34816)
        // Kernel threads have no VmRSS; a status without Uid is not a process we can attribute.
        #expect(
            ProcessSample.parse(pid: 2, status: Data("Name:\tkthreadd\nUid:\t0\t0\t0\t0\n".utf8), stat: nil)?
                .residentBytes == 0
        )
        #expect(ProcessSample.parse(pid: 3, status: Data("Name:\tx\n".utf8), stat: nil) == nil)
    }

    @Test func humanBytesIsExactOrOneDecimal() {
        #expect(humanBytes(4 << 30) == "4G")
        #expect(humanBytes(1536 << 20) == "1.5G")
        #expect(humanBytes(512) == "512B")
    }
}

/// The admission gate, decided on the plan: fixtures of (roster, host snapshot) -> refusals.
@Suite struct AdmissionTests {
    static let gib: UInt64 = 1 << 30

    /// alice exists (uid 1001); bob-dev is new. Budgets: alice 4G (power-user default), bob-dev 3G (namespace-owner).
    func plan(
        memTotal: UInt64,
        swap: UInt64?,
        reserve: UInt64 = 1 << 30,
        maxUsers: Int = 5,
        bobIsNew: Bool = true,
        aliceMemory: MemoryBudget? = nil
    ) throws -> Plan {
        var settings = Settings()
        settings.capacity.reserve = reserve
        settings.capacity.maxActiveUsers = maxUsers
        let roster = Roster(entries: [
            RosterEntry(
                osUser: "alice",
                authentikUser: "alice",
                k8sUser: "alice",
                tier: .powerUser,
                memory: aliceMemory
            ),
            RosterEntry(
                osUser: "bob-dev",
                authentikUser: "bob",
                k8sUser: "bob",
                tier: .namespaceOwner,
                namespaces: ["team-bob"]
            ),
        ])
        var snap = HostSnapshot()
        snap.passwd = [PasswdEntry(name: "alice", uid: 1001, gid: 1001, home: "/home/alice", shell: "/bin/bash")]
        if !bobIsNew {
            snap.passwd.append(
                PasswdEntry(name: "bob-dev", uid: 1002, gid: 1002, home: "/home/bob-dev", shell: "/bin/bash")
            )
        }
        snap.memory = swap.map { MemoryInfo(total: memTotal, available: nil, swapTotal: $0, swapFree: $0) }
        let desired = desire(roster: roster, settings: settings, snapshot: snap)
        return Planner(settings: settings).plan(desired: desired, observed: snap)
    }

    // committed = 4G + 3G = 7G; limit = memory + swap - reserve(1G).
    @Test func exactlyAtTheLimitIsAdmitted() throws {
        let p = try plan(memTotal: 6 * Self.gib, swap: 2 * Self.gib)
        #expect(p.refusals.isEmpty)
    }

    @Test func oneByteOverTheLimitIsRefusedWithTheArithmetic() throws {
        let p = try plan(memTotal: 6 * Self.gib - 1, swap: 2 * Self.gib)
        let r = try #require(p.refusals.first)
        #expect(p.refusals.count == 1)
        #expect(r.gate == .capacity)
        #expect(r.message.contains("onboarding bob-dev"))
        #expect(r.message.contains("1 bytes over the limit"))
        #expect(r.message.contains("alice 4G + bob-dev 3G (new) = 7G (7516192768 bytes)"))
        #expect(r.message.contains("limit = memory 6G + swap 2G - reserve 1G = 7G (7516192767 bytes)"))
        #expect(r.message.contains("--allow-overcommit"))
    }

    @Test func existingPeopleNeverTriggerTheGate() throws {
        // Far over the limit, but nobody is new.
        let p = try plan(
            memTotal: 1 * Self.gib,
            swap: 0,
            bobIsNew: false,
            aliceMemory: MemoryBudget(high: 90 << 30, max: 99 << 30, swapMax: 0)
        )
        #expect(p.refusals.isEmpty)
        #expect(!p.notes.contains { $0.contains("capacity") })
    }

    @Test func rosterMemoryOverridesTheTierDefault() throws {
        // alice's override of 1G makes 1G + 3G = 4G fit a 4G limit exactly.
        let fits = try plan(
            memTotal: 3 * Self.gib,
            swap: 2 * Self.gib,
            aliceMemory: MemoryBudget(high: 1 << 29, max: 1 << 30, swapMax: 0)
        )
        #expect(fits.refusals.isEmpty)
        let over = try plan(memTotal: 3 * Self.gib, swap: 2 * Self.gib)
        #expect(over.refusals.count == 1)
    }

    @Test func unknownCapacityIsSaidAndNotRefused() throws {
        let p = try plan(memTotal: 0, swap: nil)
        #expect(p.refusals.isEmpty)
        #expect(p.notes.contains { $0.hasPrefix("capacity unknown") })
    }

    @Test(arguments: [(2, true), (1, false)])
    func headcountAtMaxIsAdmittedAndOverIsRefused(_ maxUsers: Int, _ admitted: Bool) throws {
        let p = try plan(memTotal: 64 * Self.gib, swap: 8 * Self.gib, maxUsers: maxUsers)
        #expect(p.refusals.isEmpty == admitted)
        if !admitted {
            #expect(
                p.refusals.first?.message.contains("would make 2 non-admin people, over max_active_users 1") == true
            )
        }
    }

    @Test func longListsOfNamesAreAbbreviated() {
        let names = (1...40).map { "u\($0)" }
        #expect(
            abbreviatedList(names, separator: ", ") == (1...12).map { "u\($0)" }.joined(separator: ", ")
                + ", and 28 more"
        )
        #expect(
            abbreviatedList(Array(names.prefix(12)), separator: " + ")
                == (1...12).map { "u\($0)" }.joined(separator: " + ")
        )
    }
}

@Suite struct BudgetPlanTests {
    @Test func sliceDropInIsADerivedChangePerPerson() throws {
        var settings = Settings()
        settings.capacity.budgets[.powerUser] = MemoryBudget(high: 3 << 30, max: 4 << 30, swapMax: 512 << 20)
        let roster = Roster(entries: [
            RosterEntry(osUser: "alice", authentikUser: "alice", k8sUser: "alice", tier: .powerUser)
        ])
        var snap = HostSnapshot()
        snap.passwd = [PasswdEntry(name: "alice", uid: 1001, gid: 1001, home: "/home/alice", shell: "/bin/bash")]
        let planner = Planner(settings: settings)
        let desired = desire(roster: roster, settings: settings, snapshot: snap)
        let path = "/etc/systemd/system/user-1001.slice.d/50-workstation.conf"
        #expect(planner.watchedPaths(desired).contains(WatchedPath(path, readContent: true)))
        let change = try #require(
            planner.plan(desired: desired, observed: snap).changes.first { $0.id.description == "file:\(path)" }
        )
        #expect(change.safety == .derived && change.kind == .create)
        guard case .writeFile(_, let content, let mode) = change.action else {
            Issue.record("not a file write")
            return
        }
        #expect(mode == 0o644)
        #expect(
            String(decoding: content, as: UTF8.self).contains(
                "[Slice]\nMemoryHigh=3G\nMemoryMax=4G\nMemorySwapMax=512M\n"
            )
        )
        // Once written, nothing more to do; a hand edit is regenerated.
        snap.paths[path] = PathState(kind: .file, mode: 0o644, content: content)
        #expect(
            !planner.plan(desired: desired, observed: snap).changes.contains { $0.id.description == "file:\(path)" }
        )
        snap.paths[path] = PathState(kind: .file, mode: 0o644, content: Data("[Slice]\nMemoryMax=infinity\n".utf8))
        #expect(
            planner.plan(desired: desired, observed: snap).changes.first { $0.id.description == "file:\(path)" }?.kind
                == .update
        )
    }
}

/// `TasksMax=` per tier: parsed from settings, written into the slice and the instance drop-ins of provisioned
/// people only, counted from `Threads:`.
@Suite struct TasksMaxTests {
    @Test(arguments: [
        ("", 8192, 4096),
        ("capacity:\n  tasks_max:\n    power-user: 16384\n", 16384, 4096),
        ("capacity:\n  tasks_max: {power-user: 64, namespace-owner: 4194304}\n", 64, 4_194_304),
    ])
    func perTierFromSettings(_ yaml: String, _ power: Int, _ owner: Int) throws {
        let s = try Settings.parse(Data(yaml.utf8), file: "workstation.yaml")
        #expect(s.capacity.tasksMax[.powerUser] == power && s.capacity.tasksMax[.namespaceOwner] == owner)
    }

    @Test func dropInsCarryTheTierLimitAndAdminsHaveNone() throws {
        var settings = Settings()
        settings.capacity.tasksMax[.namespaceOwner] = 1234
        let roster = Roster(entries: [
            RosterEntry(osUser: "alice", authentikUser: "alice", k8sUser: "alice", tier: .powerUser),
            RosterEntry(osUser: "bob", authentikUser: "bob", k8sUser: "bob", tier: .namespaceOwner),
            RosterEntry(osUser: "carol", authentikUser: "carol", k8sUser: "carol", tier: .admin),
        ])
        var snap = HostSnapshot()
        snap.passwd = [
            PasswdEntry(name: "alice", uid: 1001, gid: 1001, home: "/home/alice", shell: "/bin/bash"),
            PasswdEntry(name: "bob", uid: 1002, gid: 1002, home: "/home/bob", shell: "/bin/bash"),
            PasswdEntry(name: "carol", uid: 1003, gid: 1003, home: "/home/carol", shell: "/bin/bash"),
        ]
        let planner = Planner(settings: settings)
        let desired = desire(roster: roster, settings: settings, snapshot: snap)
        let plan = planner.plan(desired: desired, observed: snap)
        func written(_ path: String) -> String? {
            guard
                case .writeFile(_, let content, _) = plan.changes.first(where: { $0.id.description == "file:\(path)" })?
                    .action
            else { return nil }
            return String(decoding: content, as: UTF8.self)
        }
        let cases: [(String, String?)] = [
            ("/etc/systemd/system/user-1001.slice.d/50-workstation.conf", "TasksMax=8192\n"),
            ("/etc/systemd/system/user-1002.slice.d/50-workstation.conf", "TasksMax=1234\n"),
            ("/etc/systemd/system/t3-serve@alice.service.d/50-workstation.conf", "TasksMax=8192\n"),
            ("/etc/systemd/system/t3-serve@bob.service.d/50-workstation.conf", "TasksMax=1234\n"),
        ]
        for (path, line) in cases {
            let text = try #require(written(path), "\(path) is written")
            #expect(line.map { text.contains($0) } == true, "\(path): \(text)")
        }
        #expect(planner.tasksMax(for: roster.entries[2]) == nil)
        if let carol = written("/etc/systemd/system/t3-serve@carol.service.d/50-workstation.conf") {
            #expect(!carol.contains("TasksMax"), "an admin's instance keeps systemd's default: \(carol)")
        }
    }

    @Test(arguments: [("Threads:\t37\n", 37), ("Threads:\t0\n", 1), ("", 1), ("Threads: x\n", 1)])
    func threadsAreTasks(_ line: String, _ expected: Int) throws {
        let status = Data("Name:\tnode\nUid:\t1001\t1001\t1001\t1001\n\(line)VmRSS:\t  100 kB\n".utf8)
        let sample = try #require(ProcessSample.parse(pid: 7, status: status, stat: nil))
        #expect(sample.threads == expected)
    }
}

import Foundation
import Synchronization
import Testing
import WorkstationCore
import WorkstationTestSupport

@testable import WorkstationHost

@Suite struct UnitRestartTests {
    static let instance = "t3-serve@bob-dev.service"
    static let dropIn = "/etc/systemd/system/t3-serve@bob-dev.service.d/50-workstation.conf"

    func run(systemdRunning: Bool) throws -> (RecordingRunner, ApplyReport, TempRoot) {
        let temp = try TempRoot("exec")
        let dir = temp.path
        let runner = RecordingRunner()
        let executor = Executor(
            root: HostRoot(dir),
            settings: Settings(),
            runner: runner,
            journal: nil,
            systemdRunning: systemdRunning,
            state: WorkstationState()
        )
        let content = Data("[Service]\nEnvironment=T3CODE_PORT=3800\n".utf8)
        let plan = Plan(changes: [
            Change(
                id: .file(Self.dropIn),
                user: "bob-dev",
                kind: .update,
                safety: .derived,
                summary: "regenerate drop-in",
                action: .writeFile(path: Self.dropIn, content: content, mode: 0o644)
            ),
            Change(
                id: .restart(Self.instance),
                user: "bob-dev",
                kind: .update,
                safety: .derived,
                summary: "restart",
                action: .restartUnit(name: Self.instance),
                dependsOn: [.file(Self.dropIn)]
            ),
        ])
        let report = executor.apply(plan)
        return (runner, report, temp)
    }

    @Test func restartReloadsOnceThenTryRestartsTheUnit() throws {
        let (runner, report, temp) = try run(systemdRunning: true)
        let dir = temp.path
        #expect(report.failed.isEmpty)
        #expect(runner.commands == [["systemctl", "daemon-reload"], ["systemctl", "try-restart", Self.instance]])
        #expect(
            FileManager.default.contents(atPath: dir + Self.dropIn)
                == Data("[Service]\nEnvironment=T3CODE_PORT=3800\n".utf8)
        )
    }

    @Test func startReloadsFirstWhenUnitFilesChanged() throws {
        let temp = try TempRoot("exec")
        let dir = temp.path
        let runner = RecordingRunner()
        let executor = Executor(
            root: HostRoot(dir),
            settings: Settings(),
            runner: runner,
            journal: nil,
            systemdRunning: true,
            state: WorkstationState()
        )
        let report = executor.apply(
            Plan(changes: [
                Change(
                    id: .file(Self.dropIn),
                    user: "bob-dev",
                    kind: .update,
                    safety: .derived,
                    summary: "regenerate drop-in",
                    action: .writeFile(path: Self.dropIn, content: Data("[Service]\n".utf8), mode: 0o644)
                ),
                Change(
                    id: .unit(Self.instance),
                    user: "bob-dev",
                    kind: .update,
                    safety: .additive,
                    summary: "start",
                    action: .startUnit(name: Self.instance),
                    dependsOn: [.file(Self.dropIn)]
                ),
            ])
        )
        #expect(report.failed.isEmpty)
        #expect(runner.commands == [["systemctl", "daemon-reload"], ["systemctl", "start", Self.instance]])
    }

    @Test func nothingIsRestartedWithoutARunningSystemd() throws {
        let (runner, report, temp) = try run(systemdRunning: false)
        defer { withExtendedLifetime(temp) {} }
        #expect(report.failed.isEmpty)
        #expect(report.applied.count == 2)
        #expect(runner.commands.isEmpty)
    }
}

/// A runner that fails `systemctl VERB` (`enable` or `disable`) for the units named in `failing` (alone or in a
/// batch), answering 0 otherwise.
final class FailingUnitRunner: CommandRunner {
    let verb: String
    let failing: Set<String>
    private let log = Mutex<[[String]]>([])
    init(verb: String = "enable", failing: Set<String>) {
        self.verb = verb
        self.failing = failing
    }
    var commands: [[String]] { log.withLock { $0 } }
    var spawned: Int { 0 }
    func run(_ argv: [String], environment: [String: String], stdin: Data?) throws -> CommandResult {
        log.withLock { $0.append(argv) }
        if argv.contains(verb), argv.contains(where: { failing.contains($0) }) {
            return CommandResult(status: 1, stdout: "", stderr: "Failed to \(verb) \(argv.last!)")
        }
        return CommandResult(status: 0, stdout: "", stderr: "")
    }
}

/// Many people onboarded at once: every drop-in is written first, systemd reloads once, and the units are enabled
/// in batches; a failure still names the person and unit, and the others converge.
@Suite struct BatchedEnableTests {
    /// A plan of `n` people, each a drop-in then the enable that depends on the account only (as the planner makes it).
    func plan(_ n: Int) -> Plan {
        var changes: [Change] = []
        for i in 0..<n {
            let user = "u\(i)"
            let unit = "t3-serve@u\(i).service"
            let dropIn = "/etc/systemd/system/\(unit).d/50-workstation.conf"
            changes.append(
                Change(
                    id: .file(dropIn),
                    user: user,
                    kind: .create,
                    safety: .derived,
                    summary: "write drop-in of \(user)",
                    action: .writeFile(path: dropIn, content: Data("[Service]\n".utf8), mode: 0o644)
                )
            )
            changes.append(
                Change(
                    id: .unit(unit),
                    user: user,
                    kind: .create,
                    safety: .additive,
                    summary: "enable \(unit)",
                    action: .enableUnit(name: unit),
                    dependsOn: [.file(dropIn)]
                )
            )
        }
        return Plan(changes: changes)
    }

    func executor(_ runner: any CommandRunner, systemdRunning: Bool) throws -> (Executor, TempRoot) {
        let temp = try TempRoot("batch")
        let dir = temp.path
        return (
            Executor(
                root: HostRoot(dir),
                settings: Settings(),
                runner: runner,
                journal: nil,
                systemdRunning: systemdRunning,
                state: WorkstationState()
            ), temp
        )
    }

    @Test(arguments: [1, 2, 127, 128, 129, 300])
    func oneReloadThenBatches(_ n: Int) throws {
        let runner = RecordingRunner()
        let (executor, temp) = try executor(runner, systemdRunning: true)
        let dir = temp.path
        let report = executor.apply(plan(n))
        #expect(report.failed.isEmpty && report.applied.count == 2 * n)
        let reloads = runner.commands.filter { $0 == ["systemctl", "daemon-reload"] }.count
        #expect(reloads == 1, "one reload for \(n) people, not one each: \(runner.commands.prefix(4))")
        let enables = runner.commands.filter { $0.starts(with: ["systemctl", "enable", "--now", "--no-reload"]) }
        #expect(enables.count == (n + Executor.enableBatchSize - 1) / Executor.enableBatchSize)
        #expect(
            enables.flatMap { $0.dropFirst(4) } == (0..<n).map { "t3-serve@u\($0).service" },
            "every unit once, in roster order"
        )
        #expect(
            runner.commands.filter { $0.contains("enable") }.count == enables.count,
            "no enable without --no-reload"
        )
        #expect(
            runner.commands.first == ["systemctl", "daemon-reload"],
            "the reload comes after every drop-in and before any enable"
        )
        for i in 0..<n {
            #expect(
                FileManager.default.fileExists(
                    atPath: dir + "/etc/systemd/system/t3-serve@u\(i).service.d/50-workstation.conf"
                )
            )
        }
    }

    @Test func aSandboxRootEnablesInBatchesWithoutReloading() throws {
        let runner = RecordingRunner()
        let (executor, temp) = try executor(runner, systemdRunning: false)
        let dir = temp.path
        let report = executor.apply(plan(3))
        #expect(report.failed.isEmpty)
        #expect(
            runner.commands == [
                [
                    "systemctl", "--root=\(dir)", "enable", "t3-serve@u0.service", "t3-serve@u1.service",
                    "t3-serve@u2.service",
                ]
            ]
        )
    }

    @Test func aFailureNamesItsPersonAndTheRestConverge() throws {
        let runner = FailingUnitRunner(failing: ["t3-serve@u1.service"])
        let (executor, temp) = try executor(runner, systemdRunning: true)
        defer { withExtendedLifetime(temp) {} }
        let report = executor.apply(plan(4))
        #expect(report.failed.map(\.change.id) == ["unit:t3-serve@u1.service"])
        #expect(
            report.failed.first?.error.hasPrefix("u1: enable t3-serve@u1.service:") == true,
            "\(report.failed.map(\.error))"
        )
        #expect(
            Set(report.applied.map(\.id.description)).isSuperset(of: [
                "unit:t3-serve@u0.service", "unit:t3-serve@u2.service", "unit:t3-serve@u3.service",
            ])
        )
        // The batch, then each unit alone.
        #expect(runner.commands.filter { $0.contains("enable") }.map { $0.count - 4 } == [4, 1, 1, 1, 1])
    }

    @Test func anEnableAnotherChangeWaitsForRunsInItsPlace() throws {
        let runner = RecordingRunner()
        let (executor, temp) = try executor(runner, systemdRunning: true)
        defer { withExtendedLifetime(temp) {} }
        var p = plan(2)
        p.changes.append(
            Change(
                id: .restart("t3-serve@u0.service"),
                user: "u0",
                kind: .update,
                safety: .derived,
                summary: "restart after enabling",
                action: .restartUnit(name: "t3-serve@u0.service"),
                dependsOn: ["unit:t3-serve@u0.service"]
            )
        )
        let report = executor.apply(p)
        #expect(report.failed.isEmpty)
        let order = runner.commands.map { $0.joined(separator: " ") }
        let single = try #require(
            order.firstIndex(of: "systemctl enable --now t3-serve@u0.service"),
            "an enable another change waits for runs in place: \(order)"
        )
        let restart = try #require(order.firstIndex(of: "systemctl try-restart t3-serve@u0.service"))
        #expect(single < restart)
        #expect(
            order.contains("systemctl enable --now --no-reload t3-serve@u1.service"),
            "the other unit is still enabled at the end: \(order)"
        )
    }
}

/// Disabling a unit (offboard cut, cutover) touches only its `.wants/` link: no reload of the whole manager.
@Suite struct DisableUnitTests {
    @Test(arguments: [true, false])
    func disableReloadsNothing(_ systemdRunning: Bool) throws {
        let temp = try TempRoot("disable")
        let dir = temp.path
        let runner = RecordingRunner()
        let adapter = LifecycleAdapter(
            root: HostRoot(dir),
            runner: runner,
            systemdRunning: systemdRunning,
            accounts: AccountLookup(root: HostRoot(dir))
        )
        try adapter.disableUnit("t3-serve@bob.service")
        #expect(
            runner.commands == [
                systemdRunning
                    ? ["systemctl", "disable", "--now", "--no-reload", "t3-serve@bob.service"]
                    : ["systemctl", "--root=\(dir)", "disable", "t3-serve@bob.service"]
            ]
        )
    }
}

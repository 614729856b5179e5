import Foundation
import Synchronization
import Testing
import WorkstationCore
import WorkstationTestSupport

@testable import WorkstationHost

/// Many people cut at once: their units are disabled in batches (one `systemctl disable --now --no-reload` per
/// `enableBatchSize` units) before anyone's next step; a failure still names its person and unit, and everyone
/// else, that person's later steps included, converges.
@Suite struct BatchedDisableTests {
    /// The changes an offboarding cut of `n` people makes: every unit first, then each person's login.
    func changes(_ n: Int) -> [Change] {
        let units = (0..<n).map { i in
            Change(
                id: .unit("t3-serve@u\(i).service"),
                user: "u\(i)",
                kind: .pending,
                safety: .revoke,
                summary: "stop and disable t3-serve@u\(i).service",
                action: .disableUnit(name: "t3-serve@u\(i).service")
            )
        }
        let logins = (0..<n).map { i in
            Change(
                id: .login("u\(i)"),
                user: "u\(i)",
                kind: .pending,
                safety: .revoke,
                summary: "expire the account of u\(i)",
                action: .restrictLogin(user: "u\(i)", lock: false)
            )
        }
        return units + logins
    }

    func executor(_ runner: any CommandRunner, _ dir: String, systemdRunning: Bool = true) -> Executor {
        Executor(
            root: HostRoot(dir),
            settings: Settings(),
            runner: runner,
            journal: nil,
            systemdRunning: systemdRunning,
            state: WorkstationState()
        )
    }

    @Test(arguments: [1, 2, 128, 129, 300])
    func unitsAreDisabledInBatchesBeforeAnyLoginChanges(_ n: Int) throws {
        let temp = try TempRoot("disable")
        defer { withExtendedLifetime(temp) {} }
        let dir = temp.path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let runner = RecordingRunner()
        let report = executor(runner, dir).runExplicit(changes(n))
        #expect(report.failed.isEmpty && report.applied.count == 2 * n)
        let disables = runner.commands.filter { $0.starts(with: ["systemctl", "disable", "--now", "--no-reload"]) }
        #expect(disables.count == (n + Executor.enableBatchSize - 1) / Executor.enableBatchSize)
        #expect(disables.flatMap { $0.dropFirst(4) } == (0..<n).map { "t3-serve@u\($0).service" })
        #expect(!runner.commands.contains(["systemctl", "daemon-reload"]), "removing links needs no reload")
        let firstUsermod = try #require(runner.commands.firstIndex { $0.first == "usermod" })
        #expect(firstUsermod == disables.count, "every unit is stopped before anyone's next step")
    }

    @Test func aSandboxRootDisablesInOneCall() throws {
        let temp = try TempRoot("disable")
        defer { withExtendedLifetime(temp) {} }
        let dir = temp.path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let runner = RecordingRunner()
        let report = executor(runner, dir, systemdRunning: false).runExplicit(Array(changes(3).prefix(3)))
        #expect(report.failed.isEmpty)
        #expect(
            runner.commands == [
                [
                    "systemctl", "--root=\(dir)", "disable", "t3-serve@u0.service", "t3-serve@u1.service",
                    "t3-serve@u2.service",
                ]
            ]
        )
    }

    @Test func aFailureNamesItsPersonAndUnitAndEveryoneElseConverges() throws {
        let temp = try TempRoot("disable")
        defer { withExtendedLifetime(temp) {} }
        let dir = temp.path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let runner = FailingUnitRunner(verb: "disable", failing: ["t3-serve@u2.service"])
        let report = executor(runner, dir).runExplicit(changes(4))
        #expect(report.failed.map(\.change.id) == ["unit:t3-serve@u2.service"])
        #expect(
            report.failed.first?.error.hasPrefix("u2: stop and disable t3-serve@u2.service:") == true,
            "\(report.failed.map(\.error))"
        )
        #expect(
            Set(report.applied.map(\.id)).count == 7,
            "the other units and every login: \(report.applied.map(\.id))"
        )
        // The batch, then each unit alone.
        #expect(runner.commands.filter { $0.contains("disable") }.map { $0.count - 4 } == [4, 1, 1, 1, 1])
    }
}

/// Files written one after another (drop-ins, derived files) are written together: exact bytes and modes, no temp
/// file left, and a file that cannot be written fails alone, naming its path.
@Suite struct BatchedFileTests {
    func write(_ path: String, _ text: String, mode: UInt32 = 0o644) -> Change {
        Change(
            id: .file(path),
            user: nil,
            kind: .create,
            safety: .derived,
            summary: "write \(path)",
            action: .writeFile(path: path, content: Data(text.utf8), mode: mode)
        )
    }

    @Test func everyFileHasItsBytesAndModeAndNoTempIsLeft() throws {
        let temp = try TempRoot("files")
        defer { withExtendedLifetime(temp) {} }
        let dir = temp.path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let files = (0..<50).map { "/etc/systemd/system/t3-serve@u\($0).service.d/50-workstation.conf" }
        let plan = Plan(
            changes: files.map { write($0, "[Service]\n# \($0)\n") } + [write("/etc/secret", "x", mode: 0o600)]
        )
        let runner = RecordingRunner()
        let executor = Executor(
            root: HostRoot(dir),
            settings: Settings(),
            runner: runner,
            journal: nil,
            systemdRunning: true,
            state: WorkstationState()
        )
        let report = executor.apply(plan)
        #expect(report.failed.isEmpty && report.applied.count == 51)
        for f in files {
            #expect(FileManager.default.contents(atPath: dir + f) == Data("[Service]\n# \(f)\n".utf8))
            var st = stat()
            #expect(lstat(dir + f, &st) == 0 && st.st_mode & 0o7777 == 0o644)
            let siblings = try FileManager.default.contentsOfDirectory(
                atPath: (dir + f as NSString).deletingLastPathComponent
            )
            #expect(siblings == ["50-workstation.conf"], "no temp file left: \(siblings)")
        }
        var st = stat()
        #expect(lstat(dir + "/etc/secret", &st) == 0 && st.st_mode & 0o7777 == 0o600)
        #expect(runner.commands == [["systemctl", "daemon-reload"]], "unit files written: one reload at the end")
    }

    @Test func aFileThatCannotBeWrittenFailsAloneNamingItsPath() throws {
        let temp = try TempRoot("files")
        defer { withExtendedLifetime(temp) {} }
        let dir = temp.path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/etc", withIntermediateDirectories: true)
        // A regular file where the second one's directory should be.
        try Data("not a directory".utf8).write(to: URL(fileURLWithPath: dir + "/etc/blocked"))
        let plan = Plan(changes: [
            write("/etc/a.conf", "a"), write("/etc/blocked/b.conf", "b"), write("/etc/c.conf", "c"),
        ])
        let executor = Executor(
            root: HostRoot(dir),
            settings: Settings(),
            runner: RecordingRunner(),
            journal: nil,
            systemdRunning: false,
            state: WorkstationState()
        )
        let report = executor.apply(plan)
        #expect(report.failed.map(\.change.id) == ["file:/etc/blocked/b.conf"])
        #expect(report.failed.first?.error.contains("/etc/blocked") == true, "\(report.failed.map(\.error))")
        #expect(FileManager.default.contents(atPath: dir + "/etc/a.conf") == Data("a".utf8))
        #expect(FileManager.default.contents(atPath: dir + "/etc/c.conf") == Data("c".utf8))
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: dir + "/etc").sorted() == [
                "a.conf", "blocked", "c.conf",
            ]
        )
    }
}

/// Journal lines are written the moment a change ends (a `kill -9` cannot lose them) though they are synced
/// together; the state log's lines likewise, whether or not a record is durable.
@Suite struct DeferredSyncTests {
    @Test func aJournalLineIsInTheFileBeforeAnySync() throws {
        let temp = try TempRoot("journal")
        defer { withExtendedLifetime(temp) {} }
        let dir = temp.path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let journal = try Journal(root: HostRoot(dir), settings: Settings(), run: "r1")
        for i in 0..<3 {
            journal.record(
                Change(id: .file("/c\(i)"), user: "alice", kind: .create, safety: .additive, summary: "change \(i)"),
                result: "ok"
            )
        }
        let path = dir + Settings().stateDirectory + "/journal.jsonl"
        let read = Journal.read(try #require(FileManager.default.contents(atPath: path)))
        #expect(read.entries.map(\.change) == ["file:/c0", "file:/c1", "file:/c2"] && read.tornTail == nil)
    }

    @Test(arguments: [true, false])
    func aStateLogRecordReadsBackWhetherDurableOrNot(_ durable: Bool) throws {
        let temp = try TempRoot("statelog")
        defer { withExtendedLifetime(temp) {} }
        let dir = temp.path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = StateStore(root: HostRoot(dir), settings: Settings())
        var state = WorkstationState()
        let log = try StateLog(store: store, state: state)
        state.accounts["alice"] = .init(uid: 1001, created: true)
        try log.record(state, users: ["alice"], durable: durable)
        state.accounts["bob"] = .init(uid: 1002, created: true)
        try log.record(state, users: ["bob"], durable: false)
        #expect(try store.load() == state)
    }
}

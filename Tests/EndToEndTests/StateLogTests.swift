import Foundation
import Testing
import WorkstationCore
import WorkstationTestSupport

@testable import WorkstationHost

#if canImport(Glibc)
import Glibc
#endif

/// `state.log`: the per-change record an apply keeps instead of rewriting `state.json` after every change.
@Suite struct StateLogTests {
    static let users = ["alice", "bob", "carol", "dave", "erin"]

    /// A random edit of `state` touching only `user`'s entries and the host-wide fields.
    static func edit(_ state: inout WorkstationState, user u: String, _ rng: inout SeededGenerator) {
        func maybe<T>(_ value: @autoclosure () -> T) -> T? { Bool.random(using: &rng) ? value() : nil }
        state.accounts[u] = maybe(
            .init(uid: Int.random(in: 1000...1100, using: &rng), created: Bool.random(using: &rng))
        )
        for template in ["t3-serve@", "ttyd@"] {
            state.ports[template, default: [:]][u] = maybe(Int.random(in: 20000...20100, using: &rng))
        }
        state.addedMemberships[u] = maybe(["workstation", "docker"].filter { _ in Bool.random(using: &rng) })
        if Bool.random(using: &rng) {
            if state.homeFiles == nil { state.homeFiles = [:] }
            state.homeFiles?[u] = maybe([".kube/config"])
        } else if Int.random(in: 0..<4, using: &rng) == 0 {
            state.homeFiles = nil
        }
        state.secretFilesWritten[u] = maybe(["/home/\(u)/.config/secret"])
        state.identities[u] = maybe(
            RecordedIdentity(authentikUser: "id-\(u)", k8sUser: u, tier: "power-user", namespaces: ["dev"])
        )
        if Bool.random(using: &rng) { state.createdGroups.append("g\(Int.random(in: 0...9, using: &rng))") }
        if Int.random(in: 0..<5, using: &rng) == 0 {
            state.retiredUids.append(Int.random(in: 1000...1100, using: &rng))
        }
        state.lastSuccessfulApply = maybe(Double(Int.random(in: 0...1_000_000, using: &rng)))
        state.ownedFiles = maybe(["/etc/claude-code/managed-settings.json"])
        var intents = WorkstationState.Intents()
        if Bool.random(using: &rng) { intents.accounts[u] = .init(uid: 1000, created: true) }
        if Bool.random(using: &rng) { intents.memberships[u] = ["docker"] }
        state.intents = intents.isEmpty ? nil : intents
    }

    /// Seeded: after any sequence of edits, each touching one person and the host-wide fields, replaying the line
    /// written after each edit over the starting state gives the edited state exactly (removals included).
    @Test func replayingTheLinesOfRandomEditsGivesTheState() throws {
        let seed = testSeed("stateLogReplay")
        var rng = SeededGenerator(seed: seed)
        for round in 0..<200 {
            var state = WorkstationState()
            for u in Self.users where Bool.random(using: &rng) { Self.edit(&state, user: u, &rng) }
            let start = state
            var replayed = start
            for _ in 0..<Int.random(in: 1...12, using: &rng) {
                let u = Self.users.randomElement(using: &rng)!
                Self.edit(&state, user: u, &rng)
                let line = try JSONEncoder().encode(StateDelta(base: "b", state: state, users: [u]))
                replayed.replay(try JSONDecoder().decode(StateDelta.self, from: line))
            }
            #expect(replayed == state, "seed \(seed), round \(round): replay differs from the state")
            if replayed != state { break }
        }
    }

    /// The log on disk: each record is one line that `load` replays; a line cut short by a crash is ignored; lines
    /// that follow an older `state.json` (a crash between a save and emptying the log) are ignored; a whole save
    /// empties the log, and the log is saved whole before it outgrows `state.json`.
    @Test func loadReplaysCompleteLinesOfTheCurrentBaseOnly() throws {
        let root = try TempRoot()
        let store = StateStore(root: HostRoot(root.path), settings: Settings())
        let logPath = root.file("/var/lib/workstation/state.log")
        var state = WorkstationState()
        state.accounts["alice"] = .init(uid: 1001, created: true)
        let log = try StateLog(store: store, state: state)
        #expect(try store.load() == state)
        #expect(FileManager.default.contents(atPath: logPath) == Data(), "a fresh log is empty")
        let savedBefore = FileManager.default.contents(atPath: root.file("/var/lib/workstation/state.json"))

        state.accounts["bob"] = .init(uid: 1002, created: true)
        state.addedMemberships["bob"] = ["workstation"]
        try log.record(state, users: ["bob"])
        state.accounts["alice"] = nil
        try log.record(state, users: ["alice"])
        #expect(
            FileManager.default.contents(atPath: root.file("/var/lib/workstation/state.json")) == savedBefore,
            "recording a change must not rewrite state.json"
        )
        #expect(try store.load() == state)

        // A crash in the middle of a line: the partial line is not applied.
        let whole = try #require(FileManager.default.contents(atPath: logPath))
        var partial = state
        partial.accounts["carol"] = .init(uid: 1003, created: true)
        let line = try JSONEncoder().encode(StateDelta(base: "x", state: partial, users: ["carol"]))
        let fh = try #require(FileHandle(forWritingAtPath: logPath))
        try fh.seekToEnd()
        try fh.write(contentsOf: line.prefix(line.count / 2))
        try fh.close()
        #expect(try store.load() == state, "a torn last line was applied")
        try whole.write(to: URL(fileURLWithPath: logPath))

        // A crash after state.json was saved but before the log was emptied: the old lines follow another file.
        let staleLines = whole
        var saved = state
        saved.accounts["erin"] = .init(uid: 1005, created: false)
        try log.save(saved)
        #expect(FileManager.default.contents(atPath: logPath) == Data(), "a whole save empties the log")
        try staleLines.write(to: URL(fileURLWithPath: logPath))
        #expect(try store.load() == saved, "lines of an older state.json were replayed over the new one")

        // A line that is complete but not a record is an error naming the file, not a silent loss.
        try Data("{\"not\":\"a record\"}\n".utf8).write(to: URL(fileURLWithPath: logPath))
        #expect(throws: ObserveError.self) { try store.load() }
    }

    /// The log is saved whole once it has grown to `state.json`'s size, so it stays proportional to the state
    /// however many changes a run records.
    @Test func theLogIsFoldedIntoStateJsonBeforeItOutgrowsIt() throws {
        let root = try TempRoot()
        let store = StateStore(root: HostRoot(root.path), settings: Settings())
        var state = WorkstationState()
        for i in 0..<400 { state.accounts[String(format: "u%04d", i)] = .init(uid: 2000 + i, created: true) }
        let log = try StateLog(store: store, state: state)
        var largest = 0
        for i in 0..<3000 {
            let u = String(format: "u%04d", i % 400)
            state.addedMemberships[u] = i % 2 == 0 ? ["workstation"] : nil
            try log.record(state, users: [u])
            var st = stat()
            if lstat(root.file("/var/lib/workstation/state.log"), &st) == 0 { largest = max(largest, Int(st.st_size)) }
        }
        var saved = stat()
        #expect(lstat(root.file("/var/lib/workstation/state.json"), &saved) == 0)
        #expect(
            largest <= max(Int(saved.st_size), 64 << 10) + 1024,
            "log grew to \(largest) bytes against state.json's \(saved.st_size)"
        )
        #expect(try store.load() == state)
    }

    /// Every state change the executor makes is in the log the moment it is recorded: after each record the state
    /// loaded from disk equals the executor's (the real shadow-utils tools, each with --prefix TEMPROOT; an adopted
    /// account; a membership added and removed; files written once into homes and recorded).
    @Test func everyRecordOfARealApplyLoadsBackAsTheExecutorsState() throws {
        let root = try TempRoot()
        try Fixture.seed(root)
        let host = HostRoot(root.path)
        let store = StateStore(root: host, settings: Settings())
        // An account that exists before workstation manages it (adopted on first touch).
        let pre = try TestProcess.accountTool(
            "useradd",
            prefix: root.path,
            [
                "-m", "-U", "-u", "1500", "-K", "HOME_MODE=0700",
                "-k", root.file("/etc/skel"), "-d", "/home/dave", "dave",
            ]
        )
        #expect(pre.status == 0, "\(pre.stderr)")
        let executor = Executor(
            root: host,
            settings: Settings(),
            runner: ProcessRunner(),
            journal: nil,
            systemdRunning: false,
            state: try store.load()
        )
        let log = try StateLog(store: store, state: executor.state)
        var records = 0
        var mismatches: [String] = []
        executor.persist = { state, users in
            try log.record(state, users: users)
            records += 1
            let loaded = try store.load()
            if loaded != state {
                mismatches.append("record \(records) (users \(users.sorted())): loaded \(loaded) != \(state)")
            }
        }
        func account(_ name: String, _ uid: Int, groups: [String]) -> Change {
            Change(
                id: .account(name),
                user: name,
                kind: .create,
                safety: .additive,
                summary: "create \(name)",
                action: .createAccount(
                    AccountSpec(
                        name: name,
                        uid: uid,
                        home: "/home/\(name)",
                        shell: "/bin/bash",
                        groups: groups,
                        comment: name
                    )
                )
            )
        }
        let report = executor.apply(
            Plan(changes: [
                Change(
                    id: "group:crew",
                    user: nil,
                    kind: .create,
                    safety: .additive,
                    summary: "create group crew",
                    action: .createGroup(name: "crew")
                ),
                account("alice", 1601, groups: ["crew"]),
                account("bob", 1602, groups: []),
                Change(
                    id: .membership("bob", "crew"),
                    user: "bob",
                    kind: .create,
                    safety: .additive,
                    summary: "add bob to crew",
                    action: .addMembership(user: "bob", group: "crew")
                ),
                Change(
                    id: "home:dave",
                    user: "dave",
                    kind: .update,
                    safety: .additive,
                    summary: "secure dave's home",
                    action: .secureHome(user: "dave", path: "/home/dave", chownTo: nil, mode: 0o700)
                ),
                Change(
                    id: "kubeconfig:alice",
                    user: "alice",
                    kind: .create,
                    safety: .additive,
                    summary: "write alice's kubeconfig",
                    action: .createHomeFile(
                        user: "alice",
                        path: "/home/alice/.kube/config",
                        content: Data("k".utf8),
                        mode: 0o600
                    )
                ),
                Change(
                    id: "secret:bob",
                    user: "bob",
                    kind: .create,
                    safety: .additive,
                    summary: "write bob's secret file",
                    action: .createSecretFile(
                        user: "bob",
                        path: "/home/bob/.config/s.env",
                        content: Redacted(Data("s".utf8)),
                        mode: 0o600
                    )
                ),
            ])
        )
        let revoke = executor.runExplicit([
            Change(
                id: .membership("bob", "crew"),
                user: "bob",
                kind: .pending,
                safety: .revoke,
                summary: "remove bob from crew",
                action: .removeMembership(user: "bob", group: "crew")
            )
        ])
        #expect(report.failed.isEmpty && revoke.failed.isEmpty, "\((report.failed + revoke.failed).map { $0.error })")
        #expect(mismatches.isEmpty, "\(mismatches.prefix(3).joined(separator: "\n"))")
        let final = try store.load()
        #expect(final == executor.state)
        #expect(final.accounts["alice"] == .init(uid: 1601, created: true) && final.accounts["dave"]?.created == false)
        #expect(final.createdGroups.contains("crew") && final.addedMemberships["bob"] == [])
        #expect(
            final.homeFiles?["alice"] == [".kube/config"]
                && final.secretFilesWritten["bob"] == ["/home/bob/.config/s.env"]
        )
        #expect(records >= 8, "expected a record per state change, got \(records)")
    }

    /// A no-op apply records when it last verified clean as one line in the log: state.json is not rewritten, the
    /// time read back advances; after a line cut short by a crash it saves whole instead of appending behind it.
    @Test func aNoOpApplyAppendsALineInsteadOfRewritingStateJson() throws {
        let root = try TempRoot()
        let inputs = try TempRoot()
        try Fixture.seed(root)
        try inputs.write("/r.yaml", Fixture.roster(count: 3))
        let args = ["--roster", inputs.file("/r.yaml"), "--settings", Fixture.settingsPath, "--root", root.path]
        let first = try CLI.run(["apply"] + args)
        try #require(first.status == 0, "\(first.stderr)")
        let store = StateStore(root: HostRoot(root.path), settings: Settings())
        let statePath = root.file("/var/lib/workstation/state.json")
        let logPath = root.file("/var/lib/workstation/state.log")
        var recorded = try store.load()
        recorded.lastSuccessfulApply = 1
        try store.save(recorded)
        let saved = try #require(FileManager.default.contents(atPath: statePath))

        let again = try CLI.run(["apply"] + args)
        #expect(again.status == 0, "\(again.stderr)")
        #expect(FileManager.default.contents(atPath: statePath) == saved, "a no-op apply rewrote state.json")
        let log = try #require(FileManager.default.contents(atPath: logPath))
        #expect(log.filter { $0 == 0x0A }.count == 1, "expected one line in state.log, got \(log.count) bytes")
        var loaded = try store.load()
        #expect((loaded.lastSuccessfulApply ?? 0) > 1, "the time of the clean run was not recorded")
        loaded.lastSuccessfulApply = 1
        #expect(loaded == recorded, "a host-wide line changed more than the time")

        // A fragment left by a crash: the next no-op saves whole (the log is emptied), never appends behind it.
        let handle = try #require(FileHandle(forWritingAtPath: logPath))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("{\"base\":\"x".utf8))
        try handle.close()
        usleep(1_100_000)  // the recorded time is in whole seconds: make the third run's differ
        let third = try CLI.run(["apply"] + args)
        #expect(third.status == 0, "\(third.stderr)")
        #expect(FileManager.default.contents(atPath: logPath) == Data(), "the log was not started again")
        #expect(FileManager.default.contents(atPath: statePath) != saved)
        #expect((try store.load().lastSuccessfulApply ?? 0) > 1)
    }

    /// A line that could not be written (a full disk) leaves its people out of the log; the next record saves the
    /// whole state, so a kill after it still finds them.
    @Test func aFailedLineIsMadeUpByAWholeSaveAtTheNextRecord() throws {
        let root = try TempRoot()
        let store = StateStore(root: HostRoot(root.path), settings: Settings())
        var state = WorkstationState()
        let log = try StateLog(store: store, state: state)
        state.accounts["alice"] = .init(uid: 1601, created: true)
        log.failNextAppend = ENOSPC
        #expect(throws: FileWriteError.self) { try log.record(state, users: ["alice"]) }
        state.accounts["bob"] = .init(uid: 1602, created: true)
        try log.record(state, users: ["bob"])
        #expect(try store.load() == state, "alice, whose line failed, is missing from the record")
    }

    /// The log follows state.json by content: a state directory copied away and back (a restore from backup, a move
    /// to another disk) keeps its lines.
    @Test func theLogSurvivesTheStateDirectoryBeingRestoredFromACopy() throws {
        let root = try TempRoot()
        let store = StateStore(root: HostRoot(root.path), settings: Settings())
        var state = WorkstationState()
        let log = try StateLog(store: store, state: state)
        state.accounts["alice"] = .init(uid: 1601, created: true)
        state.createdGroups = ["crew"]
        try log.record(state, users: ["alice"])
        let dir = root.file("/var/lib/workstation")
        try FileManager.default.copyItem(atPath: dir, toPath: dir + ".copy")
        try FileManager.default.removeItem(atPath: dir)
        try FileManager.default.moveItem(atPath: dir + ".copy", toPath: dir)
        #expect(try store.load() == state, "the restored state directory lost its log")
    }

    /// A save of exactly the bytes a log's lines follow (the state back where it was) empties the log first, so the
    /// lines are never replayed over the new file; a no-op apply never appends behind lines of another state.json.
    @Test func linesForTheBytesBeingSavedAreDroppedFirst() throws {
        let root = try TempRoot()
        let store = StateStore(root: HostRoot(root.path), settings: Settings())
        let logPath = root.file("/var/lib/workstation/state.log")
        let start = WorkstationState()
        let log = try StateLog(store: store, state: start)
        var changed = start
        changed.accounts["alice"] = .init(uid: 1601, created: true)
        try log.record(changed, users: ["alice"])
        try store.save(start)
        #expect(FileManager.default.contents(atPath: logPath) == Data())
        #expect(try store.load() == start)

        // Lines left for an older state.json: the host-wide record saves whole rather than append behind them.
        var other = start
        other.createdGroups = ["crew"]
        let stale = try JSONEncoder().encode(StateDelta(base: "fnv1a64:0:0", state: other, users: []))
        try (stale + Data([0x0A])).write(to: URL(fileURLWithPath: logPath))
        var clean = start
        clean.lastSuccessfulApply = 42
        try StateLog.recordHostWide(clean, store: store)
        #expect(FileManager.default.contents(atPath: logPath) == Data(), "appended behind another state.json's lines")
        #expect(try store.load() == clean)
    }

    /// A tool's intent is recorded before it runs; when the change then leaves the state exactly as it was (a group
    /// workstation had recorded, deleted by hand and created again), the end of the change is recorded too.
    @Test func anIntentIsClearedInTheRecordEvenWhenTheStateEndsAsItWas() throws {
        let root = try TempRoot()
        try Fixture.seed(root)
        let host = HostRoot(root.path)
        let store = StateStore(root: host, settings: Settings())
        var state = try store.load()
        state.createdGroups.append("crew")
        let executor = Executor(
            root: host,
            settings: Settings(),
            runner: ProcessRunner(),
            journal: nil,
            systemdRunning: false,
            state: state
        )
        let log = try StateLog(store: store, state: state)
        executor.persist = { try log.record($0, users: $1) }
        let report = executor.apply(
            Plan(changes: [
                Change(
                    id: "group:crew",
                    user: nil,
                    kind: .create,
                    safety: .additive,
                    summary: "create group crew",
                    action: .createGroup(name: "crew")
                )
            ])
        )
        #expect(report.failed.isEmpty, "\(report.failed.map { $0.error })")
        #expect(executor.state.intents == nil)
        #expect(try store.load().intents == nil, "the record still holds the intent of a change that ended")
    }

    /// A reader without the run lock (status, metrics, plan) while an apply saves the whole state: the save lands
    /// between its read of state.json and its read of the log (now emptied). The reader must not pair the old file
    /// with the empty log (that would drop everything logged since the old file); it reads again.
    @Test func aReaderRacingAWholeSaveGetsTheNewRecord() throws {
        let root = try TempRoot()
        let writer = StateStore(root: HostRoot(root.path), settings: Settings())
        var state = WorkstationState()
        let log = try StateLog(store: writer, state: state)
        state.accounts["alice"] = .init(uid: 1601, created: true)
        state.createdGroups = ["crew"]
        try log.record(state, users: ["alice"])
        var final = state
        final.lastSuccessfulApply = 42
        final class Once: @unchecked Sendable { var action: (() throws -> Void)? }
        let once = Once()
        once.action = { try log.save(final) }
        var reader = StateStore(root: HostRoot(root.path), settings: Settings())
        reader.betweenReads = {
            let action = once.action
            once.action = nil
            try? action?()
        }
        #expect(try reader.load() == final, "a reader paired the replaced state.json with the emptied log")
    }
}

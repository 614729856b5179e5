import Foundation
import Synchronization
import Testing
import WorkstationCore
@testable import WorkstationHost

@Suite struct ExecutorUnitTests {
    static let instance = "t3-serve@bob-dev.service"
    static let dropIn = "/etc/systemd/system/t3-serve@bob-dev.service.d/50-workstation.conf"

    func run(systemdRunning: Bool) throws -> (RecordingRunner, ApplyReport, String) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ws-exec-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let runner = RecordingRunner()
        let executor = Executor(root: HostRoot(dir), settings: Settings(), runner: runner, journal: nil,
                                systemdRunning: systemdRunning, state: WorkstationState())
        let content = Data("[Service]\nEnvironment=T3CODE_PORT=3800\n".utf8)
        let plan = Plan(changes: [
            Change(id: "file:\(Self.dropIn)", user: "bob-dev", kind: .update, safety: .derived, summary: "regenerate drop-in",
                   action: .writeFile(path: Self.dropIn, content: content, mode: 0o644)),
            Change(id: "restart:\(Self.instance)", user: "bob-dev", kind: .update, safety: .derived, summary: "restart",
                   action: .restartUnit(name: Self.instance), dependsOn: ["file:\(Self.dropIn)"]),
        ])
        let report = executor.apply(plan)
        return (runner, report, dir)
    }

    @Test func restartReloadsOnceThenTryRestartsTheUnit() throws {
        let (runner, report, dir) = try run(systemdRunning: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(report.failed.isEmpty)
        #expect(runner.commands == [["systemctl", "daemon-reload"], ["systemctl", "try-restart", Self.instance]])
        #expect(FileManager.default.contents(atPath: dir + Self.dropIn) == Data("[Service]\nEnvironment=T3CODE_PORT=3800\n".utf8))
    }

    @Test func startReloadsFirstWhenUnitFilesChanged() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ws-exec-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let runner = RecordingRunner()
        let executor = Executor(root: HostRoot(dir), settings: Settings(), runner: runner, journal: nil,
                                systemdRunning: true, state: WorkstationState())
        let report = executor.apply(Plan(changes: [
            Change(id: "file:\(Self.dropIn)", user: "bob-dev", kind: .update, safety: .derived, summary: "regenerate drop-in",
                   action: .writeFile(path: Self.dropIn, content: Data("[Service]\n".utf8), mode: 0o644)),
            Change(id: "unit:\(Self.instance)", user: "bob-dev", kind: .update, safety: .additive, summary: "start",
                   action: .startUnit(name: Self.instance), dependsOn: ["file:\(Self.dropIn)"]),
        ]))
        #expect(report.failed.isEmpty)
        #expect(runner.commands == [["systemctl", "daemon-reload"], ["systemctl", "start", Self.instance]])
    }

    @Test func nothingIsRestartedWithoutARunningSystemd() throws {
        let (runner, report, dir) = try run(systemdRunning: false)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(report.failed.isEmpty)
        #expect(report.applied.count == 2)
        #expect(runner.commands.isEmpty)
    }
}

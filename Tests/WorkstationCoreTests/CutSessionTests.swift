import Foundation
import Testing

@testable import WorkstationCore

/// The last steps of `offboard --stage cut`: linger off, every process ended.
@Suite struct CutSessionTests {
    @Test(
        arguments: [
            (true, [(pid: 10, name: "bash"), (pid: 11, name: "systemd")], ["linger:alice", "processes:alice"]),
            (false, [(pid: 10, name: "bash")], ["processes:alice"]),
            (false, [], ["processes:alice"]),
            // Under a --root prefix the processes are this machine's, never the prefix's: none is planned.
            (true, nil, ["linger:alice"]),
            (false, nil, []),
        ] as [(Bool, [(pid: Int, name: String)]?, [String])]
    )
    func plansLingerThenProcesses(lingering: Bool, processes: [(pid: Int, name: String)]?, expected: [String]) {
        let changes = Planner(settings: Settings()).cutSessionChanges(
            user: "alice",
            uid: 1001,
            lingering: lingering,
            processes: processes
        )
        #expect(changes.map(\.id.description) == expected)
        #expect(changes.allSatisfy { $0.safety == .revoke && $0.kind == .pending })
        if let p = changes.first(where: { $0.id == "processes:alice" }) {
            #expect(p.action == .endProcesses(user: "alice", uid: 1001))
            #expect(p.dependsOn == (lingering ? ["linger:alice"] : []))
            for proc in processes ?? [] { #expect(p.summary.contains("\(proc.pid) (\(proc.name))")) }
        }
        if lingering { #expect(changes.first?.action == .disableLinger(user: "alice")) }
    }

    @Test func aProcessNameIsEscapedInTheSummary() {
        let c = Planner(settings: Settings()).cutSessionChanges(
            user: "alice",
            uid: 1001,
            lingering: false,
            processes: [(pid: 7, name: "x\u{1b}[2Jy")]
        )
        #expect(c.first?.summary.contains("\u{1b}") == false)
    }
}

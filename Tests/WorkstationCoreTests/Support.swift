import Foundation

@testable import WorkstationCore

extension Roster {
    /// `count` power-users `u0`, `u1`, ... (Authentik `id-u0`, ...), located at roster.yaml lines 2, 3, ...
    static func generated(_ count: Int) -> Roster {
        Roster(
            entries: (0..<count).map { i in
                RosterEntry(
                    osUser: "u\(i)",
                    authentikUser: "id-u\(i)",
                    k8sUser: "u\(i)",
                    tier: .powerUser,
                    location: SourceLocation(file: "roster.yaml", line: i + 2, column: 3)
                )
            }
        )
    }
}

/// alice (power-user) and bob-dev (namespace-owner), and a host where both exist with their homes: the people of
/// the lifecycle suites.
enum LifecycleFixture {
    static let alice = RosterEntry(
        osUser: "alice",
        authentikUser: "alice.smith",
        k8sUser: "alice",
        tier: .powerUser,
        email: "alice@example.org"
    )
    static let bob = RosterEntry(
        osUser: "bob-dev",
        authentikUser: "bob",
        k8sUser: "bob",
        tier: .namespaceOwner,
        namespaces: ["team-bob"],
        email: "bob@example.org"
    )

    /// alice (uid 1001) and bob-dev (uid 1002) exist with homes; `extra` adds paths.
    static func host(_ extra: [String: PathState] = [:]) -> HostSnapshot {
        var snap = HostSnapshot()
        snap.passwd = [
            PasswdEntry(name: "alice", uid: 1001, gid: 1001, home: "/home/alice", shell: "/bin/bash"),
            PasswdEntry(name: "bob-dev", uid: 1002, gid: 1002, home: "/home/bob-dev", shell: "/bin/bash"),
        ]
        snap.paths["/home/alice"] = PathState(kind: .directory, mode: 0o700, uid: 1001, gid: 1001)
        snap.paths["/home/bob-dev"] = PathState(kind: .directory, mode: 0o700, uid: 1002, gid: 1002)
        for (k, v) in extra { snap.paths[k] = v }
        return snap
    }
}

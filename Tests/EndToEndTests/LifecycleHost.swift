import Foundation
import Testing
import WorkstationTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A sandbox host with a roster file the test edits: carol (admin, the lead), alice (power-user), bob-dev.
final class LifecycleHost {
    let root: TempRoot
    let roster: String
    let settings: String
    static let fullRoster = """
        users:
          carol: { authentik_user: carol, k8s_user: carol, tier: admin }
          alice: { authentik_user: alice.smith, k8s_user: alice, tier: power-user, email: alice@example.org }
          bob-dev: { authentik_user: bob, k8s_user: bob, tier: namespace-owner, namespaces: [team-bob] }

        """

    init() throws {
        root = try TempRoot()
        roster = root.path + "-roster.yaml"
        settings = root.path + "-settings.yaml"
        try Self.fullRoster.write(toFile: roster, atomically: true, encoding: .utf8)
        try """
        config_base: /srv/workstation/config-base
        offboard:
          backup_directory: /var/backups/workstation
        cutover:
          launchers: [start-claude.sh]
          lead_home: /home/carol
          shared_code_group: code-shared
        idle:
          process_names: [claude, tmux, t3]

        """.write(toFile: settings, atomically: true, encoding: .utf8)
        let r = try run(["apply", "--init-root"])
        #expect(r.status == 0, "\(r.stderr)")
    }

    deinit {
        unlink(roster)
        unlink(settings)
    }

    @discardableResult
    func run(_ args: [String]) throws -> ProcessOutput {
        try CLI.run(args + ["--roster", roster, "--settings", settings, "--root", root.path])
    }

    func setRoster(without user: String?) throws {
        let text =
            Self.fullRoster.split(separator: "\n").filter { user == nil || !$0.hasPrefix("  \(user!):") }.joined(
                separator: "\n"
            ) + "\n"
        try text.write(toFile: roster, atomically: true, encoding: .utf8)
    }

    func line(_ file: String, _ user: String) -> String? {
        root.read(file)?.split(separator: "\n").first { $0.hasPrefix("\(user):") }.map(String.init)
    }

    func uid(_ user: String) -> Int? { line("/etc/passwd", user).flatMap { Int($0.split(separator: ":")[2]) } }

    /// Supplementary groups of `user` from the root's /etc/group, in file order.
    func groups(_ user: String) -> [String] {
        (root.read("/etc/group") ?? "").split(separator: "\n").compactMap { l in
            let f = l.split(separator: ":", omittingEmptySubsequences: false)
            return f.count >= 4 && f[3].split(separator: ",").contains(Substring(user)) ? String(f[0]) : nil
        }
    }

    var wants: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: root.file("/etc/systemd/system/multi-user.target.wants")))
            ?? []).sorted()
    }

    func state() throws -> [String: Any] {
        let data = try #require(FileManager.default.contents(atPath: root.file("/var/lib/workstation/state.json")))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func editState(_ body: (inout [String: Any]) -> Void) throws {
        var s = try state()
        body(&s)
        let data = try JSONSerialization.data(withJSONObject: s, options: [.prettyPrinted, .sortedKeys])
        try data.write(to: URL(fileURLWithPath: root.file("/var/lib/workstation/state.json")))
    }

    /// Gives `user` a password hash, so locking is observable (useradd leaves `!`, already locked).
    func setPassword(_ user: String) throws {
        // A locked password as useradd (`!`) or systemd-sysusers (`!*`) leaves it.
        let shadow = root.read("/etc/shadow")!.replacingOccurrences(
            of: "\n\(user):!*:",
            with: "\n\(user):$6$salt$hash:"
        )
        .replacingOccurrences(of: "\n\(user):!:", with: "\n\(user):$6$salt$hash:")
        try root.write("/etc/shadow", shadow)
    }

    /// A synthetic /proc entry: a process of `uid` named `name`.
    func process(pid: Int, uid: Int, name: String) throws {
        try root.write(
            "/proc/\(pid)/status",
            "Name:\t\(name)\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t\(uid)\t\(uid)\t\(uid)\t\(uid)\nGid:\t\(uid)\t\(uid)\t\(uid)\t\(uid)\n"
        )
        try root.write("/proc/\(pid)/comm", "\(name)\n")
    }

    /// A synthetic /proc/net/tcp with one connection to `port` in `state` (hex, `01` = ESTABLISHED).
    func tcp(port: Int, state: String) throws {
        let header =
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        let p = String(format: "%04X", port)
        try root.write(
            "/proc/net/tcp",
            header
                + "   0: 0100007F:\(p) 0100007F:A2C4 \(state) 00000000:00000000 00:00000000 00000000  1001        0 12345 1 0000000000000000 20 4 30 10 -1\n"
        )
        try root.write("/proc/net/tcp6", header)
    }

    func t3Port(_ user: String) throws -> Int {
        let s = try state()
        return try #require((s["ports"] as? [String: [String: Int]])?["t3-serve@"]?[user])
    }
}

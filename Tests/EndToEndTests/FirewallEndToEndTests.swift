import Foundation
import Testing
import WorkstationTestSupport

/// `setup-host` installs the firewall of the per-person instance ports; the ruleset it writes is checked by the real
/// `nft` and then attacked, inside a private network and mount namespace (`unshare -n -m`), never the host's:
/// there the namespace's own `/etc/passwd` names the dispatcher's account, so `nft` resolves it as at boot.
@Suite(.serialized) struct FirewallEndToEndTests {
    let roster = Repository.examples.appendingPathComponent("roster.yaml").path
    let deploy = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../deploy")
        .standardized

    func setupHost(_ root: TempRoot, settings: String? = nil) throws -> ProcessOutput {
        var args = ["setup-host", "--roster", roster, "--root", root.path]
        if let settings { args += ["--settings", settings] }
        return try CLI.run(args)
    }

    @Test func setupHostWritesTheRulesetTheUnitAndTheAccountAndConverges() throws {
        let root = try TempRoot()
        try root.seedHost()
        try root.write(
            "/cfg/workstation.yaml",
            """
            config_base: /srv/workstation/config-base
            units:
              - {template: t3-serve@, port_range: [3774, 3999], port_env: T3CODE_PORT}
              - {template: browser@, port_range: [4100, 4199]}
            """
        )
        let r = try setupHost(root, settings: root.file("/cfg/workstation.yaml"))
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        #expect(r.stdout.contains("create system account workstation-dispatch"))

        let nft = try #require(root.read("/etc/workstation/firewall.nft"))
        #expect(
            nft.contains(
                "oifname \"lo\" tcp dport { 3774-3999, 4100-4199 } meta skuid != { 0, \"workstation-dispatch\" } counter reject with tcp reset"
            )
        )
        #expect(nft.contains("iifname != \"lo\" tcp dport { 3774-3999, 4100-4199 } counter drop"))
        #expect(root.mode("/etc/workstation/firewall.nft").mode == 0o644)
        // The unit and the sysusers line, as shipped in deploy/.
        #expect(
            root.read("/etc/systemd/system/workstation-firewall.service")
                == (try String(
                    contentsOf: deploy.appendingPathComponent("workstation-firewall.service"),
                    encoding: .utf8
                ))
        )
        #expect(
            root.read("/etc/sysusers.d/workstation.conf")
                == (try String(contentsOf: deploy.appendingPathComponent("workstation.sysusers"), encoding: .utf8))
        )
        // systemd-sysusers made the account from the system range; systemctl --root enabled the unit at boot.
        let account = try #require(root.passwdEntry("workstation-dispatch"))
        #expect(Int(account[2]).map { $0 > 0 && $0 < 1000 } == true, "\(account)")
        #expect(
            try FileManager.default.destinationOfSymbolicLink(
                atPath: root.file("/etc/systemd/system/sysinit.target.wants/workstation-firewall.service")
            )
                == "/etc/systemd/system/workstation-firewall.service"
        )

        let again = try CLI.run([
            "setup-host", "--roster", roster, "--settings", root.file("/cfg/workstation.yaml"), "--root", root.path,
            "--plan", "--detailed-exitcode",
        ])
        #expect(again.status == 0, "\(again.stdout)")

        // A changed range regenerates the ruleset (no running systemd under a root: nothing to reload).
        try root.write(
            "/cfg/workstation.yaml",
            "config_base: /srv/workstation/config-base\nunits: [{template: t3-serve@, port_range: [5000, 5099]}]\n"
        )
        let changed = try CLI.run([
            "setup-host", "--roster", roster, "--settings", root.file("/cfg/workstation.yaml"), "--root", root.path,
            "--plan", "--json",
        ])
        let plan = try #require(try JSONSerialization.jsonObject(with: Data(changed.stdout.utf8)) as? [String: Any])
        let ids = (plan["changes"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
        #expect(ids.contains("file:/etc/workstation/firewall.nft"))
        #expect(!ids.contains("account:workstation-dispatch"))
    }

    /// `/etc/passwd` for the namespace: this machine's accounts (nobody, nogroup) plus the root's dispatcher line.
    func namespacePasswd(_ root: TempRoot) throws -> String {
        let host = try String(contentsOfFile: "/etc/passwd", encoding: .utf8)
        let line = try #require(
            root.read("/etc/passwd")?.split(separator: "\n").first { $0.hasPrefix("workstation-dispatch:") }
        )
        let path = root.file("/ns-passwd")
        try (host + line + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func theRulesetPassesNftCheckOnlyWhereTheAccountExists() throws {
        let root = try TempRoot()
        try root.seedHost()
        #expect(try setupHost(root).status == 0)
        let passwd = try namespacePasswd(root)
        let ok = try TestProcess.run(
            "/usr/bin/unshare",
            [
                "-m", "-n", "/bin/sh", "-c", "mount --bind \"$0\" /etc/passwd && /usr/sbin/nft -c -f \"$1\"",
                passwd, root.file("/etc/workstation/firewall.nft"),
            ]
        )
        #expect(ok.status == 0, "\(ok.stderr)")
        // Without the account nft cannot resolve the name: why setup-host creates it and the unit starts after
        // systemd-sysusers.
        let missing = try TestProcess.run(
            "/usr/bin/unshare",
            [
                "-m", "-n", "/bin/sh", "-c",
                "grep -v '^workstation-dispatch:' \"$0\" > \"$0.none\" && mount --bind \"$0.none\" /etc/passwd && /usr/sbin/nft -c -f \"$1\"",
                passwd, root.file("/etc/workstation/firewall.nft"),
            ]
        )
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("User does not exist"), "\(missing.stderr)")
    }

    /// Inside a private network namespace: a listener on 127.0.0.1 and [::1] at a port of the range; connections
    /// as root, as the dispatcher's account and as `nobody`, before and after the ruleset is loaded.
    static let attack = #"""
        set -u
        mount --bind "$1" /etc/passwd
        ip link set lo up
        cd "$3"
        /usr/bin/python3 -c '
        import socket, threading
        def serve(fam, addr):
            s = socket.socket(fam, socket.SOCK_STREAM)
            if fam == socket.AF_INET6: s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((addr, 3774)); s.listen(64)
            while True:
                c, _ = s.accept(); c.close()
        for a in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            threading.Thread(target=serve, args=a, daemon=True).start()
        open("ready", "w").write("ready")
        threading.Event().wait()
        ' > /dev/null 2>&1 &
        server=$!
        # SIGKILL: the test runner's children inherit a signal mask that blocks SIGTERM.
        trap 'kill -9 $server' EXIT
        for i in $(seq 100); do [ -e ready ] && break; sleep 0.05; done
        try() { if "$@" 2>/dev/null; then echo accepted; else echo refused; fi; }
        as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }
        as_dispatch() { setpriv --reuid=workstation-dispatch --regid=nogroup --clear-groups "$@"; }
        for addr in 127.0.0.1 ::1; do echo "before nobody $addr $(try as_nobody bash -c "exec 3<>/dev/tcp/$addr/3774")"; done
        nft -f "$2" || { echo "load failed"; exit 1; }
        for addr in 127.0.0.1 ::1; do
          echo "after root $addr $(try bash -c "exec 3<>/dev/tcp/$addr/3774")"
          echo "after dispatch $addr $(try as_dispatch bash -c "exec 3<>/dev/tcp/$addr/3774")"
          echo "after nobody $addr $(try as_nobody bash -c "exec 3<>/dev/tcp/$addr/3774")"
        done
        """#

    @Test func nobodyIsRefusedOverIPv4AndIPv6WhileRootAndTheDispatcherAreAccepted() throws {
        let root = try TempRoot()
        try root.seedHost()
        #expect(try setupHost(root).status == 0)
        let passwd = try namespacePasswd(root)
        let work = root.file("/ns-work")
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        let r = try TestProcess.run(
            "/usr/bin/unshare",
            [
                "-m", "-n", "/bin/bash", "-c", Self.attack, "attack", passwd,
                root.file("/etc/workstation/firewall.nft"), work,
            ]
        )
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        let lines = Set(r.stdout.split(separator: "\n").map(String.init))
        // Without the ruleset any account connects: the test would fail without it.
        for expected in [
            "before nobody 127.0.0.1 accepted", "before nobody ::1 accepted",
            "after root 127.0.0.1 accepted", "after root ::1 accepted",
            "after dispatch 127.0.0.1 accepted", "after dispatch ::1 accepted",
            "after nobody 127.0.0.1 refused", "after nobody ::1 refused",
        ] {
            #expect(lines.contains(expected), "missing '\(expected)' in:\n\(r.stdout)\n\(r.stderr)")
        }
    }
}

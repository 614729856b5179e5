import Foundation
import Testing
import WorkstationCore
import WorkstationTestSupport

/// Runs the real binary and greps every output channel (stdout, stderr, journal, state, every file workstation
/// keeps) for the secret values and the service tokens.
@Suite(.serialized) struct SecretLeakTests {
    func assertClean(_ text: String, _ channel: String, _ s: Sandbox) {
        for needle in [Secrets.haToken, Secrets.beads, s.authentik.token, s.vault.token] {
            #expect(!text.contains(needle), "\(channel) contains a secret")
        }
    }

    @Test func noChannelEverCarriesASecret() throws {
        let s = try Sandbox()
        try s.prepare()
        let base = ["--roster", s.rosterPath, "--settings", s.settingsPath, "--root", s.dir]
        var runs: [(String, ProcessOutput)] = []
        runs.append(("plan", try CLI.run(["plan"] + base)))
        runs.append(("plan --json", try CLI.run(["plan", "--json"] + base)))
        runs.append(("apply --json", try CLI.run(["apply", "--json"] + base)))
        runs.append(("apply", try CLI.run(["apply"] + base)))
        // An error path: a soft-deleted secret for a new flagged user, and a 403 on the gate group.
        s.roster += "  dave: { authentik_user: zed, k8s_user: dave, tier: power-user, flags: [ha] }\n"
        s.k8sUsers = nil
        s.kubernetesSection = nil
        s.vault.secrets["secret/openclaw"]!.append(
            FakeVault.Version(data: ["ha_url": Secrets.haURL], deletionTime: "2026-11-20T08:00:00Z")
        )
        s.vault.secrets["secret/beads"] = nil
        s.authentik.forbidden = [104]
        try s.prepare()
        runs.append(("apply with failures", try CLI.run(["apply"] + base)))
        s.vault.secrets["secret/openclaw"]!.removeLast()
        s.vault.secrets["secret/beads"] = [FakeVault.Version(data: ["password": Secrets.beads])]
        runs.append(("plan --json pending secrets", try CLI.run(["plan", "--json"] + base)))

        #expect(runs[0].1.status == 0, "\(runs[0].1.stderr)")
        #expect(runs[0].1.stdout.contains("<redacted, \(Secrets.beads.utf8.count) bytes>"))
        #expect(runs[2].1.status == 0, "\(runs[2].1.stderr)")
        #expect(runs[3].1.stdout.contains("No changes"))
        #expect(runs[4].1.status == 1)
        #expect(runs[4].1.stdout.contains("error: dave: vault: cannot read secret/openclaw#ha_url"))
        #expect(runs[5].1.stdout.contains("<redacted,"))
        for (name, r) in runs {
            assertClean(r.stdout, "\(name) stdout", s)
            assertClean(r.stderr, "\(name) stderr", s)
        }
        let stateDir = s.root.path("/var/lib/workstation")
        let kept = try FileManager.default.contentsOfDirectory(atPath: stateDir)
        #expect(kept.contains("journal.jsonl") && kept.contains("state.json"))
        for f in kept {
            assertClean(
                String(decoding: FileManager.default.contents(atPath: stateDir + "/" + f) ?? Data(), as: UTF8.self),
                f,
                s
            )
        }
        // The secrets did reach their files (the grep above is not vacuous).
        #expect(
            String(decoding: s.root.read("/home/alice/.claude.json") ?? Data(), as: UTF8.self).contains(Secrets.haToken)
        )
    }

    /// Servers that echo the presented token in their refusals, and tokens with a line break in them: nothing the
    /// binary prints carries either token.
    @Test func aTokenEchoedByTheServerOrBrokenByANewlineNeverReachesTheOutput() throws {
        let s = try Sandbox()
        try s.prepare()
        s.authentik.echoPresentedToken = true
        s.vault.echoPresentedToken = true
        let base = ["--roster", s.rosterPath, "--settings", s.settingsPath, "--root", s.dir]
        let wrongAK = "ak-WRONG-echoed-token-0123456789"
        let wrongVault = "hvs.WRONG-echoed-token-abcdef"
        s.vault.secrets["secret/beads"] = [FakeVault.Version(data: ["password": Secrets.beads])]
        for (name, env) in [
            ("echoing servers", ["AUTHENTIK_TOKEN": wrongAK, "VAULT_TOKEN": wrongVault]),
            (
                "newline tokens",
                ["AUTHENTIK_TOKEN": "ak-WRONG\nechoed-token-0123456789", "VAULT_TOKEN": "hvs.WRONG\r\necho"]
            ),
        ] {
            for command in [["plan"], ["plan", "--json"], ["apply"], ["doctor"]] {
                let r = try CLI.run(command + base, env: env)
                for (channel, text) in [("stdout", r.stdout), ("stderr", r.stderr)] {
                    #expect(
                        !text.contains("WRONG") && !text.contains("echoed-token"),
                        "\(name): \(command) \(channel) shows a token:\n\(text.prefix(1500))"
                    )
                }
                if name == "echoing servers" && command == ["plan"] {
                    #expect(
                        r.stdout.contains("<redacted>"),
                        "the echo reached the plan, redacted: \(r.stdout.prefix(1500))"
                    )
                }
                if name == "newline tokens" && command == ["plan"] {
                    #expect(r.stdout.contains("holds a line break"), "\(r.stdout.prefix(1500))")
                }
            }
        }
    }
}

import Foundation
import Testing
import WorkstationCore
import WorkstationHost
import WorkstationIntegrations
import WorkstationTestSupport

/// The shared Claude token (spec section 7) through the whole pipeline, against the loopback Vault stand-in and a
/// sandbox root with the real shadow utilities: who gets it, whose shell loads it, and logins it never clobbers.
@Suite(.serialized) struct ClaudeTokenTests: AuthFixtures {
    /// Who gets the shared token: roster `claude_login` wins over the tier, the tier over the default.
    @Test(arguments: [
        ("", "", ["alice"]),
        ("claude_login: own-login, ", "", [String]()),
        ("", "claude_login: shared, ", ["alice", "bob-dev"]),
        ("claude_login: own-login, ", "claude_login: shared, ", ["bob-dev"]),
    ])
    func sharedClaudeTokenGoesOnlyToThosePicked(_ aliceExtra: String, _ bobExtra: String, _ expected: [String]) throws {
        let roster = """
            users:
              carol: { authentik_user: carol, k8s_user: carol, tier: admin }
              alice: { \(aliceExtra)authentik_user: alice.smith, k8s_user: alice, tier: power-user, email: alice@example.org }
              bob-dev: { \(bobExtra)authentik_user: bob, k8s_user: bob, tier: namespace-owner, namespaces: [team-bob], email: bob@example.org }

            """
        let s = try sandbox(auth: Self.claudeAuth, roster: roster)
        let out = try s.apply()
        #expect(out.succeeded, "\(out.plan.errors) \(out.report.failed.map(\.error))")
        let holders = filesHolding(s, Data(Self.claudeToken.utf8))
        #expect(holders == expected.map { "home/\($0)/.config/workstation/claude.env" })
        for u in expected {
            let path = "/home/\(u)/.config/workstation/claude.env"
            #expect(s.stat(path)?.mode == 0o600)
            #expect(s.stat(path)?.uid == s.uid(u))
            let text = String(decoding: s.root.read(path) ?? Data(), as: UTF8.self)
            #expect(text.contains("export CLAUDE_CODE_OAUTH_TOKEN='\(Self.claudeToken)'\n"))
        }
        // The profile snippet sources it; no unit file, drop-in or other file carries the token.
        let snippet = String(decoding: s.root.read("/etc/profile.d/workstation-auth.sh") ?? Data(), as: UTF8.self)
        #expect(snippet.contains("$HOME/.config/workstation/claude.env") && snippet.contains("-O"))
        #expect(s.stat("/etc/profile.d/workstation-auth.sh")?.mode == 0o644)
        // Plans show only the redaction marker.
        let json = String(decoding: try JSONEncoder().encode(out.plan), as: UTF8.self)
        #expect(!json.contains(Self.claudeToken))
    }

    /// The token reaches the person's own login shell and no one else's: root (or anyone) whose HOME points into
    /// alice's home sources nothing, because the file is not theirs.
    @Test func onlyTheOwnersShellLoadsTheToken() throws {
        let s = try sandbox(auth: Self.claudeAuth)
        #expect(try s.apply().succeeded)
        let uid = try #require(s.uid("alice"))
        let snippet = s.root.path("/etc/profile.d/workstation-auth.sh")
        let script = ". \(snippet); printf '%s' \"${CLAUDE_CODE_OAUTH_TOKEN:-none}\""
        let asRoot = try run(["/bin/sh", "-c", script], env: ["HOME": s.home("alice"), "PATH": "/usr/bin:/bin"])
        #expect(
            asRoot.status == 0 && String(decoding: asRoot.stdoutData, as: UTF8.self) == "none",
            "root sources nothing from alice's home"
        )
        let asAlice = try run(
            ["/usr/bin/setpriv", "--reuid=\(uid)", "--regid=\(uid)", "--clear-groups", "/bin/sh", "-c", script],
            env: ["HOME": s.home("alice"), "PATH": "/usr/bin:/bin"]
        )
        #expect(String(decoding: asAlice.stdoutData, as: UTF8.self) == Self.claudeToken, "alice's own shell gets it")
        let asBob = try run(
            [
                "/usr/bin/setpriv", "--reuid=\(try #require(s.uid("bob-dev")))", "--regid=\(uid)", "--clear-groups",
                "/bin/sh", "-c", script,
            ],
            env: ["HOME": s.home("alice"), "PATH": "/usr/bin:/bin"]
        )
        #expect(
            String(decoding: asBob.stdoutData, as: UTF8.self) == "none",
            "another account pointing HOME at alice's home gets nothing"
        )
    }

    /// doctor warns where the shared token would override a login the person made after it was written.
    @Test func doctorWarnsWhereTheSharedTokenOverridesALogin() throws {
        let s = try sandbox(auth: Self.claudeAuth)
        #expect(try s.apply().succeeded)
        func warning() throws -> Finding? {
            try Doctor(root: s.root, inputs: s.inputs()).run().findings.first {
                $0.check == "claude-login" && $0.user == "alice"
            }
        }
        #expect(try warning() == nil)
        try s.write("/home/alice/.claude/.credentials.json", "{}")
        let w = try #require(try warning())
        #expect(w.severity == .warn && w.fix?.contains("claude.env") == true)
    }

    /// A person who already logged in keeps their login: nothing is written and the token is not even read.
    @Test func aWorkingLoginIsNeverClobbered() throws {
        let s = try sandbox(auth: "")
        #expect(try s.apply().succeeded)
        let uid = try #require(s.uid("alice"))
        try s.write("/home/alice/.claude/.credentials.json", #"{"claudeAiOauth": {"accessToken": "alices-own"}}"#)
        chown(s.root.path("/home/alice/.claude/.credentials.json"), uid_t(uid), gid_t(uid))
        s.extraSettings = Self.claudeAuth
        let reads = s.vault.server.requests.count
        let before = s.snapshot().entries.filter { $0.key.hasPrefix("home/alice") }
        let out = try s.apply()
        #expect(out.succeeded, "\(out.plan.errors)")
        #expect(s.root.read("/home/alice/.config/workstation/claude.env") == nil)
        #expect(
            s.snapshot().entries.filter { $0.key.hasPrefix("home/alice") } == before,
            "alice's home is byte-identical"
        )
        #expect(
            !s.vault.server.requests.dropFirst(reads).contains { $0.path.contains("/claude") },
            "the shared token is not read for her"
        )
        // And an env file she wrote herself is kept as it is.
        let t = try sandbox(auth: "")
        #expect(try t.apply().succeeded)
        try t.write("/home/alice/.config/workstation/claude.env", "export CLAUDE_CODE_OAUTH_TOKEN=mine\n")
        t.extraSettings = Self.claudeAuth
        let again = try t.apply()
        #expect(
            t.root.read("/home/alice/.config/workstation/claude.env")
                == Data("export CLAUDE_CODE_OAUTH_TOKEN=mine\n".utf8)
        )
        #expect(again.plan.changes.contains { $0.kind == .conflict && $0.summary.contains("claude.env exists") })
    }
}

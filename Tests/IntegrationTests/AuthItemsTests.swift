import Foundation
import Testing
import WorkstationCore
import WorkstationHost
import WorkstationIntegrations
import WorkstationTestSupport

/// The per-user auth items of spec section 7 through the whole pipeline, against the loopback Vault stand-in and a
/// sandbox root with the real shadow utilities: the Claude token (shared or own login), the beads credential as
/// exact bytes or its variable, the playwright MCP entry, the service-account-token kubeconfig.
@Suite(.serialized) struct AuthItemsTests {
    static let claudeToken = "sk-ant-oat01-SECRETCLAUDE-q9w8e7"
    /// A binary credential: NUL, 0xFF, a quote, CR and LF line breaks.
    static let binaryCredential = Data([0x00, 0xFF, 0x0A, 0x61, 0x27, 0x0D, 0x0A, 0x80, 0x00, 0x7F])
    /// A credential a shell variable can carry (no NUL), still not UTF-8 and with a quote and a newline.
    static let shellCredential = Data([0x70, 0x27, 0x71, 0x0A, 0xFF, 0x24, 0x28, 0x78, 0x29, 0x20])
    static let k8sToken = "eyJSECRETK8STOKEN.alice"

    func sandbox(auth: String, roster: String? = nil) throws -> Sandbox {
        let s = try Sandbox()
        s.vault.secrets["secret/claude"] = [FakeVault.Version(data: ["oauth_token": Self.claudeToken])]
        s.vault.secrets["secret/dolt"] = [
            FakeVault.Version(data: [
                "key": Self.binaryCredential.base64EncodedString(),
                "password": Self.shellCredential.base64EncodedString(), "plain": "not base64!",
            ])
        ]
        s.extraSettings = auth
        if let roster { s.roster = roster }
        return s
    }

    /// Every file (or link target) under the root holding `needle`, by root-relative path.
    func filesHolding(_ s: Sandbox, _ needle: Data) -> [String] { s.snapshot().paths(containing: needle) }

    /// Runs `argv` with exactly `env` (nothing inherited).
    func run(_ argv: [String], env: [String: String]) throws -> ProcessOutput {
        try TestProcess.run(argv[0], Array(argv.dropFirst()), environment: env)
    }

    // MARK: Claude

    static let claudeAuth = """
        auth:
          claude:
            default: own-login
            tiers: {power-user: shared}
            token: {path: claude, key: oauth_token}

        """

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

    // MARK: beads

    /// The binary credential is decoded from base64 and written as exactly those bytes, 0600, the person's.
    @Test func beadsCredentialIsWrittenAsExactBytes() throws {
        let s = try sandbox(
            auth: """
                auth:
                  beads: {path: dolt, key: key, delivery: file, target: .config/beads/credential-key}

                """
        )
        let out = try s.apply()
        #expect(out.succeeded, "\(out.plan.errors)")
        for u in ["alice", "bob-dev"] {
            #expect(s.root.read("/home/\(u)/.config/beads/credential-key") == Self.binaryCredential)
            #expect(s.stat("/home/\(u)/.config/beads/credential-key")?.mode == 0o600)
            #expect(s.stat("/home/\(u)/.config/beads/credential-key")?.uid == s.uid(u))
        }
        #expect(
            s.root.read("/home/carol/.config/beads/credential-key") == nil,
            "admins are adopted, never written into"
        )
        // The bytes are in the two files only; the base64 text nowhere (journal, state, plan).
        #expect(
            filesHolding(s, Self.binaryCredential) == [
                "home/alice/.config/beads/credential-key", "home/bob-dev/.config/beads/credential-key",
            ]
        )
        #expect(filesHolding(s, Data(Self.binaryCredential.base64EncodedString().utf8)).isEmpty)
        #expect(
            String(decoding: try JSONEncoder().encode(out.plan), as: UTF8.self).contains(
                Self.binaryCredential.base64EncodedString()
            ) == false
        )
        let second = try s.apply()
        #expect(second.plan.actionable.isEmpty)
    }

    /// The variable route: `DOLT_REMOTE_PASSWORD` in a 0600 env file; a shell that sources it gets the exact bytes.
    @Test func beadsPasswordVariableCarriesTheExactBytes() throws {
        let s = try sandbox(auth: "auth:\n  beads: {path: dolt, key: password}\n")
        #expect(try s.apply().succeeded)
        let file = s.root.path("/home/alice/.config/workstation/beads.env")
        #expect(s.stat("/home/alice/.config/workstation/beads.env")?.mode == 0o600)
        let got = try run(
            ["/bin/sh", "-c", ". '\(file)'; printf '%s' \"$DOLT_REMOTE_PASSWORD\""],
            env: ["PATH": "/usr/bin:/bin"]
        )
        #expect(got.stdoutData == Self.shellCredential)
        let snippet = String(decoding: s.root.read("/etc/profile.d/workstation-auth.sh") ?? Data(), as: UTF8.self)
        #expect(snippet.contains("$HOME/.config/workstation/beads.env"))
    }

    /// Values that cannot become the file are errors naming the reference and the fix, and nothing is written.
    @Test(arguments: [
        ("{path: dolt, key: key}", "NUL byte"),
        ("{path: dolt, key: plain, delivery: file}", "not base64"),
    ])
    func undeliverableCredentialsAreErrors(_ beads: String, _ message: String) throws {
        let s = try sandbox(auth: "auth:\n  beads: \(beads)\n")
        let out = try s.apply()
        #expect(!out.succeeded)
        let err = try #require(out.plan.errors.first { $0.contains("secret/dolt#") })
        #expect(err.contains(message) && err.contains("alice"), "\(err)")
        #expect(!err.contains("not base64!"), "the value is never quoted")
        #expect(
            s.snapshot().entries.filter { $0.key.contains("beads.env") || $0.key.contains("credential-key") }.isEmpty
        )
    }

    /// bd's path inside the infra clone is refused (the git guard); the variable lives outside the clone, and
    /// `git add -A && git status --porcelain` in a real clone never shows the credential.
    @Test func theCredentialNeverEntersTheClone() throws {
        let s = try sandbox(auth: "")
        #expect(try s.apply().succeeded)
        let clone = s.home("alice") + "/code"
        let git = [
            "/usr/bin/git", "-c", "safe.directory=*", "-c", "user.email=t@example.org", "-c", "user.name=t", "-C",
            clone,
        ]
        try FileManager.default.createDirectory(atPath: clone + "/.beads", withIntermediateDirectories: true)
        #expect(try run(["/usr/bin/git", "init", "-q", clone], env: ["PATH": "/usr/bin:/bin"]).status == 0)
        try Data("issues\n".utf8).write(to: URL(fileURLWithPath: clone + "/.beads/config.yaml"))
        s.extraSettings = """
            auth:
              beads: {path: dolt, key: key, delivery: file, target: code/.beads/.beads-credential-key}

            """
        let refused = try s.apply()
        #expect(refused.plan.changes.contains { $0.kind == .conflict && $0.summary.contains("git working tree") })
        #expect(FileManager.default.fileExists(atPath: clone + "/.beads/.beads-credential-key") == false)
        s.extraSettings = "auth:\n  beads: {path: dolt, key: password}\n"
        #expect(try s.apply().succeeded)
        #expect(s.root.read("/home/alice/.config/workstation/beads.env") != nil)
        #expect(try run(git + ["add", "-A"], env: ["PATH": "/usr/bin:/bin"]).status == 0)
        let status = try run(
            git + ["status", "--porcelain", "--ignored", "--untracked-files=all"],
            env: ["PATH": "/usr/bin:/bin"]
        )
        #expect(String(decoding: status.stdoutData, as: UTF8.self) == "A  .beads/config.yaml\n")
        let tracked = try run(git + ["ls-files", "-s"], env: ["PATH": "/usr/bin:/bin"])
        #expect(!String(decoding: tracked.stdoutData, as: UTF8.self).contains("credential"))
        for needle in [Self.shellCredential, Self.binaryCredential] {
            #expect(filesHolding(s, needle).allSatisfy { !$0.hasPrefix("home/alice/code") })
        }
    }

    // MARK: playwright

    /// Added where absent, merged into a file a secret created in the same run, idempotent, and a person who
    /// removes it keeps it removed.
    @Test func playwrightEntryIsAddedOnlyWhereAbsent() throws {
        let s = try sandbox(auth: "auth:\n  playwright: {}\n")
        let out = try s.apply()
        #expect(out.succeeded, "\(out.plan.errors) \(out.report.failed.map(\.error))")
        func servers(_ u: String) throws -> [String: Any] {
            let obj = try #require(
                try JSONSerialization.jsonObject(with: s.root.read("/home/\(u)/.claude.json") ?? Data())
                    as? [String: Any]
            )
            return try #require(obj["mcpServers"] as? [String: Any])
        }
        #expect(try servers("bob-dev").keys.sorted() == ["playwright"])
        #expect((try servers("bob-dev")["playwright"] as? [String: Any])?["command"] as? String == "npx")
        #expect(
            try servers("alice").keys.sorted() == ["ha", "playwright"],
            "the ha secret file came first, the entry was added to it"
        )
        #expect(
            s.stat("/home/bob-dev/.claude.json")?.mode == 0o600
                && s.stat("/home/bob-dev/.claude.json")?.uid == s.uid("bob-dev")
        )
        #expect(try s.apply().plan.actionable.isEmpty)
        // bob removes it: it stays removed.
        try s.write("/home/bob-dev/.claude.json", "{\"mcpServers\": {}}\n")
        #expect(try s.apply().plan.actionable.isEmpty)
    }

    /// The person's own entry and every other byte of the file are kept; a file that is not JSON is left alone
    /// and reported.
    @Test(arguments: [
        (#"{"mcpServers": {"playwright": {"command": "mine"}}, "x": 1}"#, false, false),
        ("{not json", false, true),
        (#"["a"]"#, false, true),
        (#"{"mcpServers": 3}"#, false, true),
        (#"{"numStartups": 4,   "tips": {"a": "}{\""}, "projects": [1, {"b": []}]}"#, true, false),
    ])
    func existingClaudeJSONIsRespected(_ content: String, _ added: Bool, _ reported: Bool) throws {
        let s = try sandbox(auth: "")
        #expect(try s.apply().succeeded)
        try s.write("/home/bob-dev/.claude.json", content)
        chown(s.root.path("/home/bob-dev/.claude.json"), uid_t(s.uid("bob-dev")!), gid_t(s.uid("bob-dev")!))
        s.extraSettings = "auth:\n  playwright: {}\n"
        let out = try s.apply()
        let after = s.root.read("/home/bob-dev/.claude.json") ?? Data()
        #expect(
            out.plan.changes.contains {
                $0.kind == .conflict && $0.user == "bob-dev" && $0.summary.contains("left alone")
            } == reported
        )
        if added {
            let obj = try #require(try JSONSerialization.jsonObject(with: after) as? [String: Any])
            let before = try #require(try JSONSerialization.jsonObject(with: Data(content.utf8)) as? [String: Any])
            #expect(
                try JSONSerialization.data(withJSONObject: obj.filter { $0.key != "mcpServers" }, options: .sortedKeys)
                    == JSONSerialization.data(withJSONObject: before, options: .sortedKeys)
            )
            #expect((obj["mcpServers"] as? [String: Any])?.keys.sorted() == ["playwright"])
            #expect(s.stat("/home/bob-dev/.claude.json")?.mode == 0o600)
        } else {
            #expect(after == Data(content.utf8), "byte-identical")
        }
    }

    /// Something that is not a regular file at `~/.claude.json` is never opened for writing, followed or replaced.
    @Test(arguments: ["symlink", "fifo", "directory"])
    func claudeJSONThatIsNotAFileIsLeftAlone(_ kind: String) throws {
        let s = try sandbox(auth: "")
        #expect(try s.apply().succeeded)
        let path = s.root.path("/home/bob-dev/.claude.json")
        let target = s.root.path("/etc/workstation/not-bobs.json")
        try Data("{}\n".utf8).write(to: URL(fileURLWithPath: target))
        switch kind {
        case "symlink": try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: target)
        case "fifo": #expect(mkfifo(path, 0o600) == 0)
        default: try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        }
        s.extraSettings = "auth:\n  playwright: {}\n"
        let before = s.snapshot()
        let out = try s.apply()
        #expect(
            out.plan.changes.contains {
                $0.kind == .conflict && $0.user == "bob-dev" && $0.summary.contains("not a file")
            }
        )
        #expect(s.root.read("/etc/workstation/not-bobs.json") == Data("{}\n".utf8))
        #expect(
            s.snapshot().entries.filter { $0.key.hasPrefix("home/bob-dev") }
                == before.entries.filter { $0.key.hasPrefix("home/bob-dev") }
        )
    }

    /// With a per-user playwright unit in `units:`, the entry is the loopback URL on the person's own port.
    @Test func playwrightUnitGivesTheOwnPort() throws {
        let s = try sandbox(
            auth: """
                units:
                  - {template: t3-serve@, port_range: [3774, 3873], port_env: T3CODE_PORT}
                  - {template: playwright-mcp@, port_range: [8931, 8999], port_env: PLAYWRIGHT_PORT}
                auth:
                  playwright: {unit: playwright-mcp@}

                """
        )
        let out = try s.apply()
        #expect(out.succeeded, "\(out.plan.errors)")
        let obj = try #require(
            try JSONSerialization.jsonObject(with: s.root.read("/home/bob-dev/.claude.json") ?? Data())
                as? [String: Any]
        )
        let entry = try #require((obj["mcpServers"] as? [String: Any])?["playwright"] as? [String: Any])
        let url = try #require(entry["url"] as? String)
        #expect(entry["type"] as? String == "http")
        #expect(url.hasPrefix("http://127.0.0.1:89") && url.hasSuffix("/mcp"))
    }

    // MARK: kubernetes

    /// The service-account-token fallback: a kubeconfig naming the person's 0600 token file (no token inside),
    /// the token read per person from Vault; the real kubectl parses it.
    @Test func serviceAccountTokenKubeconfig() throws {
        let s = try sandbox(auth: "")
        s.vault.secrets["secret/k8s/alice"] = [FakeVault.Version(data: ["token": Self.k8sToken])]
        s.vault.secrets["secret/k8s/bob-dev"] = [FakeVault.Version(data: ["token": "eyJSECRETK8STOKEN.bob"])]
        s.kubernetesSection = """
            kubernetes:
              server: https://k8s.example.org:6443
              cluster_name: home
              auth: service-account-token
              service_account_token: {path: 'k8s/{os_user}', key: token}
            """
        let out = try s.apply()
        #expect(out.succeeded, "\(out.plan.errors)")
        #expect(s.root.read("/home/alice/.kube/token") == Data(Self.k8sToken.utf8))
        #expect(
            s.stat("/home/alice/.kube/token")?.mode == 0o600 && s.stat("/home/alice/.kube/token")?.uid == s.uid("alice")
        )
        #expect(s.root.read("/home/bob-dev/.kube/token") == Data("eyJSECRETK8STOKEN.bob".utf8))
        let kc = try #require(s.root.read("/home/alice/.kube/config"))
        #expect(kc.range(of: Data(Self.k8sToken.utf8)) == nil)
        let view = try TestProcess.run(
            "/usr/bin/kubectl",
            [
                "config", "view", "--kubeconfig", s.root.path("/home/alice/.kube/config"), "-o", "json",
            ]
        )
        #expect(view.status == 0, "\(view.stderr)")
        let cfg = try #require(try JSONSerialization.jsonObject(with: Data(view.stdout.utf8)) as? [String: Any])
        let user = try #require((cfg["users"] as? [[String: Any]])?.first?["user"] as? [String: Any])
        #expect(user["tokenFile"] as? String == "/home/alice/.kube/token")
        #expect(user["exec"] == nil)
        #expect(try s.apply().plan.actionable.isEmpty)
    }

    /// Bad `auth:` settings are located errors and the host stays byte-identical.
    @Test(arguments: [
        ("auth:\n  claude: {default: shared}\n", "shared login needs token"),
        ("auth:\n  claude: {default: maybe}\n", "must be own-login or shared"),
        ("auth:\n  beads: {path: dolt, key: k, delivery: carrier-pigeon}\n", "must be env"),
        ("auth:\n  playwright: {unit: nope@}\n", "not among units"),
        ("auth:\n  claude: {token: {path: c, key: k}, env_file: .claude/token.env}\n", "outside ~/.claude"),
        ("auth:\n  beads: {path: dolt, key: k, delivery: file, target: .claude.json}\n", "writes ~/.claude.json"),
    ])
    func badAuthSettingsChangeNothing(_ yaml: String, _ message: String) throws {
        let s = try sandbox(auth: yaml)
        try s.prepare()
        let before = s.snapshot()
        do {
            _ = try s.apply()
            Issue.record("must be refused: \(yaml)")
        } catch let f as ValidationFailure {
            #expect(f.description.contains(message), "\(f.description)")
            #expect(f.description.contains("workstation.yaml:"), "located: \(f.description)")
        }
        #expect(s.snapshot() == before)
    }
}

import Foundation
import WorkstationTestSupport

/// What the per-user auth suites share: the secrets Vault serves them, a sandbox configured with an `auth:` section,
/// and a search of the root for a secret's bytes. A suite gets them by conforming.
protocol AuthFixtures {}

extension AuthFixtures {
    static var claudeToken: String { "sk-ant-oat01-SECRETCLAUDE-q9w8e7" }
    /// A binary credential: NUL, 0xFF, a quote, CR and LF line breaks.
    static var binaryCredential: Data { Data([0x00, 0xFF, 0x0A, 0x61, 0x27, 0x0D, 0x0A, 0x80, 0x00, 0x7F]) }
    /// A credential a shell variable can carry (no NUL), still not UTF-8 and with a quote and a newline.
    static var shellCredential: Data { Data([0x70, 0x27, 0x71, 0x0A, 0xFF, 0x24, 0x28, 0x78, 0x29, 0x20]) }
    static var k8sToken: String { "eyJSECRETK8STOKEN.alice" }

    /// alice (power-user) gets the shared Claude token, everyone else logs in on their own.
    static var claudeAuth: String {
        """
        auth:
          claude:
            default: own-login
            tiers: {power-user: shared}
            token: {path: claude, key: oauth_token}

        """
    }

    /// A sandbox whose Vault holds the Claude token (`secret/claude`) and the credentials (`secret/dolt`), with
    /// `auth` added to its settings and, when given, `roster` as its roster.
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
}

import Foundation
import Testing

@testable import WorkstationCore

@Suite struct SecretGuardTests {
    @Test(arguments: [
        ("MEMORY_API_KEY", "*_KEY"), ("apiKey", "*_KEY"), ("CLAUDE_CODE_OAUTH_TOKEN", "*_TOKEN"),
        ("AWS_SECRET_ACCESS_KEY", "*_KEY"),
        ("client_secret", "*SECRET*"), ("DB_PASSWORD", "*PASSWORD*"), ("vault-token", "*_TOKEN"),
    ])
    func secretNames(name: String, pattern: String) {
        #expect(SecretGuard.secretName(name) == pattern)
    }

    @Test(arguments: [
        "PATH", "EDITOR", "apiKeyHelper", "KEYBOARD_LAYOUT", "TOKENIZER_MODE", "permissions", "DISABLE_TELEMETRY",
    ])
    func plainNames(name: String) {
        #expect(SecretGuard.secretName(name) == nil)
    }

    @Test(arguments: [
        "sk-ant-api03-abcdefghijklmnopqrstuvwxyz", "ghp_0123456789abcdefABCDEF0123456789abcd", "AKIAIOSFODNN7EXAMPLE",
        "hvs.CAESIJ0123456789abcdefghijkl", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXZhbHVl",
        "https://alice:hunter2@git.example.org/x.git", "https://ha.example.org/mcp?token=abcdef",
        "Q2xhdWRlQ29kZTEyMzQ1Njc4OTBhYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5eg9Zk",
    ])
    func tokenShapedValues(value: String) {
        #expect(SecretGuard.tokenShaped(value) != nil)
    }

    @Test(arguments: [
        "vim", "/usr/local/bin/workstation", "https://git.example.org/infra.git",
        "Never commit secrets; ask before applying.",
        "1", "en_US.UTF-8", "0123456789abcdef0123456789abcdef01234567",
        "See docs.example.org/Handbook/Section2/WorkstationOnboardingGuide.html for details",
        "/opt/Tools/Release2024/bin/WorkstationHelperBinary-x86_64",
    ])
    func ordinaryValues(value: String) {
        #expect(SecretGuard.tokenShaped(value) == nil)
    }

    @Test func shellScanFindsAssignmentsAndLines() {
        let text = "# ~/.bashrc\nexport HISTSIZE=1000\nexport GITHUB_TOKEN=abc\nGPG_TTY=$(tty)\nAPI_KEY=\"$FROM_ENV\"\n"
        let findings = SecretGuard.scanShell(text)
        #expect(findings.map(\.key) == ["GITHUB_TOKEN"])
        #expect(findings.first?.line == 3)
    }

    @Test func jsonScanFindsEnvSecretsAndNestedTokens() {
        let v = ManagedValue.object([
            "env": .object(["MEMORY_API_KEY": .string("x"), "EDITOR": .string("vim")]),
            "mcp": .object(["url": .string("https://ha.example.org/api?token=abc")]),
            "apiKeyHelper": .string("/usr/local/bin/key-helper"),
        ])
        #expect(SecretGuard.scan(v).map(\.key) == ["env.MEMORY_API_KEY", "mcp.url"])
    }
}

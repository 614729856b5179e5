import Foundation
import NIOSSL
import Testing
import WorkstationCore
import WorkstationHost
import WorkstationIntegrations
import WorkstationTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Tokens: where they may come from, and that no message ever carries one.
@Suite(.serialized) struct TokenHygieneTests {
    static let token = "hvs.SECRET-token-0123456789abcdef"

    enum Source: Sendable {
        case env(String)
        case file(content: String, mode: Int, owner: UInt32?)
        case symlink, directory
    }

    @Test(
        arguments: [
            (
                "newline inside the variable", Source.env("hvs.SECRET-token\n0123456789abcdef"),
                "the value of VAULT_TOKEN holds a line break"
            ),
            ("carriage return inside the variable", Source.env("hvs.SECRET\r\nX-Injected: 1"), "holds a line break"),
            ("space inside the variable", Source.env("hvs.SECRET token"), "holds a space"),
            (
                "control character in the file",
                Source.file(content: "hvs.SECRET\u{1B}token\n", mode: 0o600, owner: nil), "holds a control character"
            ),
            (
                "two lines in the file",
                Source.file(content: "hvs.SECRET-token-0123\nsecond-line\n", mode: 0o600, owner: nil),
                "holds a line break"
            ),
            (
                "file readable by others", Source.file(content: token, mode: 0o644, owner: nil),
                "has mode 644: permissions are too open"
            ),
            ("file readable by the group", Source.file(content: token, mode: 0o640, owner: nil), "chmod 600"),
            ("file writable by the group", Source.file(content: token, mode: 0o620, owner: nil), "too open"),
            (
                "file owned by another account", Source.file(content: token, mode: 0o600, owner: 1234),
                "is owned by uid 1234, not root"
            ),
            ("file is a symlink", Source.symlink, "is a symlink"),
            ("file is a directory", Source.directory, "not a regular file"),
        ] as [(String, Source, String)]
    )
    func aBadTokenIsRefusedWithoutShowingIt(_ name: String, _ source: Source, _ fragment: String) throws {
        let s = try Sandbox()
        var env: [String: String] = [:]
        switch source {
        case .env(let value): env["VAULT_TOKEN"] = value
        case .file(let content, let mode, let owner):
            try s.write("/etc/ws/vault.token", content, mode: mode)
            if let owner { #expect(chown(s.root.path("/etc/ws/vault.token"), owner, owner) == 0) }
        case .symlink:
            try s.write("/etc/ws/real.token", Self.token)
            try FileManager.default.createSymbolicLink(
                atPath: s.root.path("/etc/ws/vault.token"),
                withDestinationPath: s.root.path("/etc/ws/real.token")
            )
        case .directory:
            try FileManager.default.createDirectory(
                atPath: s.root.path("/etc/ws/vault.token"),
                withIntermediateDirectories: true
            )
        }
        let st = try Settings.parse(
            Data("vault: {url: http://127.0.0.1:1, token_file: /etc/ws/vault.token}\n".utf8),
            file: "w.yaml"
        )
        let c = IntegrationClients.live(settings: st, root: s.root, environment: env)
        #expect(c.vault == nil, "\(name)")
        let problem = c.problems["vault"] ?? ""
        #expect(problem.contains(fragment), "\(name): \(problem)")
        for piece in ["SECRET", "0123456789abcdef", "second-line", "X-Injected"] {
            #expect(!problem.contains(piece), "\(name) shows the token: \(problem)")
        }
    }

    @Test func aRootOwnedPrivateFileIsAccepted() throws {
        let s = try Sandbox()
        try s.write("/etc/ws/vault.token", "  \(Self.token)\n", mode: 0o600)
        let st = try Settings.parse(
            Data("vault: {url: http://127.0.0.1:1, token_file: /etc/ws/vault.token}\n".utf8),
            file: "w.yaml"
        )
        #expect(IntegrationClients.token(st.vault!.token, root: s.root, environment: [:]) == .success(Self.token))
    }

    @Test func aServerEchoingTheTokenNeverPutsItInAMessage() throws {
        let vault = try FakeVault()
        vault.echoPresentedToken = true
        let authentik = try FakeAuthentik(users: ["alice"])
        authentik.echoPresentedToken = true
        let wrong = "ak-WRONG-token-that-must-not-show-42"
        var messages: [String] = []
        do {
            _ = try LiveVaultClient(baseURL: vault.url, token: Self.token, namespace: nil, timeout: 5).readKV(
                mount: "secret",
                path: "x"
            )
        } catch {
            messages.append("\(error)")
        }
        // The echo is long: the token straddles where the detail is shortened, so no prefix of it may survive either.
        do {
            _ = try LiveAuthentikClient(baseURL: authentik.url, token: wrong, timeout: 5).findGroup(name: "T3 Users")
        } catch { messages.append("\(error)") }
        #expect(messages.count == 2)
        for m in messages {
            #expect(m.contains("<redacted>"), "\(m)")
            #expect(
                !m.contains("SECRET") && !m.contains("WRONG") && !m.contains("ak-WRONG-tok"),
                "a message shows the token: \(m)"
            )
        }
    }
}

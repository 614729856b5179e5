import Foundation
import Testing
import WorkstationCore
import WorkstationHost
import WorkstationIntegrations
import WorkstationTestSupport

/// The beads credential through the whole pipeline: exact bytes in a file or in its variable, values that cannot
/// be delivered refused, and never inside the infra clone.
@Suite(.serialized) struct BeadsCredentialTests: AuthFixtures {

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
}

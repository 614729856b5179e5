import Foundation
import Synchronization
import Testing
import WorkstationTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// The keyless infra clone, end to end: the built binary, real shadow-utils, real git and git-crypt, a dumb-HTTP
/// git server on 127.0.0.1 that requires credentials, and a temp root.
@Suite(.serialized) struct InfraCloneEndToEndTests {
    static let roster = """
        users:
          alice: { authentik_user: alice.smith, k8s_user: alice, tier: power-user }

        """

    /// A temp root with the roster and a settings file pointing at `url`.
    struct Setup {
        let root: TempRoot
        let rosterPath: String
        let settingsPath: String
        var args: [String] { ["--roster", rosterPath, "--settings", settingsPath, "--root", root.path] }
        var home: String { root.file("/home/alice") }
        var code: String { root.file("/home/alice/code") }

        init(url: String?) throws {
            root = try TempRoot()
            rosterPath = root.file("/input/roster.yaml")
            settingsPath = root.file("/input/workstation.yaml")
            try root.write("/input/roster.yaml", InfraCloneEndToEndTests.roster)
            try root.write(
                "/input/workstation.yaml",
                url.map { "infra_repo:\n  url: \($0)\n  branch: main\n" } ?? "lock_timeout: 10\n"
            )
        }

        func setURL(_ url: String) throws {
            try root.write("/input/workstation.yaml", "infra_repo:\n  url: \(url)\n  branch: main\n")
        }

        /// alice's uid and gid from the temp root's passwd.
        func alice() throws -> (uid: Int, gid: Int) {
            let line = try #require(root.read("/etc/passwd")?.split(separator: "\n").first { $0.hasPrefix("alice:") })
            let f = line.split(separator: ":", omittingEmptySubsequences: false)
            return (Int(f[2])!, Int(f[3])!)
        }

        /// Runs a shell script as alice (numeric setpriv, like the product), with HOME set to her home.
        func asAlice(_ script: String) throws -> ProcessOutput {
            let (uid, gid) = try alice()
            return try TestProcess.shell(
                "setpriv --reuid=\(uid) --regid=\(gid) --clear-groups -- /bin/sh -c \"$SCRIPT\"",
                environment: ["HOME": home, "SCRIPT": script, "GIT_TERMINAL_PROMPT": "0"]
            )
        }
    }

    @Test func applyClonesKeylessAsTheUserAndTheHookGuardsProtectedFiles() throws {
        let fixture = try InfraFixture()
        let server = try LoopbackGitServer(directory: fixture.served, user: "deploy", password: "s3cret")
        defer { server.stop() }
        let url = "http://deploy:s3cret@127.0.0.1:\(server.port)/infra.git"
        let s = try Setup(url: nil)
        let first = try CLI.run(["apply", "--init-root"] + s.args)
        #expect(first.status == 0, "\(first.stderr)")
        // alice's global git config has a git-crypt filter that needs the key (as after an unlock elsewhere):
        // a clone that inherits it fails at checkout (the control below); workstation's must not.
        let (uid, gid) = try s.alice()
        let globalFilter =
            "[filter \"git-crypt\"]\n\tsmudge = git-crypt smudge\n\tclean = git-crypt clean\n\trequired = true\n"
        try s.root.write("/home/alice/.gitconfig", globalFilter)
        #expect(chown(s.home + "/.gitconfig", uid_t(uid), gid_t(gid)) == 0)

        try s.setURL(url)
        let plan = try CLI.run(["plan"] + s.args)
        #expect(
            plan.stdout.contains(
                "+ clone http://***@127.0.0.1:\(server.port)/infra.git into /home/alice/code as alice"
            ),
            "\(plan.stdout)"
        )
        #expect(plan.stdout.contains("url: (none) -> http://***@127.0.0.1:\(server.port)/infra.git"), "\(plan.stdout)")
        let applied = try CLI.run(["apply"] + s.args)
        #expect(applied.status == 0, "\(applied.stderr)")

        // git's own lines are forwarded as progress, prefixed with the person.
        #expect(applied.stderr.contains("alice:   Cloning into '.code.workstation-partial'..."), "\(applied.stderr)")
        // Progress and output never show the password.
        #expect(
            applied.stderr.contains(
                "alice: cloning http://***@127.0.0.1:\(server.port)/infra.git (branch main) into /home/alice/code"
            ),
            "\(applied.stderr)"
        )
        #expect(
            applied.stdout.contains(
                "+ clone http://***@127.0.0.1:\(server.port)/infra.git into /home/alice/code as alice"
            ),
            "\(applied.stdout)"
        )
        for text in [
            plan.stdout, applied.stdout, applied.stderr, s.root.read("/var/lib/workstation/journal.jsonl") ?? "",
        ] {
            #expect(!text.contains("s3cret"))
        }
        #expect(s.root.read("/var/lib/workstation/journal.jsonl")?.contains("http://***@127.0.0.1") == true)

        // The encrypted file is ciphertext, a plain file matches, everything is alice's.
        let secret = try #require(FileManager.default.contents(atPath: s.code + "/secret.txt"))
        #expect(Array(secret.prefix(10)) == Array("\0GITCRYPT\0".utf8))
        #expect(!String(decoding: secret, as: UTF8.self).contains("hunter2"))
        #expect(FileManager.default.contents(atPath: s.code + "/README.md") == Data(InfraFixture.readme.utf8))
        for rel in [
            "", "/secret.txt", "/README.md", "/docs/notes.md", "/.git", "/.git/config", "/.git/hooks/pre-commit",
        ] {
            let st = try #require(lstatOf(s.code + rel), "\(rel)")
            #expect(Int(st.st_uid) == uid && Int(st.st_gid) == gid, "\(rel) is owned by \(st.st_uid):\(st.st_gid)")
        }
        #expect(lstatOf(s.home + "/.code.workstation-partial") == nil)
        // The clone's config holds no credentials.
        let config = try #require(FileManager.default.contents(atPath: s.code + "/.git/config"))
        #expect(!String(decoding: config, as: UTF8.self).contains("s3cret"))

        // The launcher was written for the new user.
        let launcher = try #require(lstatOf(s.home + "/start-agent.sh"))
        #expect(launcher.st_mode & 0o777 == 0o755 && Int(launcher.st_uid) == uid)
        #expect(s.root.read("/home/alice/start-agent.sh")?.contains("cd '/home/alice/code' && exec claude") == true)

        // Converged: the next plan is empty; the status line verifies the locked state.
        let again = try CLI.run(["plan", "--detailed-exitcode"] + s.args)
        #expect(again.status == 0, "\(again.stdout)")
        let status = try CLI.run(["clone-status"] + s.args)
        #expect(
            status.stdout.contains("alice: /home/alice/code present, locked state verified"),
            "\(status.stdout)\(status.stderr)"
        )

        // Control: with alice's global filter, a clone without workstation's config fails for lack of a key.
        let plain = try s.asAlice(
            "cd \"$HOME\" && git clone -q http://deploy:s3cret@127.0.0.1:\(server.port)/infra.git plain-clone"
        )
        #expect(plain.status != 0, "a keyless clone with a configured git-crypt filter should fail: \(plain.stderr)")

        // The hook: a commit touching the protected file is refused, naming it; a plain commit works.
        let git = "git -c user.email=alice@example.org -c user.name=alice -C \"$HOME/code\""
        let refused = try s.asAlice(
            "printf 'db_password = oops\\n' > \"$HOME/code/secret.txt\" && \(git) add secret.txt && \(git) commit -qm leak"
        )
        #expect(refused.status != 0)
        #expect(
            refused.stderr.contains("commit refused") && refused.stderr.contains("  secret.txt"),
            "\(refused.stderr)"
        )
        let committedSecret = try s.asAlice("\(git) cat-file -p HEAD:secret.txt | head -c 10 | od -An -c")
        #expect(committedSecret.stdout.contains("G   I   T   C   R   Y   P   T"), "\(committedSecret.stdout)")
        let restore = try s.asAlice("\(git) restore --staged secret.txt && \(git) checkout -- secret.txt")
        #expect(restore.status == 0, "\(restore.stderr)")
        #expect(FileManager.default.contents(atPath: s.code + "/secret.txt") == secret)
        let allowed = try s.asAlice("printf 'more\\n' >> \"$HOME/code/README.md\" && \(git) commit -qam 'plain change'")
        #expect(allowed.status == 0, "\(allowed.stderr)")
        let log = try s.asAlice("\(git) log --format=%s -1")
        #expect(log.stdout == "plain change\n")
        // Dropping the git-crypt line from .gitattributes to sneak plain text in is refused too.
        let sneak = try s.asAlice("printf '' > \"$HOME/code/.gitattributes\" && \(git) commit -qam 'no more crypt'")
        #expect(sneak.status != 0 && sneak.stderr.contains(".gitattributes"), "\(sneak.stderr)")
    }

    @Test func anExistingSymlinkAtCodeIsKeptExactly() throws {
        let fixture = try InfraFixture()
        let server = try LoopbackGitServer(directory: fixture.served)
        defer { server.stop() }
        let s = try Setup(url: nil)
        let first = try CLI.run(["apply", "--init-root"] + s.args)
        #expect(first.status == 0, "\(first.stderr)")
        let (uid, gid) = try s.alice()
        #expect(symlink("/srv/shared/infra", s.code) == 0)
        #expect(lchown(s.code, uid_t(uid), gid_t(gid)) == 0)
        let before = try #require(lstatOf(s.code))

        try s.setURL("http://127.0.0.1:\(server.port)/infra.git")
        let plan = try CLI.run(["plan"] + s.args)
        #expect(
            plan.stdout.contains("note: alice: /home/alice/code is a symlink to /srv/shared/infra; kept, not cloned"),
            "\(plan.stdout)"
        )
        #expect(!plan.stdout.contains("+ clone"))
        let apply = try CLI.run(["apply"] + s.args)
        #expect(apply.status == 0, "\(apply.stderr)")
        let after = try #require(lstatOf(s.code))
        #expect(
            after.st_ino == before.st_ino && after.st_uid == before.st_uid
                && after.st_mtim.tv_sec == before.st_mtim.tv_sec
                && after.st_mtim.tv_nsec == before.st_mtim.tv_nsec
        )
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: s.code)) == "/srv/shared/infra")
        #expect(lstatOf(s.home + "/.code.workstation-partial") == nil)
        #expect(server.requests.isEmpty, "nothing was fetched")
        let status = try CLI.run(["clone-status"] + s.args)
        #expect(
            status.stdout.contains("alice: /home/alice/code kept (a symlink to /srv/shared/infra)"),
            "\(status.stdout)"
        )
        // No clone, so no launcher: it would start the agent in whatever ~/code points to.
        #expect(lstatOf(s.home + "/start-agent.sh") == nil)
    }

    @Test func aCloneKilledHalfwayLeavesNoDirectoryAndTheNextApplySucceeds() throws {
        let fixture = try InfraFixture()
        let server = try LoopbackGitServer(directory: fixture.served)
        defer { server.stop() }
        let s = try Setup(url: "http://127.0.0.1:\(server.port)/infra.git")
        server.stallObjects.store(true, ordering: .relaxed)

        let p = try TestProcess(
            Repository.workstationBinary,
            ["apply", "--init-root"] + s.args,
            environment: ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", "NO_COLOR": "1"],
            captureOutput: false
        )
        // Wait (bounded) until the clone is halfway: the server has sent half an object and holds the rest.
        var waited = 0
        while !server.stalled && p.isRunning && waited < 1200 {
            usleep(50_000)
            waited += 1
        }
        let halfway = server.stalled
        try #require(halfway, "the clone never reached the stalled object")
        // Kill apply, git and git's remote helper, parents first, so nothing gets to clean up.
        for pid in processTree(p.pid) { kill(pid, SIGKILL) }
        _ = p.wait()
        server.stallObjects.store(false, ordering: .relaxed)

        #expect(lstatOf(s.code) == nil, "a killed clone must not leave ~/code")
        // It really was halfway: the hidden sibling holds the partial clone, to be removed by the next run.
        #expect(lstatOf(s.home + "/.code.workstation-partial/.git") != nil)
        let status = try CLI.run(["clone-status"] + s.args)
        #expect(status.stdout.contains("alice: /home/alice/code missing"), "\(status.stdout)")

        let next = try CLI.run(["apply"] + s.args)
        #expect(next.status == 0, "\(next.stderr)")
        #expect(
            next.stderr.contains("alice: removing /home/alice/.code.workstation-partial left by an interrupted clone"),
            "\(next.stderr)"
        )
        #expect(lstatOf(s.home + "/.code.workstation-partial") == nil)
        let secret = try #require(FileManager.default.contents(atPath: s.code + "/secret.txt"))
        #expect(Array(secret.prefix(10)) == Array("\0GITCRYPT\0".utf8))
        let verify = try CLI.run(["plan", "--detailed-exitcode"] + s.args)
        #expect(verify.status == 0, "\(verify.stdout)")
    }

    @Test func aFailedCloneLeavesNothingAndSaysWhy() throws {
        let fixture = try InfraFixture()
        let server = try LoopbackGitServer(directory: fixture.served, user: "deploy", password: "s3cret")
        defer { server.stop() }
        // Wrong password: the server answers 401, git cannot prompt, the clone fails.
        let s = try Setup(url: "http://deploy:wrong-pw@127.0.0.1:\(server.port)/infra.git")
        let r = try CLI.run(["apply", "--init-root"] + s.args)
        #expect(r.status == 1)
        #expect(
            r.stderr.contains("git clone of http://***@127.0.0.1:\(server.port)/infra.git for alice exited"),
            "\(r.stderr)"
        )
        #expect(lstatOf(s.code) == nil)
        #expect(lstatOf(s.home + "/.code.workstation-partial") == nil)
        let journal = s.root.read("/var/lib/workstation/journal.jsonl") ?? ""
        #expect(journal.contains("\"result\":\"failed\""))
        for text in [r.stdout, r.stderr, journal] { #expect(!text.contains("wrong-pw")) }
        // The account and the rest were still made; the clone stays pending for the next apply.
        let plan = try CLI.run(["plan", "--detailed-exitcode"] + s.args)
        #expect(plan.status == 2)
        #expect(plan.stdout.contains("+ clone http://***@"))
    }

    @Test(arguments: [
        ("url: \"ext::touch\"", "uses a transport workstation does not run"),
        ("url: --upload-pack=touch", "starts with '-'"),
        ("url: https://git.example.org/infra.git\n  branch: \"-x\"", "is not a valid branch name"),
        ("url: https://git.example.org/infra.git\n  directory: a/b", "must be a plain name under the home"),
        ("url: https://git.example.org/infra.git\n  launcher_path: code/start.sh", "is inside the clone directory"),
        ("uri: https://git.example.org/infra.git", "unknown key 'uri' in infra_repo; did you mean 'url'?"),
    ])
    func badSettingsChangeNothing(_ yaml: String, _ message: String) throws {
        let s = try Setup(url: nil)
        let seeded = try CLI.run(["apply", "--init-root"] + s.args)
        #expect(seeded.status == 0, "\(seeded.stderr)")
        try s.root.write("/input/workstation.yaml", "infra_repo:\n  \(yaml)\n")
        let before = TreeSnapshot(s.root.path)
        for cmd in ["validate", "plan", "apply"] {
            let r = try CLI.run([cmd] + s.args)
            #expect(r.status == 1, "\(cmd): \(r.stdout)")
            #expect(r.stderr.contains("workstation.yaml:") && r.stderr.contains(message), "\(cmd): \(r.stderr)")
        }
        #expect(TreeSnapshot(s.root.path) == before)
    }
}

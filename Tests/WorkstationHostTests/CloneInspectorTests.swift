import Foundation
import Testing
import WorkstationTestSupport

@testable import WorkstationCore
@testable import WorkstationHost

#if canImport(Glibc)
import Glibc
#endif

/// `CloneInspector` on hand-made trees (files only, as the inspector reads them), and the no-replace rename.
@Suite struct CloneInspectorTests {
    final class Home {
        let temp: TempRoot
        var root: String { temp.path }
        var home: String { root + "/home/alice" }
        init() throws {
            temp = try TempRoot("insp")
            try temp.createDirectory("/home/alice")
        }

        func write(_ rel: String, _ text: String, mode: Int = 0o644) throws {
            let full = home + "/" + rel
            try FileManager.default.createDirectory(
                atPath: (full as NSString).deletingLastPathComponent,
                withIntermediateDirectories: true
            )
            try text.write(toFile: full, atomically: false, encoding: .utf8)
            chmod(full, mode_t(mode))
        }

        /// A clone as InfraCloner leaves it.
        func ours() throws {
            try write(
                "code/.git/config",
                """
                [core]
                \tbare = false
                [filter "git-crypt"]
                \tsmudge = cat
                \tclean = cat
                \trequired = false
                [workstation]
                \tlockedClone = true

                """
            )
            try write("code/.git/hooks/pre-commit", InfraCloner.preCommitHook, mode: 0o755)
        }

        func status() -> CloneStatus {
            CloneInspector(root: HostRoot(root), settings: Settings()).state(user: "alice", home: "/home/alice", uid: 0)
        }
    }

    @Test func ourCloneIsPresentAndVerified() throws {
        let h = try Home()
        try h.ours()
        let s = h.status()
        #expect(s.state == .present && s.lockedVerified, "\(s.line)")
        #expect(s.line == "alice: /home/alice/code present, locked state verified")
    }

    @Test func aKeyMeansUnlocked() throws {
        let h = try Home()
        try h.ours()
        try h.write("code/.git/git-crypt/keys/default", "key")
        let s = h.status()
        #expect(s.state == .present && !s.lockedVerified)
        #expect(s.line.contains("NOT verified locked") && s.detail.contains("unlocked"), "\(s.line)")
    }

    @Test func aMissingOrForeignHookIsReported() throws {
        let h = try Home()
        try h.ours()
        try h.write("code/.git/hooks/pre-commit", "#!/bin/sh\nexit 0\n", mode: 0o755)
        #expect(h.status().detail.contains("not workstation's guard"))
        try FileManager.default.removeItem(atPath: h.home + "/code/.git/hooks/pre-commit")
        #expect(h.status().detail.contains("hook is missing"))
    }

    @Test func aRealGitCryptFilterIsNotLocked() throws {
        let h = try Home()
        try h.ours()
        try h.write(
            "code/.git/config",
            "[filter \"git-crypt\"]\n\tsmudge = \"git-crypt\" smudge\n\trequired = true\n[workstation]\n\tlockedclone = true\n"
        )
        let s = h.status()
        #expect(
            !s.lockedVerified && s.detail.contains("not the pass-through") && s.detail.contains("required"),
            "\(s.detail)"
        )
    }

    @Test func aForeignDirectoryAFileAndALinkAreKept() throws {
        let h = try Home()
        try h.write("code/.git/config", "[core]\n\tbare = false\n")
        #expect(h.status().line == "alice: /home/alice/code kept (a directory workstation did not clone)")
        try FileManager.default.removeItem(atPath: h.home + "/code")
        try h.write("code", "just a file")
        #expect(h.status().line == "alice: /home/alice/code kept (not a directory)")
        try FileManager.default.removeItem(atPath: h.home + "/code")
        #expect(symlink("/srv/shared/infra", h.home + "/code") == 0)
        #expect(h.status().line == "alice: /home/alice/code kept (a symlink to /srv/shared/infra)")
    }

    @Test func aLinkedGitConfigIsNotFollowed() throws {
        let h = try Home()
        try h.ours()
        // The config the marker is read from is a link to a file that would say "ours": not followed, so kept.
        try h.write("elsewhere", "[workstation]\n\tlockedClone = true\n")
        try FileManager.default.removeItem(atPath: h.home + "/code/.git/config")
        #expect(symlink(h.home + "/elsewhere", h.home + "/code/.git/config") == 0)
        #expect(h.status().state == .kept)
    }

    @Test func missingMentionsALeftoverPartialClone() throws {
        let h = try Home()
        #expect(h.status().line == "alice: /home/alice/code missing (apply will clone)")
        try h.write(".code.workstation-partial/.git/HEAD", "ref: refs/heads/main\n")
        #expect(h.status().detail.contains("an interrupted clone is left"))
    }

    @Test func renameNeverReplaces() throws {
        let h = try Home()
        try h.write(".code.workstation-partial/README.md", "new")
        try h.write("code/keep.txt", "theirs")
        let w = HomeWriter(root: HostRoot(h.root))
        let owner = HomeWriter.Owner(uid: 0, gid: 0)
        #expect(
            try w.renameNoReplace(home: "/home/alice", from: ".code.workstation-partial", to: "code", owner: owner)
                == false
        )
        #expect(FileManager.default.contents(atPath: h.home + "/code/keep.txt") == Data("theirs".utf8))
        try FileManager.default.removeItem(atPath: h.home + "/code")
        #expect(
            try w.renameNoReplace(home: "/home/alice", from: ".code.workstation-partial", to: "code", owner: owner)
                == true
        )
        #expect(FileManager.default.contents(atPath: h.home + "/code/README.md") == Data("new".utf8))
        #expect(throws: HomeWriteError.self) {
            try w.renameNoReplace(home: "/home/alice", from: "../x", to: "code", owner: owner)
        }
    }

    @Test func gitConfigReadsSectionsAndSubsections() {
        let c = GitConfig(Data("# c\n[Filter \"git-crypt\"]\n  Smudge = cat\n[workstation]\nlockedClone\n".utf8))
        #expect(c.value("filter \"git-crypt\"", "smudge") == "cat")
        #expect(c.value("workstation", "lockedclone") == "true")
        #expect(c.value("filter \"Git-Crypt\"", "smudge") == nil)
    }
}

import Foundation
import Testing
import WorkstationCore
import WorkstationTestSupport

@testable import WorkstationHost

#if canImport(Glibc)
import Glibc
#endif

@Suite struct HomeWriterLifecycleTests {
    /// A root with /home/u owned by the current user (tests run as root: uid 0 owns it, owner 0).
    func home() throws -> (HomeWriter, TempRoot, HomeWriter.Owner) {
        let temp = try TempRoot("lc")
        try temp.createDirectory("/home/u")
        return (HomeWriter(root: HostRoot(temp.path)), temp, HomeWriter.Owner(uid: Int(getuid()), gid: Int(getgid())))
    }

    @Test func removeEntryUnlinksTheLinkNeverItsTarget() throws {
        let (w, temp, owner) = try home()
        let dir = temp.path
        try temp.write("/outside", "keep\n")
        symlink(dir + "/outside", dir + "/home/u/link")
        #expect(try w.removeEntry(home: "/home/u", relative: "link", owner: owner, onlySymlink: false))
        #expect(FileManager.default.contents(atPath: dir + "/outside") == Data("keep\n".utf8))
        #expect(try w.removeEntry(home: "/home/u", relative: "link", owner: owner, onlySymlink: false) == false)
        // A parent component that is a link is refused: nothing outside the home is removed.
        try FileManager.default.createDirectory(atPath: dir + "/elsewhere", withIntermediateDirectories: true)
        try temp.write("/elsewhere/secret", "x")
        symlink(dir + "/elsewhere", dir + "/home/u/dirlink")
        #expect(throws: HomeWriteError.self) {
            try w.removeEntry(home: "/home/u", relative: "dirlink/secret", owner: owner, onlySymlink: false)
        }
        #expect(FileManager.default.fileExists(atPath: dir + "/elsewhere/secret"))
        try FileManager.default.createDirectory(atPath: dir + "/home/u/d", withIntermediateDirectories: true)
        #expect(throws: HomeWriteError.self) {
            try w.removeEntry(home: "/home/u", relative: "d", owner: owner, onlySymlink: false)
        }
        try temp.write("/home/u/f", "x")
        #expect(throws: HomeWriteError.self) {
            try w.removeEntry(home: "/home/u", relative: "f", owner: owner, onlySymlink: true)
        }
    }

    @Test func replaceFileKeepsOwnerAndModeAndRefusesALink() throws {
        let (w, temp, owner) = try home()
        let dir = temp.path
        try temp.write("/home/u/start.sh", "old\n")
        chmod(dir + "/home/u/start.sh", 0o751)
        try w.replaceFile(home: "/home/u", relative: "start.sh", content: Data("new\n".utf8), owner: owner)
        var st = stat()
        stat(dir + "/home/u/start.sh", &st)
        #expect(st.st_mode & 0o7777 == 0o751)
        #expect(FileManager.default.contents(atPath: dir + "/home/u/start.sh") == Data("new\n".utf8))
        try temp.write("/target", "keep\n")
        symlink(dir + "/target", dir + "/home/u/l.sh")
        #expect(throws: HomeWriteError.self) {
            try w.replaceFile(home: "/home/u", relative: "l.sh", content: Data("x".utf8), owner: owner)
        }
        #expect(FileManager.default.contents(atPath: dir + "/target") == Data("keep\n".utf8))
        #expect(
            (try FileManager.default.contentsOfDirectory(atPath: dir + "/home/u")).sorted() == ["l.sh", "start.sh"],
            "no temp file left"
        )
    }

    @Test func replaceSymlinkSwapsALinkButNotADirectory() throws {
        let (w, temp, owner) = try home()
        let dir = temp.path
        symlink("/a", dir + "/home/u/l")
        try w.replaceSymlink(home: "/home/u", relative: "l", target: "/b", owner: owner, linkOwner: owner)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: dir + "/home/u/l") == "/b")
        try FileManager.default.createDirectory(atPath: dir + "/home/u/d", withIntermediateDirectories: true)
        #expect(throws: HomeWriteError.self) {
            try w.replaceSymlink(home: "/home/u", relative: "d", target: "/b", owner: owner, linkOwner: owner)
        }
    }

    @Test(arguments: [
        ("cd /home/lead/code && claude\n", "cd $HOME/code && claude\n"),
        ("cd \"/home/lead/code\"\n", "cd \"$HOME/code\"\n"),
        ("cd /home/lead/code/sub\n", "cd $HOME/code/sub\n"),
        ("cd /home/lead/code-old\n", "cd /home/lead/code-old\n"),
        ("X=/home/lead/code", "X=$HOME/code"),
    ])
    func repointsOnlyTheWholeTreePath(before: String, after: String) {
        #expect(repointLauncher(before, from: "/home/lead/code") == after)
    }
}

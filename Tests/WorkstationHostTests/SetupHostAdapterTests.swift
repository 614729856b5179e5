import Foundation
import Synchronization
import Testing
import WorkstationCore
import WorkstationTestSupport

@testable import WorkstationHost

#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized) struct SetupHostAdapterTests {
    /// A temp root holding only an `/etc/group` with the managed group.
    func tempRoot() throws -> TempRoot {
        let temp = try TempRoot("acl")
        try temp.write("/etc/group", "root:x:0:\nworkstation:x:990:alice\n")
        return temp
    }

    func acl(_ path: String) -> [ACLEntry] {
        extendedAttribute(path: path, "system.posix_acl_access").flatMap(ACLEntry.decode) ?? []
    }

    @Test func grantOnAPlainDirectoryAddsOnlyTheGroupEntry() throws {
        let temp = try tempRoot()
        let root = HostRoot(temp.path)
        try FileManager.default.createDirectory(atPath: root.path("/home/carol"), withIntermediateDirectories: true)
        chmod(root.path("/home/carol"), 0o700)
        try ACLAdapter(root: root, runner: ProcessRunner()).grant(
            path: "/home/carol",
            group: "workstation",
            perms: "--x"
        )
        let entries = acl(root.path("/home/carol"))
        #expect(entries.contains(ACLEntry(tag: .group, id: 990, perms: 1)))
        #expect(
            entries.contains(ACLEntry(tag: .groupObj, perms: 0)) && entries.contains(ACLEntry(tag: .other, perms: 0))
        )
        #expect(entries.contains(ACLEntry(tag: .userObj, perms: 7)))
    }

    @Test func grantOnAnExtendedACLWidensTheMaskByExactlyTheGrantedBits() throws {
        let temp = try tempRoot()
        let root = HostRoot(temp.path)
        let dir = root.path("/srv/base")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        chmod(dir, 0o750)
        // A named user with rwx, held to r-- by the mask: a recomputed mask would hand them rwx.
        #expect(try TestProcess.run("/usr/bin/setfacl", ["-n", "-m", "u:4242:rwx,m::r--", dir]).status == 0)
        let runner = RecordingRunner(passThrough: ["setfacl"])
        try ACLAdapter(root: root, runner: runner).grant(path: "/srv/base", group: "workstation", perms: "--x")
        let entries = acl(dir)
        #expect(entries.contains(ACLEntry(tag: .mask, perms: 5)))
        #expect(entries.contains(ACLEntry(tag: .user, id: 4242, perms: 7)))
        #expect(entries.contains(ACLEntry(tag: .group, id: 990, perms: 1)))
        #expect(runner.commands.first?.starts(with: ["setfacl", "-n", "-m", "g:990:--x,m::r-x"]) == true)
    }

    @Test func aComponentSwappedForALinkIsRefusedBeforeSetfaclRuns() throws {
        let temp = try tempRoot()
        let root = HostRoot(temp.path)
        try FileManager.default.createDirectory(
            atPath: root.path("/elsewhere/.claude"),
            withIntermediateDirectories: true
        )
        try FileManager.default.createDirectory(atPath: root.path("/home"), withIntermediateDirectories: true)
        #expect(symlink(root.path("/elsewhere"), root.path("/home/carol")) == 0)
        let runner = RecordingRunner(passThrough: ["setfacl"])
        #expect(throws: ACLError.self) {
            try ACLAdapter(root: root, runner: runner).grant(
                path: "/home/carol/.claude",
                group: "workstation",
                perms: "--x"
            )
        }
        #expect(runner.commands.isEmpty)
        #expect(acl(root.path("/elsewhere/.claude")).isEmpty)
        #expect(throws: ACLError.self) {
            try ACLAdapter(root: root, runner: runner).grant(path: "/elsewhere", group: "nosuchgroup", perms: "--x")
        }
    }

    @Test func packagesInstallWithAptGetOnlyOnTheRealRoot() throws {
        let runner = RecordingRunner()
        try PackageAdapter(root: .system, runner: runner).install(["git-crypt", "acl"])
        #expect(
            runner.commands == [
                [
                    "apt-get", "install", "-y", "--no-install-recommends", "--", "git-crypt", "acl",
                    "env:DEBIAN_FRONTEND=noninteractive",
                ]
            ]
        )
        #expect(throws: PackageError.self) {
            try PackageAdapter(root: HostRoot("/tmp/x"), runner: runner).install(["acl"])
        }
        #expect(runner.commands.count == 1)
    }

    @Test func dpkgStatusCountsOnlyInstalledStanzas() {
        let status = """
            Package: acl
            Status: install ok installed
            Architecture: amd64

            Package: git
            Status: deinstall ok config-files

            Package: kubectl
            Status: install ok half-installed

            Package: git-crypt
            Architecture: amd64
            Status: install ok installed
            """
        #expect(PackageAdapter.installed(status: Data(status.utf8)) == ["acl", "git-crypt"])
    }

    @Test func theResolverFollowsLinksAndReadsACLs() throws {
        let temp = try tempRoot()
        let root = HostRoot(temp.path)
        try FileManager.default.createDirectory(
            atPath: root.path("/home/carol/dotfiles/skills"),
            withIntermediateDirectories: true
        )
        try FileManager.default.createDirectory(
            atPath: root.path("/home/carol/.claude"),
            withIntermediateDirectories: true
        )
        #expect(symlink("../dotfiles/skills", root.path("/home/carol/.claude/skills")) == 0)
        chmod(root.path("/home/carol"), 0o700)
        let chain = ReachResolver(root: root).chain("/home/carol/.claude/skills")
        #expect(chain.problem == nil)
        #expect(
            chain.entries.map(\.path) == [
                "/", "/home", "/home/carol", "/home/carol/.claude", "/home/carol/dotfiles",
                "/home/carol/dotfiles/skills",
            ]
        )
        #expect(chain.entries.last?.need == 5)
        #expect(chain.blocking(uid: 1000, gids: [1000, 990]).map(\.path) == ["/home/carol"])
        try ACLAdapter(root: root, runner: ProcessRunner()).grant(
            path: "/home/carol",
            group: "workstation",
            perms: "--x"
        )
        let after = ReachResolver(root: root).chain("/home/carol/.claude/skills")
        #expect(after.blocking(uid: 1000, gids: [1000, 990]).isEmpty)
        #expect(after.blocking(uid: 1000, gids: [1000]).map(\.path) == ["/home/carol"])
        #expect(ReachResolver(root: root).chain("/home/carol/.claude/rules").problem?.contains("is missing") == true)
    }

    /// The shipped units pass `systemd-analyze verify` (with the binary pointed at /bin/true, which exists here).
    @Test func reconcileUnitsVerify() throws {
        let temp = try TempRoot("units")
        let dir = temp.path
        try Data(ReconcileUnits.service(binary: "/bin/true").utf8).write(
            to: URL(fileURLWithPath: dir + "/" + ReconcileUnits.serviceName)
        )
        try Data(ReconcileUnits.timer(interval: "15min").utf8).write(
            to: URL(fileURLWithPath: dir + "/" + ReconcileUnits.timerName)
        )
        let r = try TestProcess.run(
            "/usr/bin/env",
            ["systemd-analyze", "verify", dir + "/" + ReconcileUnits.timerName, dir + "/" + ReconcileUnits.serviceName]
        )
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!r.stderr.contains("Unknown key"), "\(r.stderr)")
    }
}

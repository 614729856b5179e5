import Foundation
import Testing
import WorkstationCore
import WorkstationTestSupport

@testable import WorkstationHost

#if canImport(Glibc)
import Glibc
#endif

@Suite struct EnclosingHomeTests {
    @Test(
        arguments: [
            ("/home/alice/.claude/settings.json", "/home/alice"),
            ("/home/alice/x", "/home/alice"),
            ("/home/alice", nil),  // the home itself is not below it
            ("/home/alicex/.bashrc", nil),  // a name that only starts like a home
            ("/srv/team/bob/notes", "/srv/team/bob"),  // the longest enclosing home wins
            ("/srv/team/other", "/srv/team"),
            ("/etc/passwd", nil),
            ("/home/alice/\u{301}x", "/home/alice"),  // a name starting with a combining mark: split at the byte '/'
        ] as [(String, String?)]
    )
    func pathsAreMatchedToTheLongestHomeAbove(_ path: String, _ expected: String?) {
        let homes: Set<HostPath> = [HostPath("/home/alice"), HostPath("/srv/team"), HostPath("/srv/team/bob")]
        #expect(HostPath(path).nearestAncestor(in: homes)?.string == expected)
    }
}

/// Many homes are read by several threads, one walk per home; the result must be what reading each path alone
/// gives, links on the way must stay unfollowed, and a path watched twice keeps its content.
@Suite struct ParallelObserveTests {
    @Test func observingManyHomesEqualsReadingEachPathAlone() throws {
        let temp = try TempRoot("observe")
        let dir = temp.path
        let fm = FileManager.default
        var passwd = ""
        var watched: [WatchedPath] = []
        for i in 0..<40 {
            let home = "/home/p\(i)"
            passwd += "p\(i):x:\(2000 + i):\(2000 + i)::\(home):/bin/bash\n"
            try fm.createDirectory(atPath: dir + home + "/.claude", withIntermediateDirectories: true)
            try fm.createSymbolicLink(atPath: dir + home + "/.claude/skills", withDestinationPath: "/srv/base/skills")
            fm.createFile(atPath: dir + home + "/.claude.json", contents: Data("{}".utf8))
            // blocked
            if i % 4 == 0 { try fm.createSymbolicLink(atPath: dir + home + "/.kube", withDestinationPath: "/etc") }
            if i % 5 == 0 { try fm.removeItem(atPath: dir + home + "/.claude/skills") }  // absent
            for rel in [
                "", "/.claude", "/.claude/skills", "/.claude.json", "/.kube", "/.kube/config", "/.claude", "/missing/x",
            ] {
                watched.append(WatchedPath(home + rel))
            }
        }
        try fm.createDirectory(atPath: dir + "/etc/systemd/system", withIntermediateDirectories: true)
        try Data(passwd.utf8).write(to: URL(fileURLWithPath: dir + "/etc/passwd"))
        for i in 0..<70 {
            let path = "/etc/systemd/system/unit\(i).conf"
            fm.createFile(atPath: dir + path, contents: Data("[Service]\nX=\(i)\n".utf8))
            watched.append(WatchedPath(path, readContent: i % 2 == 0))
            if i % 7 == 0 { watched.append(WatchedPath(path, readContent: false)) }  // watched twice
        }
        let root = HostRoot(dir)
        let observer = Observer(root: root, settings: Settings())
        var snap = HostSnapshot()
        snap.passwd = AccountDatabase.passwd(try Data(contentsOf: URL(fileURLWithPath: dir + "/etc/passwd")))
        snap.uidRange = 1000...60000
        observer.observePaths(watched, into: &snap)

        for w in watched {
            let got = try #require(snap.paths[w.path], "\(w.path) not observed")
            if w.path.hasPrefix("/home/"), w.path.split(separator: "/").count > 2 {
                let parts = w.path.split(separator: "/", maxSplits: 2)
                #expect(
                    got == observer.homePathState(home: "/\(parts[0])/\(parts[1])", relative: String(parts[2])),
                    "\(w.path)"
                )
            } else {
                let wantsContent = watched.contains { $0.path == w.path && $0.readContent }
                #expect(got == observer.pathState(w.path, readContent: wantsContent), "\(w.path)")
            }
        }
        #expect(snap.paths["/home/p4/.kube/config"]?.blocked == true)
        #expect(snap.paths["/home/p5/.claude/skills"]?.kind == .absent)
        #expect(snap.paths["/home/p1/.claude/skills"]?.linkTarget == "/srv/base/skills")
        #expect(snap.paths["/etc/systemd/system/unit14.conf"]?.content == Data("[Service]\nX=14\n".utf8))
    }
}

@Suite struct GrandparentSplitTests {
    @Test(arguments: [
        (
            "/etc/systemd/system/t3-serve@alice.service.d/50-workstation.conf", "/etc/systemd/system",
            "t3-serve@alice.service.d/50-workstation.conf"
        ),
        ("/home/alice", "/", "home/alice"),
        ("/etc/ttyd-user-map", "/", "etc/ttyd-user-map"),
        ("/a", "/", "a"),
        ("/srv/x/y/z", "/srv/x", "y/z"),
        // A combining mark after a slash makes one Character with it; the kernel still splits at the byte.
        ("/etc/d/\u{301}f", "/etc", "d/\u{301}f"),
        ("/etc/\u{301}d/f", "/etc", "\u{301}d/f"),
        ("/srv//f", "/srv", "f"),  // never a relative part starting with '/'
    ])
    func pathsSplitAtTheirGrandparent(_ path: String, _ dir: String, _ relative: String) {
        let (d, r) = HostPath(path).grandparentSplit
        #expect(d == dir)
        #expect(r == relative)
    }
}

/// Names observe reads by byte: a name starting with a combining mark, and two homes whose names String takes as
/// equal (NFC and NFD spellings) but which are two directories on disk.
@Suite struct ObserveByByteTests {
    /// An empty temp root of mode 0755.
    func temporaryRoot() throws -> TempRoot {
        let temp = try TempRoot("bytes")
        #expect(chmod(temp.path, 0o755) == 0)
        return temp
    }

    func put(_ path: String, _ text: String) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        #expect(fd >= 0)
        _ = text.withCString { Glibc.write(fd, $0, strlen($0)) }
        close(fd)
    }

    @Test func theWatchedFileIsReadNotItsNeighbourWithoutTheMark() throws {
        let temp = try temporaryRoot()
        let dir = temp.path
        #expect(
            mkdir(dir + "/srv", 0o755) == 0 && mkdir(dir + "/srv/\u{301}d", 0o755) == 0
                && mkdir(dir + "/srv/d", 0o755) == 0
        )
        put(dir + "/srv/\u{301}d/f", "real")
        put(dir + "/srv/d/f", "decoy")
        let observer = Observer(root: HostRoot(dir), settings: Settings())
        var snap = HostSnapshot()
        observer.observePaths([WatchedPath("/srv/\u{301}d/f", readContent: true)], into: &snap)
        #expect(snap.path("/srv/\u{301}d/f").content == Data("real".utf8))
    }

    /// `/srv//f` (settings accept `//`): the relative part read below the grandparent must not start with '/', or
    /// openat would ignore the directory and read the host's own file, outside the root.
    @Test func aDoubledSlashBeforeTheLastNameIsReadUnderTheRoot() throws {
        let temp = try temporaryRoot()
        let dir = temp.path
        #expect(mkdir(dir + "/srv", 0o755) == 0)
        put(dir + "/srv/f", "real")
        let observer = Observer(root: HostRoot(dir), settings: Settings())
        var snap = HostSnapshot()
        observer.observePaths([WatchedPath("/srv//f", readContent: true), WatchedPath("/srv//tmp")], into: &snap)
        #expect(snap.path("/srv//f").content == Data("real".utf8))
        #expect(snap.path("/srv//tmp").kind == .absent)  // <root>/srv/tmp does not exist; the host's /tmp does
    }

    /// In one home, an NFC and an NFD name are two paths (the walk's caches compare bytes).
    @Test func nfcAndNfdNamesInOneHomeAreTwoPaths() throws {
        let temp = try temporaryRoot()
        let dir = temp.path
        #expect(mkdir(dir + "/home", 0o755) == 0 && mkdir(dir + "/home/alice", 0o700) == 0)
        put(dir + "/home/alice/caf\u{E9}", "x")
        let observer = Observer(root: HostRoot(dir), settings: Settings())
        var snap = HostSnapshot()
        snap.passwd = [PasswdEntry(name: "alice", uid: 1001, gid: 1001, home: "/home/alice", shell: "/bin/bash")]
        observer.observePaths(
            [WatchedPath("/home/alice/caf\u{E9}"), WatchedPath("/home/alice/cafe\u{301}")],
            into: &snap
        )
        #expect(snap.path("/home/alice/caf\u{E9}").kind == .file)
        #expect(snap.path("/home/alice/cafe\u{301}").kind == .absent)
    }

    /// Outside homes, an NFC and an NFD grandparent are two open directories.
    @Test func nfcAndNfdGrandparentsAreTwoDirectories() throws {
        let temp = try temporaryRoot()
        let dir = temp.path
        #expect(mkdir(dir + "/srv", 0o755) == 0)
        for (name, text) in [("caf\u{E9}", "nfc"), ("cafe\u{301}", "nfd")] {
            #expect(mkdir(dir + "/srv/" + name, 0o755) == 0 && mkdir(dir + "/srv/" + name + "/d", 0o755) == 0)
            put(dir + "/srv/" + name + "/d/f", text)
        }
        let observer = Observer(root: HostRoot(dir), settings: Settings())
        var snap = HostSnapshot()
        observer.observePaths(
            [
                WatchedPath("/srv/caf\u{E9}/d/f", readContent: true),
                WatchedPath("/srv/cafe\u{301}/d/f", readContent: true),
            ],
            into: &snap
        )
        #expect(snap.path("/srv/caf\u{E9}/d/f").content == Data("nfc".utf8))
        #expect(snap.path("/srv/cafe\u{301}/d/f").content == Data("nfd".utf8))
    }

    @Test func aHomeSpelledInNFDAfterItsNFCTwinIsReadFromItsOwnDirectory() throws {
        let nfc = "/home/ren\u{E9}"
        let nfd = "/home/rene\u{301}"
        let temp = try temporaryRoot()
        let dir = temp.path
        #expect(mkdir(dir + "/home", 0o755) == 0 && mkdir(dir + nfc, 0o700) == 0 && mkdir(dir + nfd, 0o700) == 0)
        put(dir + nfd + "/.claude.json", "{}")
        let observer = Observer(root: HostRoot(dir), settings: Settings())
        var snap = HostSnapshot()
        snap.uidRange = 1000...60000
        snap.passwd = [
            PasswdEntry(name: "bob", uid: 1001, gid: 1001, home: nfc, shell: "/bin/bash"),
            PasswdEntry(name: "carol", uid: 1002, gid: 1002, home: nfd, shell: "/bin/bash"),
        ]
        // One path below each spelling, in a run: the second must not be read as if below the first.
        observer.observePaths([WatchedPath(nfc + "/.bashrc"), WatchedPath(nfd + "/.claude.json")], into: &snap)
        #expect(snap.path(nfd + "/.claude.json").kind == .file)
        #expect(snap.path(nfc + "/.bashrc").kind == .absent)
    }
}

/// Observing people in parallel (each person's paths made and read by one thread) must give what observing the
/// planner's whole list of watched paths gives, including a home nested in another's and a missing home.
@Suite struct ObserveWatchedTests {
    @Test func perPersonObservationEqualsObservingTheWholeList() throws {
        let temp = try TempRoot("watched")
        let dir = temp.path
        let fm = FileManager.default
        var passwd = "root:x:0:0::/root:/bin/bash\n"
        var yaml = "users:\n"
        for i in 0..<40 {
            // p7's home lies inside p6's; p9 has no home directory at all.
            let home = i == 7 ? "/home/p6/inner" : "/home/p\(i)"
            passwd += "p\(i):x:\(2000 + i):\(2000 + i)::\(home):/bin/bash\n"
            yaml += "  p\(i): { authentik_user: p\(i), k8s_user: p\(i), tier: power-user }\n"
            if i == 9 { continue }
            try fm.createDirectory(atPath: dir + home + "/.claude", withIntermediateDirectories: true)
            try fm.createSymbolicLink(
                atPath: dir + home + "/.claude/skills",
                withDestinationPath: "/srv/workstation/config-base/skills"
            )
            if i % 3 == 0 { fm.createFile(atPath: dir + home + "/.claude.json", contents: Data("{}".utf8)) }
            if i % 4 == 0 { try fm.createSymbolicLink(atPath: dir + home + "/.kube", withDestinationPath: "/etc") }
        }
        try fm.createDirectory(
            atPath: dir + "/etc/systemd/system/t3-serve@p1.service.d",
            withIntermediateDirectories: true
        )
        fm.createFile(
            atPath: dir + "/etc/systemd/system/t3-serve@p1.service.d/50-workstation.conf",
            contents: Data("[Service]\n".utf8)
        )
        try Data(passwd.utf8).write(to: URL(fileURLWithPath: dir + "/etc/passwd"))
        var settings = Settings()
        settings.units[0].portRange = 20000...29999
        let roster = try Roster.parse(Data(yaml.utf8), file: "roster.yaml", settings: settings)
        let observer = Observer(root: HostRoot(dir), settings: settings)
        var base = HostSnapshot()
        base.passwd = AccountDatabase.passwd(try Data(contentsOf: URL(fileURLWithPath: dir + "/etc/passwd")))
        base.uidRange = 1000...60000
        let desired = desire(roster: roster, settings: settings, snapshot: base)
        var parallel = base
        observer.observeWatched(desired, into: &parallel)
        var whole = base
        observer.observePaths(Planner(settings: settings).watchedPaths(desired), into: &whole)
        #expect(parallel.paths == whole.paths)
        #expect(parallel.paths.count == whole.paths.count)
        #expect(parallel.paths["/home/p6/inner/.claude/skills"]?.kind == .symlink)
        #expect(parallel.paths["/home/p9"]?.kind == .absent)
        #expect(parallel.paths["/home/p4/.kube/config"]?.blocked == true)
        #expect(
            parallel.paths["/etc/systemd/system/t3-serve@p1.service.d/50-workstation.conf"]?.content
                == Data("[Service]\n".utf8)
        )
    }
}

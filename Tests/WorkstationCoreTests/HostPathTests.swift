import Testing
import WorkstationCore

/// `HostPath` compares, hashes and cuts paths by bytes, as the kernel does: an NFC and an NFD spelling of one name
/// are two paths, which `String` (Unicode canonical equivalence) would take as one.
@Suite struct HostPathTests {
    static let nfc = "/home/caf\u{E9}"
    static let nfd = "/home/cafe\u{301}"

    @Test func equalityAndHashingAreByBytes() {
        #expect(Self.nfc == Self.nfd, "String takes the two spellings as equal")
        #expect(HostPath(Self.nfc) != HostPath(Self.nfd))
        #expect(Set([HostPath(Self.nfc), HostPath(Self.nfd)]).count == 2)
        #expect(HostPath(Self.nfc) == HostPath("/home/caf\u{E9}"))
    }

    @Test(
        arguments: [
            // (path, candidates, nearest ancestor)
            (nfd + "/.claude", [nfc], nil),
            (nfc + "/.claude", [nfc], nfc),
            (nfd + "/.claude", [nfc, nfd], nfd),
            ("/srv/team/bob/x", ["/srv/team", "/srv/team/bob"], "/srv/team/bob"),
            ("/srv/team", ["/srv/team"], nil),
            ("/srv/teamx/y", ["/srv/team"], nil),
        ] as [(String, [String], String?)]
    )
    func nearestAncestorMatchesBytes(_ path: String, _ candidates: [String], _ expected: String?) {
        #expect(HostPath(path).nearestAncestor(in: Set(candidates.map(HostPath.init)))?.string == expected)
    }

    @Test(arguments: [
        ("/home/alice/.claude", "/home"),
        ("/home", "/home"),
        (nfd + "/x", "/home"),
        ("/etc//x", "/etc"),
    ])
    func firstComponent(_ path: String, _ expected: String) {
        #expect(HostPath(path).firstComponent == HostPath(expected))
    }

    @Test(arguments: [
        ("/etc/systemd/system/x.d/file", "/etc/systemd/system", "x.d/file"),
        ("/home/alice", "/", "home/alice"),
        ("/srv//f", "/srv", "f"),
        (nfd + "/f", "/home", "cafe\u{301}/f"),
    ])
    func grandparentSplitCutsAtByteOffsets(_ path: String, _ directory: String, _ relative: String) {
        let (d, r) = HostPath(path).grandparentSplit
        #expect(Array(d.utf8) == Array(directory.utf8) && Array(r.utf8) == Array(relative.utf8), "\(path)")
    }

    @Test func joinAndRestAgreeOnBytes() {
        #expect(HostPath(Self.nfc).appending("/.claude").rest(after: Self.nfd + "/") == nil)
        #expect(HostPath(Self.nfc).appending("/.claude").rest(after: Self.nfc + "/") == ".claude")
        #expect(HostPath(Self.nfc + "/x").isDirectChild(of: HostPath(Self.nfc)))
        #expect(!HostPath(Self.nfc + "/x").isDirectChild(of: HostPath(Self.nfd)))
        #expect(HostPath(Self.nfc + "/").withoutTrailingSlash == HostPath(Self.nfc))
    }
}

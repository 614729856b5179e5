import Foundation
import Testing
import WorkstationTestSupport

@testable import WorkstationHost

@Suite struct AccountDatabaseTests {
    @Test func parsesPasswdGroupAndShadow() {
        let p = AccountDatabase.passwd(Data("alice:x:1000:1000:Alice:/home/alice:/bin/bash\nbad line\n".utf8))
        #expect(p.count == 1 && p[0].uid == 1000 && p[0].home == "/home/alice")
        let g = AccountDatabase.group(Data("sudo:x:27:carol,dave\nusers:x:100:\n".utf8))
        #expect(g.first?.members == ["carol", "dave"] && g.last?.members == [])
        let s = AccountDatabase.shadow(Data("alice:!$6$x:20000:0:99999:7::1:\nbob:$6$y:20000:0:99999:7:::\n".utf8))
        #expect(s["alice"]?.passwordLocked == true && s["alice"]?.expireDays == 1)
        #expect(s["bob"]?.passwordLocked == false && s["bob"]?.expireDays == nil)
    }

    /// The byte-level reader keeps the fields as written: empty fields kept, comments and blank lines skipped, a
    /// last line without its newline read, an invalid UTF-8 sequence decoded as U+FFFD inside its field only.
    @Test func fieldsAreCutOnBytesAndDecodedOneByOne() {
        let data =
            Data("# comment\n\nalice:x:1000:1000::/home/alice:\nbob:x:1001:1001:B\u{F6}b:/home/bob:/bin/sh".utf8)
            + Data([
                0x0A, 0x63, 0xFF, 0x3A, 0x78, 0x3A, 0x31, 0x30, 0x30, 0x32, 0x3A, 0x31, 0x30, 0x30, 0x32, 0x3A, 0x3A,
                0x2F, 0x3A, 0x2F,
            ])
        let p = AccountDatabase.passwd(data)
        #expect(p.map(\.name) == ["alice", "bob", "c\u{FFFD}"])
        #expect(
            p[0].gecos == "" && p[0].shell == "" && p[1].gecos == "B\u{F6}b" && p[1].shell == "/bin/sh"
                && p[2].uid == 1002
        )
        #expect(AccountDatabase.lines(Data("a::b:\n".utf8)) == [["a", "", "b", ""]])
        #expect(AccountDatabase.passwd(Data("x:x:notanumber:1:g:/h:/s\n".utf8)).isEmpty)
    }

    /// Lookups follow the file: a replaced passwd (shadow-utils renames a new file over it) is read again, an
    /// unchanged one is not parsed twice (same answers), and a missing file answers nil.
    @Test func accountLookupFollowsTheFileAsItIsReplaced() throws {
        let temp = try TempRoot("lookup")
        let dir = temp.path
        try FileManager.default.createDirectory(atPath: dir + "/etc", withIntermediateDirectories: true)
        let lookup = AccountLookup(root: HostRoot(dir))
        #expect(lookup.entry("alice") == nil)
        try Data("alice:x:1000:1000::/home/alice:/bin/bash\n".utf8).write(
            to: URL(fileURLWithPath: dir + "/etc/passwd"),
            options: .atomic
        )
        #expect(lookup.entry("alice")?.uid == 1000 && lookup.entry("bob") == nil)
        try Data("alice:x:1000:1000::/home/alice:/bin/bash\nbob:x:1001:1001::/home/bob:/bin/bash\n".utf8)
            .write(to: URL(fileURLWithPath: dir + "/etc/passwd"), options: .atomic)
        #expect(lookup.entry("bob")?.home == "/home/bob")
        try Data("alice:x:1000:1000::/srv/alice:/bin/bash\n".utf8).write(
            to: URL(fileURLWithPath: dir + "/etc/passwd"),
            options: .atomic
        )
        #expect(lookup.entry("alice")?.home == "/srv/alice" && lookup.entry("bob") == nil)
    }
}

import Foundation
import Testing

@testable import WorkstationCore

@Suite struct ReachabilityTests {
    @Test func decodesTheKernelFormat() throws {
        // getfattr of `setfacl -m g:100:x` on a 0755 directory.
        let bytes: [UInt8] = [
            2, 0, 0, 0, 1, 0, 7, 0, 255, 255, 255, 255, 4, 0, 5, 0, 255, 255, 255, 255, 8, 0, 1, 0, 100, 0, 0, 0,
            16, 0, 5, 0, 255, 255, 255, 255, 32, 0, 5, 0, 255, 255, 255, 255,
        ]
        let acl = try #require(ACLEntry.decode(Data(bytes)))
        #expect(acl.contains(ACLEntry(tag: .group, id: 100, perms: 1)))
        #expect(acl.contains(ACLEntry(tag: .mask, perms: 5)))
        #expect(ACLEntry.decode(Data([1, 0, 0, 0])) == nil)
    }

    let home = TraversedEntry(path: "/home/carol", kind: .directory, mode: 0o700, uid: 1500, gid: 1500, need: 1)

    @Test func modeBitsDecide() {
        #expect(home.allows(uid: 1500, gids: [1500]))
        #expect(!home.allows(uid: 1001, gids: [1001, 999]))
        let open = TraversedEntry(path: "/srv", kind: .directory, mode: 0o711, uid: 0, gid: 0, need: 1)
        #expect(open.allows(uid: 1001, gids: [1001]))
        // Owner bits alone decide for the owner, even when other would allow.
        let odd = TraversedEntry(path: "/x", kind: .directory, mode: 0o055, uid: 1001, gid: 0, need: 1)
        #expect(!odd.allows(uid: 1001, gids: [1001]))
        // A matching owning group without the bit denies, even when other has it.
        let grp = TraversedEntry(path: "/y", kind: .directory, mode: 0o705, uid: 0, gid: 50, need: 1)
        #expect(!grp.allows(uid: 1001, gids: [50]))
        #expect(grp.allows(uid: 1001, gids: [1001]))
    }

    @Test func aclGroupEntryAndMaskDecide() {
        let fixed = home.granting(group: 999, perms: 1)
        #expect(fixed.allows(uid: 1001, gids: [1001, 999]))
        #expect(!fixed.allows(uid: 1002, gids: [1002]))
        // The owning group gains nothing from the grant.
        #expect(!fixed.allows(uid: 1003, gids: [1500]) || home.allows(uid: 1003, gids: [1500]))
        // A mask without x masks the named group.
        var masked = fixed
        masked.acl = masked.acl.map { $0.tag == .mask ? ACLEntry(tag: .mask, perms: 4) : $0 }
        #expect(!masked.allows(uid: 1001, gids: [999]))
    }
}

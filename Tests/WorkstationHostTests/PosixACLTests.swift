import Foundation
import Testing
import WorkstationCore
import WorkstationTestSupport

@testable import WorkstationHost

@Suite struct PosixACLTests {
    @Test func accessFollowsTheACLAlgorithm() {
        let check = AccessCheck(uid: 1001, gids: [1001, 500])
        // Plain modes: other bits decide for a stranger.
        #expect(check.allows(.execute, owner: 0, group: 0, mode: 0o751, acl: nil))
        #expect(!check.allows(.execute, owner: 0, group: 0, mode: 0o750, acl: nil))
        #expect(check.allows(.execute, owner: 0, group: 500, mode: 0o750, acl: nil))
        // Named group entry, limited by the mask.
        let acl = PosixACL(entries: [
            .init(tag: .userObj, perm: 7, id: 0), .init(tag: .groupObj, perm: 5, id: 0),
            .init(tag: .group, perm: 1, id: 500), .init(tag: .mask, perm: 5, id: 0), .init(tag: .other, perm: 0, id: 0),
        ])
        #expect(check.allows(.execute, owner: 0, group: 0, mode: 0o750, acl: acl))
        #expect(!check.allows(.read, owner: 0, group: 0, mode: 0o750, acl: acl))
        var masked = acl
        masked.entries[3].perm = 4
        #expect(!check.allows(.execute, owner: 0, group: 0, mode: 0o740, acl: masked))
    }

    @Test func parsesTheXattrLayout() throws {
        // version 2; USER_OBJ rwx; GROUP 500 --x; OTHER ---
        let bytes: [UInt8] = [
            2, 0, 0, 0, 1, 0, 7, 0, 0xff, 0xff, 0xff, 0xff, 8, 0, 1, 0, 0xf4, 1, 0, 0, 0x20, 0, 0, 0, 0xff, 0xff, 0xff,
            0xff,
        ]
        let acl = try #require(PosixACL.parse(bytes))
        #expect(acl.entries.count == 3)
        #expect(acl.entries[1] == PosixACL.Entry(tag: .group, perm: 1, id: 500))
        #expect(PosixACL.parse([1, 0, 0, 0]) == nil)
    }
}

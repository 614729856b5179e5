import Foundation
import Testing
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
}

import Foundation
import Testing

@testable import WorkstationCore

/// Core defects found by the reliability suites, each pinned by a test that fails without its fix.
@Suite struct ReliabilityCoreTests {
    func roster(_ count: Int) -> Roster {
        Roster(
            entries: (0..<count).map { i in
                RosterEntry(
                    osUser: "u\(i)",
                    authentikUser: "id-u\(i)",
                    k8sUser: "u\(i)",
                    tier: .powerUser,
                    location: SourceLocation(file: "roster.yaml", line: i + 2, column: 3)
                )
            }
        )
    }

    /// More people than ports: the last ones were all handed the range's last port (two people, one port).
    @Test func exhaustedPortRangeIsALocatedErrorNotASharedPort() {
        var settings = Settings()
        settings.units = [PerUserUnit(template: "t3-serve@", portRange: 4000...4009, portEnvironment: "T3CODE_PORT")]
        let d = desire(roster: roster(11), settings: settings, snapshot: HostSnapshot())
        #expect(d.diagnostics.count == 1)
        #expect(d.diagnostics.first?.message.contains("no free port left for 'u10'") == true, "\(d.diagnostics)")
        #expect(d.diagnostics.first?.location.line == 12)
        let within = desire(roster: roster(10), settings: settings, snapshot: HostSnapshot())
        #expect(within.diagnostics.isEmpty)
        #expect(Set(within.users.compactMap { $0.ports["t3-serve@"] }).count == 10)
    }

    @Test func exhaustedUidRangeIsALocatedError() {
        var snap = HostSnapshot()
        snap.uidRange = 1000...1002
        let d = desire(roster: roster(4), settings: Settings(), snapshot: snap)
        #expect(d.diagnostics.contains { $0.message.contains("no free uid left for 'u3'") }, "\(d.diagnostics)")
    }

    /// An existing account whose home is missing: ~/.claude was planned under it and failed on every run.
    @Test func noInheritanceChangesUnderAMissingHome() {
        var snap = HostSnapshot()
        snap.passwd = [PasswdEntry(name: "u0", uid: 1000, gid: 1000, home: "/home/u0", shell: "/bin/bash")]
        let settings = Settings()
        let d = desire(roster: roster(1), settings: settings, snapshot: snap)
        let plan = Planner(settings: settings).plan(desired: d, observed: snap)
        #expect(
            !plan.actionable.contains {
                $0.id.description.hasPrefix("dir:/home/u0") || $0.id.description.hasPrefix("link:/home/u0")
            },
            "\(plan.actionable.map(\.id.description))"
        )
        #expect(plan.changes.contains { $0.id == "home:u0" && $0.kind == .conflict })
    }

    @Test func snapshotLookupsFollowEdits() {
        var snap = HostSnapshot()
        snap.passwd = [PasswdEntry(name: "a", uid: 1000, gid: 1000, home: "/home/a", shell: "/bin/sh")]
        snap.passwd.append(PasswdEntry(name: "b", uid: 1001, gid: 1001, home: "/home/b", shell: "/bin/sh"))
        snap.passwd.append(PasswdEntry(name: "a", uid: 1002, gid: 1002, home: "/home/a2", shell: "/bin/sh"))
        #expect(snap.account("b")?.uid == 1001 && snap.account("a")?.uid == 1000 && snap.account("c") == nil)
        snap.groups = [GroupEntry(name: "sudo", gid: 27, members: ["a"])]
        snap.groups[0].members.append("b")
        #expect(snap.isMember("b", of: "sudo") && !snap.isMember("c", of: "sudo") && !snap.isMember("a", of: "nogroup"))
    }

    /// A run killed while useradd ran: the orphaned tool finished, and the account is workstation's, not adopted.
    @Test func intentsOfAKilledRunAreSettledAgainstTheHost() {
        var state = WorkstationState()
        var i = WorkstationState.Intents()
        i.accounts = ["alice": .init(uid: 1001, created: true), "bob": .init(uid: 1002, created: true)]
        i.accountGroups = ["alice": ["workstation", "devs"]]
        i.groups = ["workstation", "never-made"]
        i.memberships = ["carol": ["ops"]]
        state.intents = i
        let passwd = [
            PasswdEntry(name: "alice", uid: 1001, gid: 1001, home: "/home/alice", shell: "/bin/bash"),
            PasswdEntry(name: "carol", uid: 1003, gid: 1003, home: "/home/carol", shell: "/bin/bash"),
        ]
        let groups = [
            GroupEntry(name: "workstation", gid: 990, members: ["alice"]),
            GroupEntry(name: "devs", gid: 991, members: []),
            GroupEntry(name: "ops", gid: 992, members: ["carol"]),
        ]
        state.settleIntents(passwd: passwd, groups: groups)
        #expect(state.intents == nil)
        #expect(state.accounts["alice"] == .init(uid: 1001, created: true))
        #expect(state.accounts["bob"] == nil)
        #expect(state.addedMemberships["alice"] == ["workstation"])
        #expect(state.addedMemberships["carol"] == ["ops"])
        #expect(state.createdGroups == ["workstation"])
    }

    func parse(_ yaml: String) -> [String] {
        do {
            _ = try Roster.parse(Data(yaml.utf8), file: "roster.yaml")
            return []
        } catch let f as ValidationFailure {
            return f.diagnostics.map(\.description)
        } catch {
            return ["\(error)"]
        }
    }

    /// Bare YAML 1.1 booleans, nulls, numbers and dates in name fields must be quoted; quoted, they are names.
    @Test(arguments: ["no", "off", "yes", "On", "y", "null", "1001", "0700", "2026-01-01", ".inf", "0x1F"])
    func bareImplicitlyTypedNamesAreRefused(_ word: String) {
        let bare = parse("users:\n  dave: { authentik_user: \(word), k8s_user: dave, tier: power-user }\n")
        // A bare null is no value at all (reported as such); the others are typed values that must be quoted.
        let expected = word == "null" ? "has no value" : "quote it"
        #expect(bare.contains { $0.hasPrefix("roster.yaml:2:") && $0.contains(expected) }, "\(bare)")
        let key = parse("users:\n  \(word): { authentik_user: dave, k8s_user: dave, tier: power-user }\n")
        #expect(key.contains { $0.hasPrefix("roster.yaml:2:") }, "\(key)")
    }

    @Test func quotedNamesAreAccepted() {
        #expect(
            parse(
                "users:\n  dave: { authentik_user: \"no\", k8s_user: \"1001\", tier: power-user, groups: [\"off\"] }\n"
            ) == []
        )
    }

    @Test(arguments: ["null", "None", "nil", "undefined", "NULL"])
    func quotedMissingValuesAreRefused(_ word: String) {
        let d = parse("users:\n  dave: { authentik_user: \"\(word)\", k8s_user: dave, tier: power-user }\n")
        #expect(d.contains { $0.contains("missing value") }, "\(d)")
    }

    @Test func aliasBombIsRefusedWithoutExpanding() {
        var y = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for i in 1...9 {
            y += "a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", ") + "]\n"
        }
        #expect(throws: ValidationFailure.self) { _ = try loadYAML(Data(y.utf8), file: "r.yaml") }
        do { _ = try loadYAML(Data(y.utf8), file: "r.yaml") } catch let f as ValidationFailure {
            #expect(f.description.contains("aliases"))
        } catch {}
    }

    @Test func deepCompactAndIndentedNestingIsRefused() {
        let compact = "users:\n  dave:\n    " + String(repeating: "- ", count: 100_000) + "x\n"
        #expect(throws: ValidationFailure.self) { _ = try loadYAML(Data(compact.utf8), file: "r.yaml") }
        var indented = "users:\n"
        for i in 0..<100 { indented += String(repeating: " ", count: 2 + i) + "k\(i):\n" }
        #expect(throws: ValidationFailure.self) { _ = try loadYAML(Data(indented.utf8), file: "r.yaml") }
        var fine = "users:\n"
        for i in 0..<20 { fine += String(repeating: " ", count: 2 + i) + "k\(i):\n" }
        #expect((try? loadYAML(Data(fine.utf8), file: "r.yaml")) != nil)
    }
}

/// dispatch.json is written without the generic encoder; its bytes must stay exactly `JSONEncoder`'s, so that a
/// file written by an earlier version compares equal and is not rewritten.
@Suite struct DispatchMapEncodingTests {
    static func reference(_ map: DispatchMap) throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var d = try enc.encode(map)
        d.append(0x0A)
        return d
    }

    @Test func matchesJSONEncoderByteForByte() throws {
        let odd = "q\"u\\o/te\u{1}\u{8}\u{C}\n\r\t\u{1F}é漢"
        var rng = SystemRandomNumberGenerator()
        var cases: [DispatchMap] = [
            DispatchMap(users: [:]),
            DispatchMap(users: ["alice": .init(osUser: "alice", port: 3774, ports: [:])]),
            DispatchMap(users: [odd: .init(osUser: odd, port: 1, ports: [odd: 65535, "t3-serve@": 2])]),
            DispatchMap(users: [
                "B": .init(osUser: "b", port: 10, ports: ["t3-serve@": 10]),
                "a10": .init(osUser: "a10", port: 9, ports: ["x@": 1, "X@": 2]),
                "a9": .init(osUser: "a9", port: 8, ports: ["t3-serve@": 8]),
                "_z": .init(osUser: "z", port: 7, ports: [:]),
            ]),
        ]
        for n in [1, 7, 300] {
            var users: [String: DispatchMap.User] = [:]
            for i in 0..<n {
                let name = "u\(Int.random(in: 0...99999, using: &rng)).\(i)"
                users[name] = .init(
                    osUser: "os\(i)",
                    port: 20000 + i,
                    ports: ["t3-serve@": 20000 + i, "ttyd@": 30000 + i]
                )
            }
            cases.append(DispatchMap(users: users))
        }
        for map in cases {
            let mine = map.encoded()
            let theirs = try Self.reference(map)
            #expect(
                mine == theirs,
                "\(String(decoding: mine, as: UTF8.self))\n---\n\(String(decoding: theirs, as: UTF8.self))"
            )
            #expect(try DispatchMap.decode(mine) == map)
        }
    }
}

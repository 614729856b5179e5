import Foundation
import Testing

@testable import WorkstationCore

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

import Foundation
import Testing

@testable import WorkstationCore

/// The `~/.claude.json` edit (`ClaudeJSON.addMCPServer`): an MCP entry inserted where absent with every other byte
/// kept, and files it cannot edit safely left alone.
@Suite struct ClaudeJSONTests {
    func canonical(_ o: [String: Any]) -> Data? {
        try? JSONSerialization.data(withJSONObject: o, options: [.sortedKeys])
    }

    static let entry = #"{"type": "stdio", "command": "npx", "args": ["@playwright/mcp@latest"], "env": {}}"#

    /// Removing the inserted text gives back the original bytes: nothing else in the file moved.
    @Test(arguments: [
        "{}",
        "{ }\n",
        #"{"mcpServers": {}}"#,
        "{\n  \"mcpServers\": {\n    \"ha\": {\"url\": \"x\"}\n  },\n  \"numStartups\": 3\n}\n",
        #"{"a": "}{\"mcpServers\": {", "b": [1, [2, {"c": "]"}]], "mcpServers": {"x": {"y": "\\"}}}"#,
        #"{"mcp\u0053ervers": {"z": 1}, "k": null}"#,
        #"{"projects": {"/home/alice/code": {"mcpServers": {"playwright": {}}}}, "n": -1.5e3, "t": true}"#,
    ])
    func insertionKeepsEveryOtherByte(_ original: String) throws {
        guard case .write(let out) = ClaudeJSON.addMCPServer(Data(original.utf8), name: "playwright", entry: Self.entry)
        else {
            Issue.record("expected an edit for \(original)")
            return
        }
        let obj = try #require(try JSONSerialization.jsonObject(with: out) as? [String: Any])
        let before = try #require(try JSONSerialization.jsonObject(with: Data(original.utf8)) as? [String: Any])
        let servers = try #require(obj["mcpServers"] as? [String: Any])
        #expect((servers["playwright"] as? [String: Any])?["command"] as? String == "npx")
        #expect(canonical(obj.filter { $0.key != "mcpServers" }) == canonical(before.filter { $0.key != "mcpServers" }))
        let kept = (before["mcpServers"] as? [String: Any]) ?? [:]
        #expect(canonical(servers.filter { $0.key != "playwright" }) == canonical(kept))
        // The original is the output with one contiguous run removed.
        let a = [UInt8](original.utf8)
        let b = [UInt8](out)
        let head = zip(a, b).prefix { $0 == $1 }.count
        let tail = zip(a.reversed(), b.reversed()).prefix { $0 == $1 }.count
        #expect(head + tail >= a.count, "only an insertion: \(String(decoding: out, as: UTF8.self))")
    }

    @Test(arguments: [
        (#"{"mcpServers": {"playwright": {"command": "mine"}}}"#, ClaudeJSON.Edit.present),
        ("{not json", .refused("it is not a JSON object")),
        (#"["a"]"#, .refused("it is not a JSON object")),
        ("\"x\"", .refused("it is not a JSON object")),
        (#"{"mcpServers": [1]}"#, .refused("its mcpServers is not an object")),
        (#"{"mcpServers": {"a": 1}, "mcpServers": {"b": 2}}"#, .refused("it names mcpServers twice")),
    ])
    func filesThatAreNotEditedAreLeftAlone(_ original: String, _ expected: ClaudeJSON.Edit) {
        #expect(ClaudeJSON.addMCPServer(Data(original.utf8), name: "playwright", entry: Self.entry) == expected)
    }

    @Test func aMissingFileGetsOnlyTheEntry() throws {
        guard case .write(let out) = ClaudeJSON.addMCPServer(nil, name: "playwright", entry: Self.entry) else {
            Issue.record("no file made")
            return
        }
        let obj = try #require(try JSONSerialization.jsonObject(with: out) as? [String: Any])
        #expect(obj.keys.sorted() == ["mcpServers"])
        #expect((obj["mcpServers"] as? [String: Any])?.keys.sorted() == ["playwright"])
    }
}

import Foundation
import Testing
import WorkstationCore
import WorkstationHost
import WorkstationIntegrations
import WorkstationTestSupport

/// The playwright MCP entry in `~/.claude.json` through the whole pipeline: added only where absent, the person's
/// own file respected, and the per-user unit's port when there is one.
@Suite(.serialized) struct PlaywrightEntryTests: AuthFixtures {

    /// Added where absent, merged into a file a secret created in the same run, idempotent, and a person who
    /// removes it keeps it removed.
    @Test func playwrightEntryIsAddedOnlyWhereAbsent() throws {
        let s = try sandbox(auth: "auth:\n  playwright: {}\n")
        let out = try s.apply()
        #expect(out.succeeded, "\(out.plan.errors) \(out.report.failed.map(\.error))")
        func servers(_ u: String) throws -> [String: Any] {
            let obj = try #require(
                try JSONSerialization.jsonObject(with: s.root.read("/home/\(u)/.claude.json") ?? Data())
                    as? [String: Any]
            )
            return try #require(obj["mcpServers"] as? [String: Any])
        }
        #expect(try servers("bob-dev").keys.sorted() == ["playwright"])
        #expect((try servers("bob-dev")["playwright"] as? [String: Any])?["command"] as? String == "npx")
        #expect(
            try servers("alice").keys.sorted() == ["ha", "playwright"],
            "the ha secret file came first, the entry was added to it"
        )
        #expect(
            s.stat("/home/bob-dev/.claude.json")?.mode == 0o600
                && s.stat("/home/bob-dev/.claude.json")?.uid == s.uid("bob-dev")
        )
        #expect(try s.apply().plan.actionable.isEmpty)
        // bob removes it: it stays removed.
        try s.write("/home/bob-dev/.claude.json", "{\"mcpServers\": {}}\n")
        #expect(try s.apply().plan.actionable.isEmpty)
    }

    /// The person's own entry and every other byte of the file are kept; a file that is not JSON is left alone
    /// and reported.
    @Test(arguments: [
        (#"{"mcpServers": {"playwright": {"command": "mine"}}, "x": 1}"#, false, false),
        ("{not json", false, true),
        (#"["a"]"#, false, true),
        (#"{"mcpServers": 3}"#, false, true),
        (#"{"numStartups": 4,   "tips": {"a": "}{\""}, "projects": [1, {"b": []}]}"#, true, false),
    ])
    func existingClaudeJSONIsRespected(_ content: String, _ added: Bool, _ reported: Bool) throws {
        let s = try sandbox(auth: "")
        #expect(try s.apply().succeeded)
        try s.write("/home/bob-dev/.claude.json", content)
        chown(s.root.path("/home/bob-dev/.claude.json"), uid_t(s.uid("bob-dev")!), gid_t(s.uid("bob-dev")!))
        s.extraSettings = "auth:\n  playwright: {}\n"
        let out = try s.apply()
        let after = s.root.read("/home/bob-dev/.claude.json") ?? Data()
        #expect(
            out.plan.changes.contains {
                $0.kind == .conflict && $0.user == "bob-dev" && $0.summary.contains("left alone")
            } == reported
        )
        if added {
            let obj = try #require(try JSONSerialization.jsonObject(with: after) as? [String: Any])
            let before = try #require(try JSONSerialization.jsonObject(with: Data(content.utf8)) as? [String: Any])
            #expect(
                try JSONSerialization.data(withJSONObject: obj.filter { $0.key != "mcpServers" }, options: .sortedKeys)
                    == JSONSerialization.data(withJSONObject: before, options: .sortedKeys)
            )
            #expect((obj["mcpServers"] as? [String: Any])?.keys.sorted() == ["playwright"])
            #expect(s.stat("/home/bob-dev/.claude.json")?.mode == 0o600)
        } else {
            #expect(after == Data(content.utf8), "byte-identical")
        }
    }

    /// Something that is not a regular file at `~/.claude.json` is never opened for writing, followed or replaced.
    @Test(arguments: ["symlink", "fifo", "directory"])
    func claudeJSONThatIsNotAFileIsLeftAlone(_ kind: String) throws {
        let s = try sandbox(auth: "")
        #expect(try s.apply().succeeded)
        let path = s.root.path("/home/bob-dev/.claude.json")
        let target = s.root.path("/etc/workstation/not-bobs.json")
        try Data("{}\n".utf8).write(to: URL(fileURLWithPath: target))
        switch kind {
        case "symlink": try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: target)
        case "fifo": #expect(mkfifo(path, 0o600) == 0)
        default: try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        }
        s.extraSettings = "auth:\n  playwright: {}\n"
        let before = s.snapshot()
        let out = try s.apply()
        #expect(
            out.plan.changes.contains {
                $0.kind == .conflict && $0.user == "bob-dev" && $0.summary.contains("not a file")
            }
        )
        #expect(s.root.read("/etc/workstation/not-bobs.json") == Data("{}\n".utf8))
        #expect(
            s.snapshot().entries.filter { $0.key.hasPrefix("home/bob-dev") }
                == before.entries.filter { $0.key.hasPrefix("home/bob-dev") }
        )
    }

    /// With a per-user playwright unit in `units:`, the entry is the loopback URL on the person's own port.
    @Test func playwrightUnitGivesTheOwnPort() throws {
        let s = try sandbox(
            auth: """
                units:
                  - {template: t3-serve@, port_range: [3774, 3873], port_env: T3CODE_PORT}
                  - {template: playwright-mcp@, port_range: [8931, 8999], port_env: PLAYWRIGHT_PORT}
                auth:
                  playwright: {unit: playwright-mcp@}

                """
        )
        let out = try s.apply()
        #expect(out.succeeded, "\(out.plan.errors)")
        let obj = try #require(
            try JSONSerialization.jsonObject(with: s.root.read("/home/bob-dev/.claude.json") ?? Data())
                as? [String: Any]
        )
        let entry = try #require((obj["mcpServers"] as? [String: Any])?["playwright"] as? [String: Any])
        let url = try #require(entry["url"] as? String)
        #expect(entry["type"] as? String == "http")
        #expect(url.hasPrefix("http://127.0.0.1:89") && url.hasSuffix("/mcp"))
    }
}

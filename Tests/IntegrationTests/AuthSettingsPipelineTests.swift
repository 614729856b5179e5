import Foundation
import Testing
import WorkstationCore
import WorkstationHost
import WorkstationIntegrations
import WorkstationTestSupport

/// Bad `auth:` settings through the whole pipeline: located errors, and the host byte-identical.
@Suite(.serialized) struct AuthSettingsPipelineTests: AuthFixtures {
    /// Bad `auth:` settings are located errors and the host stays byte-identical.
    @Test(arguments: [
        ("auth:\n  claude: {default: shared}\n", "shared login needs token"),
        ("auth:\n  claude: {default: maybe}\n", "must be own-login or shared"),
        ("auth:\n  beads: {path: dolt, key: k, delivery: carrier-pigeon}\n", "must be env"),
        ("auth:\n  playwright: {unit: nope@}\n", "not among units"),
        ("auth:\n  claude: {token: {path: c, key: k}, env_file: .claude/token.env}\n", "outside ~/.claude"),
        ("auth:\n  beads: {path: dolt, key: k, delivery: file, target: .claude.json}\n", "writes ~/.claude.json"),
    ])
    func badAuthSettingsChangeNothing(_ yaml: String, _ message: String) throws {
        let s = try sandbox(auth: yaml)
        try s.prepare()
        let before = s.snapshot()
        do {
            _ = try s.apply()
            Issue.record("must be refused: \(yaml)")
        } catch let f as ValidationFailure {
            #expect(f.description.contains(message), "\(f.description)")
            #expect(f.description.contains("workstation.yaml:"), "located: \(f.description)")
        }
        #expect(s.snapshot() == before)
    }
}

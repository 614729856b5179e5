import Foundation
import Testing
import WorkstationTestSupport

/// What scripts/package takes from the built binary: the version compiled in from Sources/workstation/VERSION, the
/// shell completions and the command tree the man pages are generated from, and the metrics flag the packaged timer
/// relies on not needing.
@Suite struct PackagingEndToEndTests {
    static let versionFile = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
        "../../Sources/workstation/VERSION"
    ).standardized

    @Test func versionIsTheOneInTheVersionFile() throws {
        let expected = try String(contentsOf: Self.versionFile, encoding: .utf8).trimmingCharacters(
            in: .whitespacesAndNewlines
        )
        // A Debian upstream version: starts with a digit; letters, digits, . + ~ only (deb-version(7)), no hyphen.
        #expect(
            expected.first?.isNumber == true
                && expected.allSatisfy { $0.isLetter || $0.isNumber || ".+~".contains($0) },
            "\(expected)"
        )
        let r = try CLI.run(["--version"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == expected + "\n")
    }

    @Test(arguments: ["bash", "zsh", "fish"]) func completionScripts(_ shell: String) throws {
        let r = try CLI.run(["--generate-completion-script", shell])
        #expect(r.status == 0, "\(r.stderr)")
        for sub in ["apply", "offboard", "setup-host", "metrics"] {
            #expect(r.stdout.contains(sub), "\(shell): \(sub)")
        }
    }

    /// generate-manual (swift-argument-parser's plugin) reads this JSON; every subcommand must be in it.
    @Test func helpDumpNamesEverySubcommand() throws {
        let r = try CLI.run(["--experimental-dump-help"])
        #expect(r.status == 0, "\(r.stderr)")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let command = try #require(obj["command"] as? [String: Any])
        let subs = (command["subcommands"] as? [[String: Any]] ?? []).compactMap { $0["commandName"] as? String }
        #expect(
            Set(subs).isSuperset(of: [
                "validate", "plan", "apply", "setup-host", "status", "metrics", "offboard", "dispatch", "ttyd-login",
            ]),
            "\(subs)"
        )
    }
}

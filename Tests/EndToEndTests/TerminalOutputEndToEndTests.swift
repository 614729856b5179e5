import Foundation
import Testing
import WorkstationTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Names that people or their processes choose reach root's terminal only escaped.
@Suite(.serialized) struct TerminalOutputEndToEndTests {
    @Test func aHostileLinkTargetIsShownEscapedInEveryTextOutput() throws {
        let root = try TempRoot()
        let inputs = try TempRoot()
        try inputs.write("/roster.yaml", HostileCase.base)
        let args = ["--roster", inputs.file("/roster.yaml"), "--settings", Fixture.settingsPath, "--root", root.path]
        let r = try CLI.run(["apply"] + args + ["--init-root"])
        try #require(r.status == 0, "\(r.stderr)")
        // alice points ~/.kube at a name that clears the screen, retitles the window and reverses the line.
        let hostile =
            "/srv/\u{1B}[2J\u{1B}]0;pwned\u{07}\u{202E}fdp.exe\u{9B}1m\nNo changes: the host matches the roster."
        try FileManager.default.createSymbolicLink(atPath: root.file("/home/alice/.kube"), withDestinationPath: hostile)
        for command in [
            ["plan"], ["status"], ["doctor", "--verbose"], ["clone-status"], ["plan", "--json"], ["status", "--json"],
        ] {
            let out = try CLI.run(command + args)
            for (channel, text) in [("stdout", out.stdout), ("stderr", out.stderr)] {
                let raw = text.unicodeScalars.filter {
                    ($0.value < 0x20 && $0 != "\n") || (0x7F...0x9F).contains($0.value) || $0 == "\u{202E}"
                }
                #expect(
                    raw.isEmpty,
                    "\(command) \(channel) carries raw controls \(raw.map { String($0.value, radix: 16) }): \(text.prefix(400))"
                )
            }
            if command == ["plan"] {
                #expect(
                    out.stdout.contains("\\u{1b}[2J\\u{1b}]0;pwned\\u{7}\\u{202e}fdp.exe\\u{9b}1m\\u{a}No changes"),
                    "\(out.stdout)"
                )
                #expect(
                    !out.stdout.contains("\nNo changes: the host matches the roster."),
                    "a name forged a line: \(out.stdout)"
                )
            }
        }
    }
}

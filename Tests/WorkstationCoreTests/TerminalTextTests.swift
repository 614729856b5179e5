import Foundation
import Testing

@testable import WorkstationCore

/// Text on root's terminal: every value from the host or the roster escaped and kept on its line, the renderer's
/// own colours the only escape sequences.
@Suite struct TerminalTextTests {
    @Test(arguments: [
        ("plain", "plain"), ("a\u{1B}[2Jb", "a\\u{1b}[2Jb"),
        ("title\u{1B}]0;pwned\u{07}", "title\\u{1b}]0;pwned\\u{7}"),
        ("csi\u{9B}31m", "csi\\u{9b}31m"), ("del\u{7F}", "del\\u{7f}"), ("evil\u{202E}txt.exe", "evil\\u{202e}txt.exe"),
        ("iso\u{2066}late", "iso\\u{2066}late"), ("zero\u{200B}width", "zero\\u{200b}width"),
        ("line\u{2028}sep", "line\\u{2028}sep"),
        ("tab\there", "tab\\u{9}here"), ("cr\rover", "cr\\u{d}over"), ("two\nlines", "two\nlines"),
        ("j\u{FC}rgen \u{5C71}", "j\u{FC}rgen \u{5C71}"),
        ("unassigned\u{E0080}", "unassigned\\u{e0080}"),
    ])
    func controlsAndBidiAreEscapedNewlinesKept(_ raw: String, _ shown: String) {
        #expect(terminalSafe(raw) == shown)
        #expect(!terminalSafe(raw, keepingNewlines: false).contains("\n"))
        #expect(TerminalText(raw).rendered == shown)
    }

    @Test func onlyTheRenderersOwnColoursAreSequences() {
        var t = TerminalText()
        t.append("+", sgr: "32")
        t.append(" link -> \u{1B}[31mred\u{1B}[0m")
        t.append("x", sgr: "1m\u{1B}]0;")  // not SGR parameters: written plain
        #expect(t.rendered == "\u{1B}[32m+\u{1B}[0m link -> \\u{1b}[31mred\\u{1b}[0mx")
    }

    @Test func aPlanShowsHostileNamesEscapedAndOnTheirLines() {
        var plan = Plan()
        plan.changes = [
            Change(
                id: .file("/x"),
                user: "al\u{1B}]0;x\u{07}",
                kind: .conflict,
                safety: .additive,
                summary: "link to /srv/\u{1B}[2J\nNo changes: forged",
                fields: [FieldChange("target", "a\u{202E}b", "c\rd")],
                reason: "proc \u{9B}name"
            )
        ]
        plan.notes = ["note\u{1B}[1A"]
        let text = PlanRenderer.humanText(plan, color: true).rendered
        #expect(!text.unicodeScalars.contains { $0 == "\u{9B}" || $0 == "\u{202E}" || $0 == "\r" || $0 == "\u{07}" })
        #expect(text.components(separatedBy: "\u{1B}").count == 3, "only the symbol's colour and its reset: \(text)")
        #expect(!text.contains("\nNo changes: forged"))
        #expect(text.contains("link to /srv/\\u{1b}[2J\\u{a}No changes: forged"))
    }

    @Test func jsonKeepsItsValueAndEscapesWhatATerminalActsOn() throws {
        let obj: [String: Any] = ["name": "a\u{1B}b\u{9B}c\u{202E}d\u{7F}e\u{E0080}"]
        let text = jsonText(obj)
        #expect(
            !text.unicodeScalars.contains {
                $0.value == 0x1B || $0.value == 0x9B || $0.value == 0x202E || $0.value == 0x7F || $0.value == 0xE0080
            }
        )
        #expect(text.contains("\\u202e") && text.contains("\\udb40\\udc80"))
        let back = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: String]
        #expect(back?["name"] == obj["name"] as? String)
    }
}

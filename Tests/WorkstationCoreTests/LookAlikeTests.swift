import Foundation
import Testing

@testable import WorkstationCore

/// Names that pass for one another once case, width, compatibility forms and confusable letters are folded
/// (UTS #39 skeletons).
@Suite struct LookAlikeTests {
    @Test(arguments: [
        ("alice", "ALICE"), ("alice", "\u{FF41}\u{FF4C}\u{FF49}\u{FF43}\u{FF45}"), ("alice", "\u{0430}lice"),
        ("bob", "\u{044C}\u{043E}\u{044C}"),
        ("strasse", "stra\u{DF}e"), ("kelvin", "\u{212A}elvin"), ("office", "o\u{FB03}ce"), ("alice", "a1ice"),
        ("bob", "b0b"),
        ("modern", "rnodern"), ("a-b", "a\u{2010}b"), ("a-b", "a\u{2212}b"),
        ("pope", "\u{0440}\u{043E}\u{0440}\u{0435}"), ("alice", "al\u{200B}ice"),
        ("sigma", "\u{0455}igma"), ("xyz", "\u{0445}\u{0443}z"),
    ])
    func lookAlikesShareASkeleton(_ a: String, _ b: String) {
        #expect(lookAlikeSkeleton(a) == lookAlikeSkeleton(b), "\(a) / \(printable(b))")
    }

    @Test(arguments: [
        ("alice", "alicia"), ("bob", "rob"), ("j\u{FC}rgen", "jurgen"), ("dave", "dove"), ("ann", "anna"),
        ("f001", "f002"),
    ])
    func differentNamesKeepDifferentSkeletons(_ a: String, _ b: String) {
        #expect(lookAlikeSkeleton(a) != lookAlikeSkeleton(b), "\(a) / \(b)")
    }

    @Test(arguments: [
        ("\u{0430}lice", "Latin", "Cyrillic"), ("b\u{03BF}b", "Latin", "Greek"), ("\u{0561}lice", "Latin", "Armenian"),
        ("\u{03B1}\u{0430}", "Greek", "Cyrillic"),
    ])
    func mixedScriptsAreNamed(_ name: String, _ first: String, _ second: String) throws {
        let (a, b) = try #require(mixedScripts(name))
        #expect(a.rawValue == first && b.rawValue == second)
        #expect(identityProblem(name)?.contains("mixes \(first) and \(second) letters") == true)
    }

    @Test(arguments: [
        "alice", "j\u{FC}rgen", "\u{0430}\u{043B}\u{0438}\u{0441}\u{0430}", "\u{5C71}\u{7530}\u{3055}\u{3093}",
        "\u{AE40}\u{91D1}", "bob.smith+1",
    ])
    func singleScriptNamesAreNotMixed(_ name: String) {
        #expect(mixedScripts(name) == nil, "\(name)")
    }
}

import Foundation
import Testing

@testable import WorkstationCore

/// The roster as YAML: YAML 1.1 implicit typing in name fields, null look-alikes, alias bombs and deep nesting,
/// each refused with a located error.
@Suite struct RosterYAMLTests {
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

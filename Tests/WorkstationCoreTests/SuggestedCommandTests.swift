import Foundation
import Testing

@testable import WorkstationCore

/// Suggested commands in messages act on the run's own inputs and root.
@Suite struct SuggestedCommandTests {
    @Test(arguments: [
        ("run workstation apply to regenerate them", "run workstation apply --root /r to regenerate them"),
        ("fix: workstation setup-host --install-packages", "fix: workstation setup-host --root /r --install-packages"),
        ("`workstation offboard bob --stage cut`", "`workstation offboard --root /r bob --stage cut`"),
        ("workstation status", "workstation status --root /r"),
        ("then workstation apply.", "then workstation apply --root /r."),
        ("workstation plan, then workstation apply", "workstation plan --root /r, then workstation apply --root /r"),
        // Not commands: a path, a unit name, another word, an unknown subcommand, one that already carries them.
        ("see /etc/workstation apply", "see /etc/workstation apply"),
        ("workstation-dispatch apply", "workstation-dispatch apply"),
        ("the workstation applies", "the workstation applies"),
        ("workstation dispatch --listen x", "workstation dispatch --listen x"),
        ("workstation apply --root /r", "workstation apply --root /r"),
        ("", ""),
    ])
    func carriesTheOptions(text: String, expected: String) {
        #expect(SuggestedCommand.carrying(" --root /r", in: text) == expected)
    }

    @Test func noOptionsLeaveTheTextAlone() {
        #expect(SuggestedCommand.carrying("", in: "run workstation apply") == "run workstation apply")
    }
}

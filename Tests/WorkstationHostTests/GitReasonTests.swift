import Foundation
import Testing

@testable import WorkstationHost

/// A failed clone's error keeps git's own reason (its `fatal:`/`error:` lines), not only its generic last lines.
@Suite struct GitReasonTests {
    @Test(arguments: [
        // git 2.39 cloning a local repository another account owns, as the person
        (
            "Cloning into 'code'...\nfatal: detected dubious ownership in repository at '/srv/infra/.git'\nTo add an exception for this directory, call:\n\n\tgit config --global --add safe.directory /srv/infra/.git\nfatal: Could not read from remote repository.\n\nPlease make sure you have the correct access rights\nand the repository exists.\n",
            "fatal: detected dubious ownership in repository at '/srv/infra/.git' | fatal: Could not read from remote repository."
        ),
        ("fatal: repository '/srv/none' does not exist\n", "fatal: repository '/srv/none' does not exist"),
        (
            "warning: redirecting\nerror: RPC failed; HTTP 403\nfatal: the remote end hung up unexpectedly\n",
            "error: RPC failed; HTTP 403 | fatal: the remote end hung up unexpectedly"
        ),
        ("a\nb\nc\nd\ne\n", "b | c | d | e"),  // no fatal line: the last four
        // control characters never reach the terminal raw
        ("fatal: bad \u{1B}[31mname\n", "fatal: bad \\u{1b}[31mname"),
        ("", "(git printed nothing)"),
    ])
    func theReasonSurvives(stderr: String, reason: String) {
        #expect(InfraCloneError.gitReason(stderr) == reason)
        let message = InfraCloneError.gitFailed(user: "alice", url: "/srv/infra", status: 128, stderr: stderr)
            .description
        #expect(message.contains(reason), "\(message)")
    }
}

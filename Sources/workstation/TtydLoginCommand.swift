import ArgumentParser
import Foundation
import WorkstationCore
import WorkstationDispatch

/// `workstation ttyd-login`: the command ttyd runs per terminal (`deploy/workstation-ttyd.service`: ttyd on a unix
/// socket only the front proxy can reach, `-H X-authentik-username`; docs/dispatch.md).
struct TtydLoginCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ttyd-login",
        abstract: "Start the login shell of the account TTYD_USER maps to in the ttyd user map.",
        discussion: """
            Reads TTYD_USER (set by ttyd from X-authentik-username), looks it up exactly in the map and runs \
            'runuser -l ACCOUNT'. Refuses unknown, empty, over-long or malformed names, and accounts that are root, \
            locked or expired. Exit status 1 on refusal.
            """
    )

    @Option(name: .long, help: "Root prefix for /etc/passwd, /etc/shadow and the map (tests).")
    var root = "/"

    @Option(name: .long, help: "The ttyd user map.")
    var map = "/etc/ttyd-user-map"

    @Flag(name: .customLong("dry-run"), help: "Print the command that would run instead of running it.")
    var dryRun = false

    func run() throws {
        let login = TtydLogin(root: root, mapPath: map)
        let user = ProcessInfo.processInfo.environment["TTYD_USER"]
        let argv: [String]
        do {
            argv = try login.resolve(ttydUser: user, today: TtydLogin.today())
        } catch {
            printError("workstation ttyd-login: error: \(error.description)")
            throw ExitCode(1)
        }
        if dryRun {
            say(argv.map { printable($0) }.joined(separator: " "))
            return
        }
        let failure = TtydLogin.exec(argv)
        printError("workstation ttyd-login: error: \(failure)")
        throw ExitCode(1)
    }
}

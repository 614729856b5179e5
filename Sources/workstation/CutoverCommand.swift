import ArgumentParser
import Foundation
import WorkstationCore
import WorkstationHost

struct CutoverCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cutover",
        abstract:
            "Move an existing roster user off the lead's tree onto the new model, recording a rollback first (opt-in).",
        discussion: """
            Records where ~/code points, the group list, copies of the launchers and the ~/.claude links it replaces \
            (in state and under <state dir>/cutover/USER/); refuses a busy user (exit 3) unless --force; then removes \
            the ~/code symlink, repoints the launchers to $HOME/code, drops ~/.claude links into the lead's home, \
            leaves the shared-code group, and runs apply. Undo: workstation rollback USER.
            """
    )

    @Argument(help: "The os_user to cut over.")
    var user: String

    @Flag(help: "Cut over even when the idle gate finds the user busy.")
    var force = false

    @OptionGroup var options: LifecycleOptions

    func run() throws {
        try options.run(command: "cutover", extra: ["user": user]) { loaded, root, dryRun in
            try Cutover.cutover(
                user: user,
                inputs: loaded,
                root: root,
                runner: ProcessRunner(),
                force: force,
                dryRun: dryRun,
                progress: { printError($0) }
            )
        }
    }
}

struct RollbackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollback",
        abstract:
            "Undo a cutover: restore ~/code, the launchers, the ~/.claude links and the group list exactly as recorded."
    )

    @Argument(help: "The os_user to roll back.")
    var user: String

    @OptionGroup var options: LifecycleOptions

    func run() throws {
        try options.run(command: "rollback", extra: ["user": user]) { loaded, root, dryRun in
            try Cutover.rollback(
                user: user,
                inputs: loaded,
                root: root,
                runner: ProcessRunner(),
                dryRun: dryRun,
                progress: { printError($0) }
            )
        }
    }
}

import ArgumentParser
import Foundation
import WorkstationCore
import WorkstationHost

extension OffboardStage: ExpressibleByArgument {}
extension PersonPlacement: ExpressibleByArgument {}

struct OffboardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "offboard",
        abstract:
            "Offboard a user who left the roster, one stage at a time: cut (reversible), revoke, archive (irreversible).",
        discussion: """
            Stages run in order; each is journaled and recorded in state. cut (of one or many people in one run: \
            every gate is checked for all of them first, then their units are stopped and disabled together): stop \
            and disable the per-user units, lock the password and expire the account, disable linger, end every process of the account (their user \
            manager included; on the live root only, never under --root). revoke: delete the per-user secret files workstation wrote and \
            print the cluster steps for an admin. archive: tar the home, verify it, userdel --remove, retire the uid \
            (needs --confirm USER; refused while any process of the user runs). Undo cut/revoke: put the entry back \
            in the roster and run apply.
            """
    )

    @Argument(
        help:
            "The os_users to offboard: several for stage cut (one run, their units disabled together), one for revoke and archive."
    )
    var users: [String]

    @Option(help: "The stage to run: cut, revoke or archive.")
    var stage: OffboardStage

    @Option(help: "The archive stage deletes the account: type the os_user here to go ahead.")
    var confirm: String?

    @Flag(
        help: "Archive even when the idle gate finds a connection to the user's t3 port (never with running processes)."
    )
    var force = false

    @Option(
        help:
            "Which side to offboard when a person had both: host (their account here) or kubernetes (their workspace; docs/scale-out.md)."
    )
    var placement: PersonPlacement?

    @OptionGroup var options: LifecycleOptions

    func validate() throws {
        if users.isEmpty { throw ValidationError("name the os_user to offboard") }
        if stage != .cut && users.count > 1 {
            throw ValidationError(
                "stage \(stage.rawValue) takes one os_user at a time; run it once for each person (stage cut takes many)"
            )
        }
    }

    func run() throws {
        let who: [String: any Sendable] = users.count == 1 ? ["user": users[0]] : ["users": users]
        try options.run(command: "offboard", extra: who.merging(["stage": stage.rawValue]) { a, _ in a }) {
            loaded,
            root,
            dryRun in
            try Offboarding.run(
                stage: stage,
                users: users,
                inputs: loaded,
                root: root,
                runner: ProcessRunner(),
                dryRun: dryRun,
                confirm: confirm,
                force: force,
                idp: AuthentikGateHook.live(
                    settings: loaded.settings,
                    root: root,
                    environment: ProcessInfo.processInfo.environment
                ),
                placement: placement,
                progress: { printError($0) }
            )
        }
    }
}

/// The options every lifecycle command shares, and the one way they run: load, run the stage, report.
struct LifecycleOptions: ParsableArguments {
    @Flag(help: "Print the changes and change nothing.")
    var dryRun = false

    @OptionGroup var output: JSONOptions

    @OptionGroup var inputs: InputOptions
    @OptionGroup var rootOptions: RootOptions

    /// Loads the inputs, runs `body` (with the dry-run flag), then reports; errors map to the exit-code contract.
    func run(
        command: String,
        extra: [String: any Sendable],
        _ body: (Inputs, HostRoot, Bool) throws -> LifecycleOutcome
    ) throws {
        let reporter = output.reporter(command, options: commandOptions(inputs, rootOptions))
        let outcome: LifecycleOutcome
        do {
            outcome = try body(try Engine.load(inputs.paths, root: rootOptions.hostRoot), rootOptions.hostRoot, dryRun)
        } catch {
            throw reporter.failure(error)
        }
        try report(outcome, reporter: reporter, extra: extra, commandOptions: commandOptions(inputs, rootOptions))
    }
}

/// Prints a lifecycle outcome (human or JSON) and maps failures to exit 1.
func report(
    _ outcome: LifecycleOutcome,
    reporter: Reporter,
    extra: [String: any Sendable],
    commandOptions: String
) throws {
    if reporter.json {
        var e = PlanRenderer.jsonObject(outcome.plan)
        for (k, v) in extra { e[k] = v }
        for (k, v) in outcome.extra { e[k] = v }
        e["dry_run"] = outcome.dryRun
        e["messages"] = outcome.messages
        e["applied"] = outcome.report?.applied.map(\.id.description) ?? []
        e["failed"] = outcome.report?.failed.map { ["change": $0.change.id.description, "error": $0.error] } ?? []
        e["skipped"] = outcome.report?.skipped.map { ["change": $0.change.id.description, "reason": $0.reason] } ?? []
        reporter.emit(e, exitCode: outcome.succeeded ? ExitStatus.ok : ExitStatus.error)
    } else {
        say(PlanRenderer.humanText(outcome.plan, color: useColor, commandOptions: commandOptions, verdict: false))
        for m in outcome.messages { say(reporter.text(m)) }
        if outcome.dryRun { say("dry run: nothing was changed") }
        if let r = outcome.report {
            say("Ran \(r.applied.count) of \(outcome.plan.changes.filter { $0.action != nil }.count) steps.")
        }
    }
    for f in outcome.report?.failed ?? [] { reporter.say("error: \(f.error)") }
    for s in outcome.report?.skipped ?? [] { reporter.say("skipped: \(s.change.summary): \(s.reason)") }
    if !outcome.succeeded { throw ExitCode(1) }
}

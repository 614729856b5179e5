import Foundation
import Testing
import WorkstationTestSupport

/// The output contract (docs/json.md): with `--json` every exit path of every command prints exactly one JSON
/// object carrying `format_version`, `command` and `exit_code`; errors and refusals carry `error.kind`; the bytes
/// are the same for the same host and inputs; CPU time appears only with `--timings`; without `--json`, refusals go
/// to standard error only; exit codes follow `workstation --help`.
@Suite(.serialized) struct JSONContractTests {
    func converged() throws -> TempRoot {
        let root = try TempRoot()
        let r = try CLI.run([
            "apply", "--roster", Inputs.roster, "--settings", Inputs.settings, "--root", root.path, "--init-root",
        ])
        try #require(r.status == 0, "apply failed: \(r.stderr)")
        return root
    }

    func inputs(_ root: TempRoot, roster: String = Inputs.roster) -> [String] {
        ["--roster", roster, "--settings", Inputs.settings, "--root", root.path]
    }

    /// The one JSON object `r` printed, checked against the envelope.
    func object(_ r: ProcessOutput, command: String, _ comment: String) throws -> [String: Any] {
        let obj = try #require(
            try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any],
            "\(comment): standard output is not one JSON object: \(r.stdout.prefix(400)) / \(r.stderr.prefix(400))"
        )
        #expect(obj["format_version"] as? Int == 1, "\(comment)")
        #expect(obj["command"] as? String == command, "\(comment): command \(String(describing: obj["command"]))")
        #expect(
            obj["exit_code"] as? Int == Int(r.status),
            "\(comment): exit_code \(String(describing: obj["exit_code"])) but status \(r.status)"
        )
        return obj
    }

    struct Case {
        var name: String
        var command: String
        var args: (TempRoot) throws -> [String]
        var status: Int32
        /// `error.kind`, or nil when the run succeeds.
        var kind: String?
        var changesNothing = false
    }

    @Test func everyExitPathPrintsOneObject() throws {
        let root = try converged()
        let badRoster = root.file("/bad-roster.yaml")
        try "users:\n  Alice: { authentik_user: a, k8s_user: a, tier: power-user }\n".write(
            toFile: badRoster,
            atomically: true,
            encoding: .utf8
        )
        let withoutBob = root.file("/without-bob.yaml")
        try String(contentsOfFile: Inputs.roster, encoding: .utf8).split(separator: "\n").filter {
            !$0.contains("bob-dev:")
        }
        .joined(separator: "\n").write(toFile: withoutBob, atomically: true, encoding: .utf8)
        let withoutCarol = root.file("/without-carol.yaml")
        try String(contentsOfFile: Inputs.roster, encoding: .utf8).split(separator: "\n").filter {
            !$0.contains("carol:")
        }
        .joined(separator: "\n").write(toFile: withoutCarol, atomically: true, encoding: .utf8)
        let cases: [Case] = [
            Case(name: "plan, converged", command: "plan", args: { ["plan", "--json"] + self.inputs($0) }, status: 0),
            Case(
                name: "plan --detailed-exitcode, converged",
                command: "plan",
                args: { ["plan", "--json", "--detailed-exitcode"] + self.inputs($0) },
                status: 0
            ),
            Case(name: "apply, no-op", command: "apply", args: { ["apply", "--json"] + self.inputs($0) }, status: 0),
            Case(name: "status", command: "status", args: { ["status", "--json"] + self.inputs($0) }, status: 0),
            Case(
                name: "clone-status",
                command: "clone-status",
                args: { ["clone-status", "--json"] + self.inputs($0) },
                status: 0
            ),
            Case(name: "validate", command: "validate", args: { ["validate", "--json"] + self.inputs($0) }, status: 0),
            Case(
                name: "setup-host --plan",
                command: "setup-host",
                args: { ["setup-host", "--plan", "--json"] + self.inputs($0) },
                status: 0
            ),
            Case(
                name: "offboard, refused: still in the roster",
                command: "offboard",
                args: { ["offboard", "bob-dev", "--stage", "cut", "--json"] + self.inputs($0) },
                status: 3,
                kind: "refused",
                changesNothing: true
            ),
            Case(
                name: "validate, invalid roster",
                command: "validate",
                args: { ["validate", "--json"] + self.inputs($0, roster: badRoster) },
                status: 1,
                kind: "invalid_input",
                changesNothing: true
            ),
            Case(
                name: "plan, invalid roster",
                command: "plan",
                args: { ["plan", "--json"] + self.inputs($0, roster: badRoster) },
                status: 1,
                kind: "invalid_input",
                changesNothing: true
            ),
            Case(
                name: "apply, invalid roster",
                command: "apply",
                args: { ["apply", "--json"] + self.inputs($0, roster: badRoster) },
                status: 1,
                kind: "invalid_input",
                changesNothing: true
            ),
            Case(
                name: "status, missing roster",
                command: "status",
                args: { ["status", "--json"] + self.inputs($0, roster: $0.file("/no-such-roster.yaml")) },
                status: 1,
                kind: "failed",
                changesNothing: true
            ),
            Case(
                name: "apply, refused by the lockout guard",
                command: "apply",
                args: { root in
                    let group = try #require(root.read("/etc/group"))
                    try root.write(
                        "/etc/group",
                        group.replacingOccurrences(of: "sudo:x:27:\n", with: "sudo:x:27:carol\n")
                    )
                    return ["apply", "--json"] + self.inputs(root, roster: withoutCarol)
                },
                status: 3,
                kind: "refused",
                changesNothing: true
            ),
            Case(
                name: "plan, unknown option",
                command: "plan",
                args: { ["plan", "--json", "--no-such-flag"] + self.inputs($0) },
                status: 64,
                kind: "usage",
                changesNothing: true
            ),
            Case(
                name: "offboard, unknown stage",
                command: "offboard",
                args: { ["offboard", "bob-dev", "--stage", "vanish", "--json"] + self.inputs($0) },
                status: 64,
                kind: "usage",
                changesNothing: true
            ),
        ]
        for c in cases {
            let args = try c.args(root)
            let before = root.snapshot()
            let r = try CLI.run(args)
            #expect(r.status == c.status, "\(c.name): status \(r.status): \(r.stderr.prefix(600))")
            let obj = try object(r, command: c.command, c.name)
            let error = obj["error"] as? [String: Any]
            #expect(error?["kind"] as? String == c.kind, "\(c.name): error \(String(describing: error))")
            if c.kind != nil { #expect((error?["message"] as? String)?.isEmpty == false, "\(c.name)") }
            if c.kind == "invalid_input" {
                let diagnostics = try #require(error?["diagnostics"] as? [[String: Any]], "\(c.name)")
                #expect(
                    !diagnostics.isEmpty
                        && diagnostics.allSatisfy {
                            ($0["file"] as? String)?.hasSuffix("bad-roster.yaml") == true
                                && ($0["line"] as? Int ?? 0) > 0
                                && ($0["column"] as? Int ?? 0) > 0 && !(($0["message"] as? String) ?? "").isEmpty
                        },
                    "\(c.name): \(diagnostics)"
                )
            }
            if c.kind == "refused" {
                let refusals = try #require(obj["refusals"] as? [[String: Any]], "\(c.name)")
                #expect(
                    !refusals.isEmpty && refusals.allSatisfy { !($0["gate"] as? String ?? "").isEmpty },
                    "\(c.name): \(refusals)"
                )
                if c.name.contains("lockout") {
                    #expect(refusals.contains { $0["gate"] as? String == "lockout guard" }, "\(refusals)")
                }
            }
            if c.changesNothing {
                #expect(root.snapshot() == before, "\(c.name) changed the root")
                if c.kind != nil {
                    #expect(obj["changed"] as? Bool == false || c.kind == "usage" || c.kind == "failed", "\(c.name)")
                }
            }
        }
    }

    @Test func theSameHostPrintsTheSameBytesAndTimingsAreOptIn() throws {
        let root = try converged()
        for command in [["plan"], ["status"], ["doctor"], ["clone-status"], ["validate"], ["setup-host", "--plan"]] {
            let a = try CLI.run(command + ["--json"] + inputs(root))
            let b = try CLI.run(command + ["--json"] + inputs(root))
            #expect(a.stdout == b.stdout, "\(command): two runs on the same host printed different JSON")
            #expect(!a.stdout.contains("cpu_ms"), "\(command): CPU time without --timings")
            _ = try object(a, command: command[0], "\(command)")
        }
        let timed = try object(
            try CLI.run(["plan", "--json", "--timings"] + inputs(root)),
            command: "plan",
            "plan --timings"
        )
        let cpu = try #require(timed["cpu_ms"] as? [String: Int], "plan --json --timings reports cpu_ms")
        #expect(cpu["workstation"] != nil && cpu["tools"] == 0)
    }

    @Test func pendingRevocationsShowInTheExitCodeOnlyWhenAsked() throws {
        let root = try converged()
        let without = root.file("/without-bob.yaml")
        try String(contentsOfFile: Inputs.roster, encoding: .utf8).split(separator: "\n").filter {
            !$0.contains("bob-dev:")
        }
        .joined(separator: "\n").write(toFile: without, atomically: true, encoding: .utf8)
        // Before apply: derived files still name bob-dev (2) and his offboarding waits for an operator (4).
        let table: [([String], Int32)] = [
            (["--detailed-exitcode"], 2), (["--pending-exitcode"], 4),
            (["--detailed-exitcode", "--pending-exitcode"], 6), ([], 0),
        ]
        for (flags, status) in table {
            let r = try CLI.run(["plan"] + inputs(root, roster: without) + flags)
            #expect(r.status == status, "plan \(flags): \(r.status)")
        }
        let apply = try CLI.run(["apply"] + inputs(root, roster: without))
        try #require(apply.status == 0, "\(apply.stderr)")
        // After apply only the operator's part is left.
        for (flags, status) in [
            (["--detailed-exitcode"], Int32(0)), (["--detailed-exitcode", "--pending-exitcode"], 4),
        ] {
            let r = try CLI.run(["plan"] + inputs(root, roster: without) + flags)
            #expect(r.status == status, "plan \(flags) after apply: \(r.status)")
            #expect(
                r.stdout.contains(
                    "run: workstation offboard bob-dev --stage cut --roster \(without) --settings \(Inputs.settings) --root \(root.path)"
                ),
                "the suggested command carries this run's inputs and root"
            )
        }
        // The same plan on a host with nothing pending exits 0 with either flag.
        let clean = try converged()
        #expect(try CLI.run(["plan", "--detailed-exitcode", "--pending-exitcode"] + inputs(clean)).status == 0)
    }

    @Test func aRefusalSuggestsCommandsForTheSameRunAndGoesToStandardError() throws {
        let root = try converged()
        let without = root.file("/without-bob.yaml")
        try String(contentsOfFile: Inputs.roster, encoding: .utf8).split(separator: "\n").filter {
            !$0.contains("bob-dev:")
        }
        .joined(separator: "\n").write(toFile: without, atomically: true, encoding: .utf8)
        let before = root.snapshot()
        let r = try CLI.run(["offboard", "bob-dev", "--stage", "cut"] + inputs(root, roster: without))
        #expect(r.status == 3)
        #expect(r.stdout.isEmpty, "a refusal prints nothing on standard output: \(r.stdout)")
        #expect(r.stderr.contains("refused by derived files"))
        #expect(
            r.stderr.contains(
                "run workstation apply --roster \(without) --settings \(Inputs.settings) --root \(root.path) to regenerate"
            ),
            "\(r.stderr)"
        )
        #expect(root.snapshot() == before)
    }
}

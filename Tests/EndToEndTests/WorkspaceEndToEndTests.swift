import Foundation
import Testing
import WorkstationTestSupport

/// The scale-out example through the built binary (docs/scale-out.md): apply routes the kubernetes-placed person
/// and converges; `render workspaces` prints objects that Kubernetes' published schemas accept strictly, at the
/// pinned version, before and after a departure's cut; bad input is a located error that changes nothing.
@Suite(.serialized) struct WorkspaceEndToEndTests {
    static let roster = Repository.examples.appendingPathComponent("scale-out/roster.yaml").path
    static let settings = Repository.examples.appendingPathComponent("scale-out/workstation.yaml").path
    /// The Kubernetes version the rendered objects are validated against (WorkspaceManifests.validatedVersion).
    static let kubernetesVersion = "1.31.0"

    /// `kubernetes-validate` (PyPI): `$WORKSTATION_KUBERNETES_VALIDATE`, the venv `.ci/run` makes in
    /// `.build/kubernetes-validate`, or one on `PATH`.
    static var validator: String? {
        let fm = FileManager.default
        if let p = ProcessInfo.processInfo.environment["WORKSTATION_KUBERNETES_VALIDATE"],
            fm.isExecutableFile(atPath: p)
        {
            return p
        }
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..")
            .standardized
        let venv = repo.appendingPathComponent(".build/kubernetes-validate/bin/kubernetes-validate").path
        if fm.isExecutableFile(atPath: venv) { return venv }
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let p = "\(dir)/kubernetes-validate"
            if fm.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    /// Validates `yaml` strictly; records an issue for every error or warning (a kind without a schema is a
    /// warning: it would not have been validated). Without the validator: an issue in CI, a printed skip locally.
    func validate(_ yaml: String, _ what: String) throws {
        guard let validator = Self.validator else {
            if ProcessInfo.processInfo.environment["CI"] == "true" {
                Issue.record(
                    "kubernetes-validate is not installed; .ci/run installs it into .build/kubernetes-validate (python3 -m venv, pip install kubernetes-validate)"
                )
            } else {
                print(
                    "skip - schema validation of \(what): kubernetes-validate is not installed (python3 -m venv .build/kubernetes-validate && .build/kubernetes-validate/bin/pip install kubernetes-validate)"
                )
            }
            return
        }
        let root = try TempRoot()
        try root.write("/objects.yaml", yaml)
        let r = try TestProcess.run(validator, ["--strict", "-k", Self.kubernetesVersion, root.file("/objects.yaml")])
        let lines = (r.stdout + r.stderr).split(separator: "\n")
        #expect(r.status == 0, "\(what): kubernetes-validate exited \(r.status)\n\(r.stdout)\(r.stderr)")
        #expect(!lines.contains { $0.hasPrefix("ERROR") || $0.hasPrefix("WARN") }, "\(what):\n\(r.stdout)\(r.stderr)")
        let objects = yaml.split(separator: "\n").filter { $0 == "---" }.count
        #expect(
            lines.filter { $0.hasPrefix("INFO") && $0.contains("passed") }.count == objects,
            "\(what): \(objects) objects, \(r.stdout)"
        )
    }

    func args(
        _ cmd: [String],
        _ root: TempRoot,
        roster: String = Self.roster,
        settings: String = Self.settings
    )
        -> [String]
    {
        cmd + ["--roster", roster, "--settings", settings, "--root", root.path]
    }

    @Test func theScaleOutExampleAppliesRoutesAndRendersObjectsTheSchemasAccept() throws {
        let root = try TempRoot()
        let apply = try CLI.run(args(["apply"], root) + ["--init-root"])
        #expect(apply.status == 0, "\(apply.stdout)\n\(apply.stderr)")
        let plan = try CLI.run(args(["plan", "--detailed-exitcode"], root))
        #expect(plan.status == 0, "\(plan.stdout)\n\(plan.stderr)")
        let dispatch = try #require(root.read("/etc/t3-serve/dispatch.json"))
        #expect(dispatch.contains("\"host\" : \"workspace-erin.workstation.svc.cluster.local\""))
        #expect(dispatch.contains("\"version\" : 2"))
        #expect(root.read("/etc/ttyd-user-map")?.contains("erin") == false)
        #expect(!root.exists("/home/erin"))
        #expect(root.read("/etc/passwd")?.contains("\nerin:") == false)

        let render = try CLI.run(args(["render", "workspaces"], root))
        #expect(render.status == 0, "\(render.stderr)")
        #expect(render.stdout.contains("kind: \"StatefulSet\"") && render.stdout.contains("name: \"workspace-erin\""))
        try validate(render.stdout, "the scale-out example")

        // erin leaves: apply drops her route, the cut records replicas 0, and the render still validates.
        let without = root.file("/roster-without-erin.yaml")
        try String(contentsOfFile: Self.roster, encoding: .utf8).split(separator: "\n").filter {
            !$0.hasPrefix("  erin:")
        }.joined(separator: "\n").write(toFile: without, atomically: true, encoding: .utf8)
        #expect(try CLI.run(args(["apply"], root, roster: without)).status == 0)
        let cut = try CLI.run(args(["offboard", "erin", "--stage", "cut"], root, roster: without))
        #expect(cut.status == 0, "\(cut.stdout)\n\(cut.stderr)")
        #expect(cut.stdout.contains("kubectl -n workstation scale statefulset workspace-erin --replicas=0"))
        let after = try CLI.run(args(["render", "workspaces"], root, roster: without))
        #expect(after.status == 0, "\(after.stderr)")
        #expect(after.stdout.contains("replicas: 0") && after.stdout.contains("workstation/stage: \"cut\""))
        try validate(after.stdout, "a cut workspace")
    }

    /// The other shapes (TLS off, a config base claim, the Vault Agent Injector, the dispatcher in the cluster)
    /// are valid objects too.
    @Test func everyOptionRendersObjectsTheSchemasAccept() throws {
        let root = try TempRoot()
        let text = """
            config_base: /srv/workstation/config-base
            workspaces:
              namespace: team-workspaces
              image: registry.example.org/workstation/agent:2026.12
              config_base: {claim: config-base}
              storage_class: fast-ssd
              read_only_root: false
              secrets: {from: vault-injector}
              tls: {mode: none}
              dispatcher: {in_cluster: true, image: registry.example.org/workstation:0.1.0, sources: [192.0.2.0/24]}
            vault:
              url: https://vault.example.org
              secret_files:
                - {name: beads, path: beads, key: password, target: .config/beads/credential}

            """
        try root.write("/cfg/workstation.yaml", text)
        let r = try CLI.run(args(["render", "workspaces"], root, settings: root.file("/cfg/workstation.yaml")))
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("kind: \"Deployment\"") && r.stdout.contains("vault.hashicorp.com/agent-inject"))
        try validate(r.stdout, "TLS off, a claim, the injector, an in-cluster dispatcher")
    }

    struct Bad: Sendable, CustomStringConvertible {
        var name: String
        var roster: String
        var settings: String
        var error: String
        var description: String { name }
    }

    static let bad: [Bad] = [
        Bad(
            name: "an unknown placement",
            roster:
                "users:\n  erin: { authentik_user: erin, k8s_user: erin, tier: power-user, placement: cluster, uid: 1100 }\n",
            settings: "",
            error: "roster.yaml:2:78: error: placement must be host or kubernetes, got 'cluster'"
        ),
        Bad(
            name: "kubernetes-placed without the workspaces section",
            roster:
                "users:\n  erin: { authentik_user: erin, k8s_user: erin, tier: power-user, placement: kubernetes, uid: 1100 }\n",
            settings: "config_base: /srv/workstation/config-base\n",
            error:
                "roster.yaml:2:78: error: 'erin' is placed on kubernetes, but the settings have no workspaces: section"
        ),
        Bad(
            name: "workspaces without an image",
            roster: "users: {}\n",
            settings: "workspaces:\n  config_base: {claim: base}\n  dispatcher: {sources: [192.0.2.10/32]}\n",
            error: "workstation.yaml:2:3: error: workspaces is missing required key 'image'"
        ),
    ]

    /// Bad input: exit 1, the located error, and the root byte for byte as it was, for apply, plan and render.
    @Test(arguments: bad) func badInputIsLocatedAndChangesNothing(_ c: Bad) throws {
        let root = try TempRoot()
        #expect(try CLI.run(args(["apply"], root) + ["--init-root"]).status == 0)
        try root.write("/cfg/roster.yaml", c.roster)
        try root.write("/cfg/workstation.yaml", c.settings)
        let before = root.snapshot()
        for cmd in [["apply"], ["plan"], ["render", "workspaces"]] {
            let r = try CLI.run(
                args(cmd, root, roster: root.file("/cfg/roster.yaml"), settings: root.file("/cfg/workstation.yaml"))
            )
            #expect(r.status == 1, "\(c.name), \(cmd): \(r.status)")
            #expect(r.stdout.isEmpty || cmd != ["render", "workspaces"], "\(c.name): render printed objects")
            let file = c.error.hasPrefix("roster") ? root.file("/cfg/roster.yaml") : root.file("/cfg/workstation.yaml")
            let expected = c.error.replacingOccurrences(
                of: c.error.hasPrefix("roster") ? "roster.yaml" : "workstation.yaml",
                with: file
            )
            #expect(r.stderr.contains(expected), "\(c.name), \(cmd): \(r.stderr)")
        }
        #expect(root.snapshot() == before, "\(c.name): the root changed")
    }

    /// A roster file under the root: the scale-out roster with `edit` applied to its lines.
    func roster(_ root: TempRoot, _ name: String, _ edit: (String) -> String?) throws -> String {
        let path = root.file("/\(name).yaml")
        try String(contentsOfFile: Self.roster, encoding: .utf8).split(
            separator: "\n",
            omittingEmptySubsequences: false
        )
        .compactMap { edit(String($0)) }.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// A workspace's stages in order, each recorded and journaled; the claim is deleted only with --confirm.
    @Test func aDepartedWorkspaceIsOffboardedStageByStage() throws {
        let root = try TempRoot()
        #expect(try CLI.run(args(["apply"], root) + ["--init-root"]).status == 0)
        let without = try roster(root, "without-erin") { $0.hasPrefix("  erin:") ? nil : $0 }
        #expect(try CLI.run(args(["apply"], root, roster: without)).status == 0)
        func offboard(_ extra: String...) throws -> ProcessOutput {
            try CLI.run(args(["offboard", "erin"] + extra, root, roster: without))
        }
        let early = try offboard("--stage", "revoke")
        #expect(early.status == 3 && early.stderr.contains("stage revoke needs stage cut first"), "\(early.stderr)")
        #expect(try offboard("--stage", "cut").status == 0)
        let revoke = try offboard("--stage", "revoke")
        #expect(revoke.status == 0, "\(revoke.stderr)")
        #expect(revoke.stdout.contains("kubectl -n workstation delete serviceaccount workspace-erin"))
        #expect(revoke.stdout.contains("delete secret workspace-erin workspace-erin-tls"))
        #expect(revoke.stdout.contains("kubectl delete rolebindings,clusterrolebindings --all-namespaces -l"))
        let archive = try offboard("--stage", "archive")
        #expect(archive.status == 0, "\(archive.stderr)")
        #expect(archive.stdout.contains("the claim workstation/workspace-erin-home is kept"))
        var render = try CLI.run(args(["render", "workspaces"], root, roster: without))
        #expect(render.stdout.components(separatedBy: "workstation/os-user: \"erin\"").count == 2)
        #expect(render.stdout.contains("workstation/stage: \"archived\"") && !render.stdout.contains("StatefulSet"))
        try validate(render.stdout, "an archived workspace")
        let wrong = try offboard("--stage", "archive", "--confirm", "erin2")
        #expect(wrong.status == 3, "\(wrong.stderr)")
        let release = try offboard("--stage", "archive", "--confirm", "erin")
        #expect(release.status == 0, "\(release.stderr)")
        #expect(release.stdout.contains("kubectl -n workstation delete persistentvolumeclaim workspace-erin-home"))
        render = try CLI.run(args(["render", "workspaces"], root, roster: without))
        #expect(!render.stdout.contains("workstation/os-user: \"erin\""))
        let again = try offboard("--stage", "archive", "--confirm", "erin")
        #expect(again.status == 0 && again.stdout.contains("nothing to do"), "\(again.stdout)\n\(again.stderr)")
        let journal = root.read("/var/lib/workstation/journal.jsonl") ?? ""
        for id in ["cut", "revoke", "archive", "archive:claim"] {
            #expect(journal.contains("\"change\":\"offboard-workspace:erin:\(id)\""), "\(id)")
        }
        #expect(try CLI.run(args(["plan", "--detailed-exitcode"], root, roster: without)).status == 0)
    }

    /// Moving alice from the host to Kubernetes: her route moves at once, her host side is offboarded through
    /// the host stages (keeping her gate membership), and --placement says which side when both wait.
    @Test func movingToKubernetesOffboardsTheHostSide() throws {
        let root = try TempRoot()
        #expect(try CLI.run(args(["apply"], root) + ["--init-root"]).status == 0)
        let uid = try #require(
            root.read("/etc/passwd")?.split(separator: "\n").first { $0.hasPrefix("alice:") }?.split(separator: ":")[2]
        )
        let moved = try roster(root, "moved") {
            $0.hasPrefix("  alice:")
                ? $0.replacingOccurrences(of: " }", with: ", placement: kubernetes, uid: \(uid) }") : $0
        }
        let plan = try CLI.run(args(["plan"], root, roster: moved))
        #expect(plan.stdout.contains("alice is placed on kubernetes now: offboard their host side pending"))
        #expect(plan.stdout.contains("run: workstation offboard alice --stage cut --placement host"))
        #expect(try CLI.run(args(["apply"], root, roster: moved)).status == 0)
        #expect(root.read("/etc/t3-serve/dispatch.json")?.contains("workspace-alice.workstation.svc") == true)
        let wrongSide = try CLI.run(
            args(["offboard", "alice", "--stage", "cut", "--placement", "kubernetes"], root, roster: moved)
        )
        #expect(wrongSide.status == 3 && wrongSide.stderr.contains("placed on kubernetes"), "\(wrongSide.stderr)")
        let cut = try CLI.run(args(["offboard", "alice", "--stage", "cut"], root, roster: moved))
        #expect(cut.status == 0, "\(cut.stdout)\n\(cut.stderr)")
        #expect(cut.stdout.contains("alice is placed on kubernetes now: their IdP gate membership stays"))
        #expect(
            root.read("/etc/shadow")?.split(separator: "\n").first { $0.hasPrefix("alice:") }?.contains(":1:") == true
        )
        // Then she leaves: both her host side and her workspace wait, and offboard asks which.
        let gone = try roster(root, "gone") { $0.hasPrefix("  alice:") ? nil : $0 }
        #expect(try CLI.run(args(["apply"], root, roster: gone)).status == 0)
        let ambiguous = try CLI.run(args(["offboard", "alice", "--stage", "revoke"], root, roster: gone))
        #expect(ambiguous.status == 3 && ambiguous.stderr.contains("--placement host or --placement kubernetes"))
        let ws = try CLI.run(
            args(["offboard", "alice", "--stage", "cut", "--placement", "kubernetes"], root, roster: gone)
        )
        #expect(ws.status == 0, "\(ws.stdout)\n\(ws.stderr)")
    }

    /// One cut of several people takes each on their side: bob-dev left the host, erin left her workspace, alice moved
    /// to Kubernetes (her host side is cut, her gate membership stays); every gate is checked for all of them first.
    @Test func oneCutTakesHostSidesAndWorkspacesTogether() throws {
        let root = try TempRoot()
        #expect(try CLI.run(args(["apply"], root) + ["--init-root"]).status == 0)
        let uid = try #require(
            root.read("/etc/passwd")?.split(separator: "\n").first { $0.hasPrefix("alice:") }?.split(separator: ":")[2]
        )
        let moved = try roster(root, "moved") {
            $0.hasPrefix("  bob-dev:") || $0.hasPrefix("  erin:")
                ? nil
                : $0.hasPrefix("  alice:")
                    ? $0.replacingOccurrences(of: " }", with: ", placement: kubernetes, uid: \(uid) }") : $0
        }
        let before = root.snapshot()
        // carol is in the roster on the host: the whole run is refused before anything changes, naming her.
        let refused = try CLI.run(
            args(["offboard", "bob-dev", "carol", "erin", "--stage", "cut"], root, roster: moved)
        )
        #expect(refused.status == 3 && refused.stderr.contains("'carol' is still in the roster"), "\(refused.stderr)")
        #expect(root.snapshot() == before)
        #expect(try CLI.run(args(["apply"], root, roster: moved)).status == 0)
        let cut = try CLI.run(
            args(["offboard", "bob-dev", "erin", "alice", "--stage", "cut", "--json"], root, roster: moved)
        )
        #expect(cut.status == 0, "\(cut.stdout)\n\(cut.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(cut.stdout.utf8)) as? [String: Any])
        #expect(json["users"] as? [String] == ["bob-dev", "erin", "alice"])
        let messages = json["messages"] as? [String] ?? []
        #expect(
            messages.contains { $0.contains("kubectl -n workstation scale statefulset workspace-erin --replicas=0") }
        )
        #expect(messages.contains { $0.contains("place alice on host again in the roster") }, "\(messages)")
        #expect(messages.contains { $0.contains("put bob-dev back in the roster") }, "\(messages)")
        let notes = (json["notes"] as? [String] ?? [])
        #expect(notes.contains("alice is placed on kubernetes now: their IdP gate membership stays"), "\(notes)")
        for user in ["alice", "bob-dev"] {
            #expect(
                root.read("/etc/shadow")?.split(separator: "\n").first { $0.hasPrefix("\(user):") }?.contains(":1:")
                    == true,
                "\(user) expired"
            )
        }
        let state = try #require(
            try JSONSerialization.jsonObject(with: Data((root.read("/var/lib/workstation/state.json") ?? "").utf8))
                as? [String: Any]
        )
        #expect(((state["workspaces"] as? [String: Any])?["erin"] as? [String: Any])?["cut"] != nil, "\(state)")
        let render = try CLI.run(args(["render", "workspaces"], root, roster: moved))
        #expect(render.stdout.contains("replicas: 0"), "\(render.stdout)")
        let again = try CLI.run(args(["offboard", "bob-dev", "erin", "alice", "--stage", "cut"], root, roster: moved))
        #expect(
            again.status == 0 && again.stdout.contains("stage cut of bob-dev is recorded already"),
            "\(again.stdout)"
        )
    }

    /// validate refuses mutual TLS to the workspaces when the dispatcher has no client side for it, at the line of
    /// workspaces.tls; cutover (an account here onto the new model) refuses a kubernetes-placed person.
    @Test func validateAndCutoverKnowThePlacement() throws {
        let root = try TempRoot()
        #expect(try CLI.run(args(["apply"], root) + ["--init-root"]).status == 0)
        let settings = try String(contentsOfFile: Self.settings, encoding: .utf8)
        var lines = settings.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let start = try #require(lines.firstIndex(of: "dispatch:"))
        lines.removeSubrange(start...(start + 4))
        try root.write("/cfg/workstation.yaml", lines.joined(separator: "\n"))
        let tlsLine = try #require(lines.firstIndex { $0.hasPrefix("  tls: {mode: mutual") }) + 1
        let r = try CLI.run(args(["validate"], root, settings: root.file("/cfg/workstation.yaml")))
        #expect(r.status == 1)
        #expect(
            r.stderr.contains(
                "\(root.file("/cfg/workstation.yaml")):\(tlsLine):8: error: workspaces.tls.mode is mutual, but dispatch.workspace_tls is not set"
            ),
            "\(r.stderr)"
        )
        #expect(try CLI.run(args(["validate"], root)).status == 0)
        let cutover = try CLI.run(args(["cutover", "erin"], root))
        #expect(
            cutover.status == 1
                && cutover.stderr.contains("'erin' is not a provisioned user in the roster placed on this host")
        )
    }
}

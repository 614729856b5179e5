import Foundation
import Testing

/// The scale-out example through the built binary (docs/scale-out.md): apply routes the kubernetes-placed person
/// and converges; `render workspaces` prints objects that Kubernetes' published schemas accept strictly, at the
/// pinned version, before and after a departure's cut; bad input is a located error that changes nothing.
@Suite(.serialized) struct WorkspaceEndToEndTests {
    static let roster = CLI.examples.appendingPathComponent("scale-out/roster.yaml").path
    static let settings = CLI.examples.appendingPathComponent("scale-out/workstation.yaml").path
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
        let r = try CLI.runTool(validator, ["--strict", "-k", Self.kubernetesVersion, root.file("/objects.yaml")])
        let lines = (r.stdout + r.stderr).split(separator: "\n")
        #expect(r.status == 0, "\(what): kubernetes-validate exited \(r.status)\n\(r.stdout)\(r.stderr)")
        #expect(!lines.contains { $0.hasPrefix("ERROR") || $0.hasPrefix("WARN") }, "\(what):\n\(r.stdout)\(r.stderr)")
        #expect(lines.filter { $0.hasPrefix("INFO") && $0.contains("passed") }.count >= 7, "\(what): \(r.stdout)")
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
}

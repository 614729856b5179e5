import Foundation
import Testing
import WorkstationTestSupport
import Yams

@testable import WorkstationCore

/// Policy checks on rendered Kubernetes objects, read back from the YAML text as a cluster would read it (Yams,
/// YAML 1.1 typing): every workload non-root with no privilege escalation, all capabilities dropped, a
/// RuntimeDefault seccomp profile, memory requests and limits on every container, no host namespaces or host paths;
/// every workspace selected by a NetworkPolicy that admits someone; the namespace enforcing Pod Security
/// `restricted`; every object labelled as workstation's; the claims protected from pruning; a quota covering the
/// pods. Returns one line per violation.
func workspacePolicyViolations(_ text: String) -> [String] {
    var docs: [[String: Any]] = []
    var out: [String] = []
    do {
        var seq = try Yams.load_all(yaml: text)
        while let d = seq.next() {
            guard let m = d as? [String: Any] else {
                out.append("a document is not a mapping")
                continue
            }
            docs.append(m)
        }
        if let e = seq.error { out.append("not YAML: \(e)") }
    } catch {
        return ["not YAML: \(error)"]
    }
    func map(_ v: Any?) -> [String: Any] { v as? [String: Any] ?? [:] }
    func list(_ v: Any?) -> [Any] { v as? [Any] ?? [] }
    var podsNeeded = 0
    var selectors: [(String, [String: String])] = []
    var policies: [[String: String]] = []
    for d in docs {
        let kind = d["kind"] as? String ?? "?"
        let meta = map(d["metadata"])
        let name = "\(kind)/\(meta["name"] as? String ?? "?")"
        if map(meta["labels"])["app.kubernetes.io/managed-by"] as? String != "workstation" {
            out.append("\(name): not labelled app.kubernetes.io/managed-by=workstation")
        }
        switch kind {
        case "Namespace":
            if map(meta["labels"])["pod-security.kubernetes.io/enforce"] as? String != "restricted" {
                out.append("\(name): Pod Security restricted is not enforced")
            }
        case "PersistentVolumeClaim":
            if !(map(meta["annotations"])["argocd.argoproj.io/sync-options"] as? String ?? "").contains("Prune=false") {
                out.append("\(name): a pruning pipeline may delete the home claim")
            }
        case "NetworkPolicy":
            let spec = map(d["spec"])
            let from = list(list(spec["ingress"]).first.map { map($0)["from"] })
            // A workspace admits named peers only (the dispatcher); the in-cluster dispatcher admits the edge from
            // anywhere on its port, where the signed token is the proof.
            let workspace = map(meta["labels"])["app.kubernetes.io/name"] as? String == "workspace"
            if !list(spec["policyTypes"]).contains(where: { $0 as? String == "Ingress" }) || (workspace && from.isEmpty)
            {
                out.append("\(name): does not restrict ingress to named peers")
            }
            policies.append(map(map(spec["podSelector"])["matchLabels"]).compactMapValues { $0 as? String })
        case "StatefulSet", "Deployment":
            let spec = map(d["spec"])
            podsNeeded += spec["replicas"] as? Int ?? 1
            if kind == "StatefulSet" {
                selectors.append(
                    (name, map(map(spec["selector"])["matchLabels"]).compactMapValues { $0 as? String })
                )
            }
            let pod = map(map(spec["template"])["spec"])
            for key in ["hostNetwork", "hostPID", "hostIPC"] where pod[key] as? Bool == true {
                out.append("\(name): \(key)")
            }
            let psc = map(pod["securityContext"])
            if psc["runAsNonRoot"] as? Bool != true { out.append("\(name): pod runAsNonRoot is not true") }
            if map(psc["seccompProfile"])["type"] as? String != "RuntimeDefault" {
                out.append("\(name): no RuntimeDefault seccomp profile")
            }
            for v in list(pod["volumes"]) where map(v)["hostPath"] != nil {
                out.append("\(name): host path volume \(map(v)["name"] ?? "?")")
            }
            for c in list(pod["initContainers"]) + list(pod["containers"]) {
                let c = map(c)
                let cname = "\(name) container \(c["name"] as? String ?? "?")"
                let sc = map(c["securityContext"])
                if sc["allowPrivilegeEscalation"] as? Bool != false {
                    out.append("\(cname): privilege escalation allowed")
                }
                if sc["privileged"] as? Bool == true { out.append("\(cname): privileged") }
                if !list(map(sc["capabilities"])["drop"]).contains(where: { $0 as? String == "ALL" }) {
                    out.append("\(cname): capabilities not dropped")
                }
                if (sc["runAsUser"] ?? psc["runAsUser"]) as? Int ?? 0 == 0 { out.append("\(cname): runs as root") }
                let res = map(c["resources"])
                if map(res["limits"])["memory"] == nil { out.append("\(cname): no memory limit") }
                if map(res["requests"])["memory"] == nil || map(res["requests"])["cpu"] == nil {
                    out.append("\(cname): no cpu and memory requests")
                }
            }
        default: break
        }
    }
    for (name, labels) in selectors where !policies.contains(where: { $0 == labels }) {
        out.append("\(name): no NetworkPolicy selects its pods")
    }
    let quota = docs.first { $0["kind"] as? String == "ResourceQuota" }
    if let q = quota {
        let pods = Int(map(map(q["spec"])["hard"])["pods"] as? String ?? "") ?? -1
        if pods < podsNeeded { out.append("ResourceQuota: pods \(pods) < \(podsNeeded) the workloads run") }
    } else {
        out.append("no ResourceQuota")
    }
    return out
}

@Suite struct WorkspaceManifestTests {
    static let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../Examples").standardized

    static func scaleOut(extraSettings: String = "") throws -> (Roster, Settings) {
        let base = try String(
            contentsOf: examples.appendingPathComponent("scale-out/workstation.yaml"),
            encoding: .utf8
        )
        let s = try Settings.parse(Data((base + extraSettings).utf8), file: "workstation.yaml")
        let r = try Roster.parse(
            try Data(contentsOf: examples.appendingPathComponent("scale-out/roster.yaml")),
            file: "roster.yaml",
            settings: s
        )
        return (r, s)
    }

    static func docs(_ text: String) throws -> [[String: Any]] {
        var out: [[String: Any]] = []
        var seq = try Yams.load_all(yaml: text)
        while let d = seq.next() { if let m = d as? [String: Any] { out.append(m) } }
        return out
    }

    static func find(_ docs: [[String: Any]], _ kind: String, _ name: String) -> [String: Any]? {
        docs.first { $0["kind"] as? String == kind && ($0["metadata"] as? [String: Any])?["name"] as? String == name }
    }

    /// The scale-out example: erin's five objects after the namespace's two, all within policy.
    @Test func theScaleOutExampleRendersWithinPolicy() throws {
        let (r, s) = try Self.scaleOut()
        let text = try WorkspaceManifests.render(roster: r, settings: s, state: nil, source: "roster.yaml")
        #expect(workspacePolicyViolations(text) == [])
        let docs = try Self.docs(text)
        #expect(
            docs.map { "\($0["kind"]!)/\(($0["metadata"] as! [String: Any])["name"]!)" } == [
                "Namespace/workstation", "ResourceQuota/workstation-workspaces", "ServiceAccount/workspace-erin",
                "PersistentVolumeClaim/workspace-erin-home", "Service/workspace-erin", "NetworkPolicy/workspace-erin",
                "StatefulSet/workspace-erin",
            ]
        )
        let sts = try #require(Self.find(docs, "StatefulSet", "workspace-erin"))
        let pod = ((sts["spec"] as! [String: Any])["template"] as! [String: Any])["spec"] as! [String: Any]
        let psc = pod["securityContext"] as! [String: Any]
        #expect(psc["runAsUser"] as? Int == 1100 && psc["fsGroup"] as? Int == 1100)
        let containers = (pod["containers"] as! [[String: Any]])
        #expect(containers.map { $0["name"] as! String } == ["agent", "tls", "config-sync"])
        let agent = containers[0]
        let res = agent["resources"] as! [String: Any]
        #expect((res["requests"] as! [String: Any])["memory"] as? String == "3Gi")
        #expect((res["limits"] as! [String: Any])["memory"] as? String == "4Gi")
        let mounts = (agent["volumeMounts"] as! [[String: Any]])
        #expect(mounts.contains { $0["name"] as? String == "config-base" && $0["readOnly"] as? Bool == true })
        #expect((agent["securityContext"] as! [String: Any])["readOnlyRootFilesystem"] as? Bool == true)
        let tlsArgs = containers[1]["args"] as! [String]
        #expect(tlsArgs.contains("--allow-cn=workstation-dispatch") && tlsArgs.contains("--target=127.0.0.1:3774"))
        // The quota is the sum of what the pod asks: the agent's budget and the sidecars'.
        let quota = try #require(Self.find(docs, "ResourceQuota", "workstation-workspaces"))
        let hard = (quota["spec"] as! [String: Any])["hard"] as! [String: String]
        #expect(hard["requests.memory"] == "3136Mi" && hard["limits.memory"] == "4288Mi")
        #expect(hard["pods"] == "1" && hard["requests.storage"] == "20Gi" && hard["persistentvolumeclaims"] == "1")
    }

    struct Variant: Sendable, CustomStringConvertible {
        var name: String
        var settings: String
        var check: @Sendable ([[String: Any]]) -> [String]
        var description: String { name }
    }

    static func podSpec(_ docs: [[String: Any]], _ name: String = "workspace-erin") -> [String: Any] {
        let sts = find(docs, "StatefulSet", name) ?? [:]
        return (((sts["spec"] as? [String: Any])?["template"] as? [String: Any])?["spec"] as? [String: Any]) ?? [:]
    }

    static let variants: [Variant] = [
        Variant(name: "tls none: the agent listens on the Service port", settings: "  tls: {mode: none}\n") { docs in
            let pod = WorkspaceManifestTests.podSpec(docs)
            let names = (pod["containers"] as? [[String: Any]] ?? []).map { $0["name"] as? String ?? "" }
            let env = ((pod["containers"] as? [[String: Any]])?.first?["env"] as? [[String: String]]) ?? []
            var out: [String] = []
            if names.contains("tls") { out.append("a TLS sidecar without TLS") }
            if !env.contains(["name": "T3CODE_HOST", "value": "0.0.0.0"]) { out.append("t3 not on the pod address") }
            return out
        },
        Variant(name: "a config base claim", settings: "  config_base: {claim: config-base}\n") { docs in
            let pod = WorkspaceManifestTests.podSpec(docs)
            let vol = (pod["volumes"] as? [[String: Any]] ?? []).first { $0["name"] as? String == "config-base" }
            let claim = vol?["persistentVolumeClaim"] as? [String: Any]
            return claim?["claimName"] as? String == "config-base" && claim?["readOnly"] as? Bool == true
                ? [] : ["the config base claim is not mounted read-only"]
        },
        Variant(
            name: "secrets from the Vault Agent Injector",
            settings:
                "  secrets: {from: vault-injector}\nvault:\n  url: https://vault.example.org\n  secret_files:\n    - {name: beads, path: beads, key: password, target: .config/beads/credential}\n"
        ) { docs in
            let sts = WorkspaceManifestTests.find(docs, "StatefulSet", "workspace-erin") ?? [:]
            let template = (sts["spec"] as? [String: Any])?["template"] as? [String: Any]
            let ann = ((template?["metadata"] as? [String: Any])?["annotations"] as? [String: String]) ?? [:]
            var out: [String] = []
            if ann["vault.hashicorp.com/agent-inject"] != "true" { out.append("no injection") }
            if ann["vault.hashicorp.com/role"] != "workspace-erin" {
                out.append("role \(ann["vault.hashicorp.com/role"] ?? "-")")
            }
            if ann["vault.hashicorp.com/agent-inject-secret-beads"] != "secret/data/beads" {
                out.append("no beads secret")
            }
            if WorkspaceManifestTests.podSpec(docs)["automountServiceAccountToken"] as? Bool != true {
                out.append("the injector needs the service account token")
            }
            return out
        },
        Variant(name: "secrets from a Secret the pipeline fills", settings: "  secrets: {from: secret}\n") { docs in
            let pod = WorkspaceManifestTests.podSpec(docs)
            let vol = (pod["volumes"] as? [[String: Any]] ?? []).first { $0["name"] as? String == "secrets" }
            let secret = vol?["secret"] as? [String: Any]
            return secret?["secretName"] as? String == "workspace-erin" && secret?["optional"] as? Bool == true
                ? [] : ["the Secret is not mounted"]
        },
        Variant(
            name: "the dispatcher in the cluster",
            settings: "  dispatcher: {in_cluster: true, image: registry.example.org/workstation:0.1.0}\n"
        ) { docs in
            var out: [String] = []
            for (kind, name) in [
                ("ConfigMap", "workstation-dispatch-routes"), ("Deployment", "workstation-dispatch"),
                ("Service", "workstation-dispatch"), ("NetworkPolicy", "workstation-dispatch"),
            ] where WorkspaceManifestTests.find(docs, kind, name) == nil {
                out.append("no \(kind)/\(name)")
            }
            let routes = WorkspaceManifestTests.find(docs, "ConfigMap", "workstation-dispatch-routes")
            let json = (routes?["data"] as? [String: String])?["dispatch.json"] ?? ""
            if let map = try? DispatchMap.decode(Data(json.utf8)) {
                if map.users.keys.sorted() != ["erin"] || map.users["erin"]?.host == nil {
                    out.append("routes \(map.users.keys.sorted())")
                }
            } else {
                out.append("the routes ConfigMap holds no dispatch.json")
            }
            let policy = WorkspaceManifestTests.find(docs, "NetworkPolicy", "workspace-erin")
            let from = ((policy?["spec"] as? [String: Any])?["ingress"] as? [[String: Any]])?.first?["from"] as? [Any]
            if from?.count != 1 {
                out.append("the workspace admits \(from?.count ?? 0) peers, not the dispatcher's pods")
            }
            return out
        },
    ]

    /// Settings of a variant: the base `workspaces:` keys (image, config_base, dispatcher) unless the variant
    /// writes the same key, then the variant's; lines of the variant not indented go at the top level.
    static func variantSettings(_ v: String) -> String {
        let lines = v.split(separator: "\n").map(String.init)
        let own = lines.filter { $0.hasPrefix("  ") && !$0.hasPrefix("    ") }.compactMap {
            $0.trimmingCharacters(in: .whitespaces).split(separator: ":").first.map(String.init)
        }
        let base = [
            ("image", "  image: registry.example.org/workstation/agent:2026.12"),
            ("config_base", "  config_base: {git_sync: {repo: https://git.example.org/carol/config-base.git}}"),
            ("dispatcher", "  dispatcher: {sources: [192.0.2.10/32]}"),
        ].filter { !own.contains($0.0) }.map(\.1)
        let nested = lines.prefix { $0.hasPrefix("  ") }
        let top = lines.drop { $0.hasPrefix("  ") }
        return (["workspaces:"] + base + nested + top).joined(separator: "\n") + "\n"
    }

    @Test(arguments: variants) func everyVariantRendersWithinPolicy(_ v: Variant) throws {
        let s = try Settings.parse(Data(Self.variantSettings(v.settings).utf8), file: "workstation.yaml")
        let r = try Roster.parse(
            try Data(contentsOf: Self.examples.appendingPathComponent("scale-out/roster.yaml")),
            file: "roster.yaml",
            settings: s
        )
        let rendered = try WorkspaceManifests.render(roster: r, settings: s, state: nil, source: "roster.yaml")
        #expect(workspacePolicyViolations(rendered) == [], "\(v.name)")
        #expect(v.check(try Self.docs(rendered)) == [], "\(v.name)")
    }

    /// People who left keep what their stage leaves; a released claim leaves nothing.
    @Test(
        arguments: [
            ("cut", ["ServiceAccount", "PersistentVolumeClaim", "Service", "NetworkPolicy", "StatefulSet"], 0),
            ("revoked", ["PersistentVolumeClaim", "Service", "NetworkPolicy", "StatefulSet"], 0),
            ("archived", ["PersistentVolumeClaim"], nil),
            ("released", [], nil),
        ] as [(String, [String], Int?)]
    )
    func aDepartedWorkspaceRendersWhatItsStageLeaves(_ stage: String, _ kinds: [String], _ replicas: Int?) throws {
        let (_, s) = try Self.scaleOut()
        let r = try Roster.parse(Data("users: {}\n".utf8), file: "roster.yaml", settings: s)
        var rec = WorkspaceRecord(uid: 1100, namespace: "workstation", tier: "power-user", since: 1)
        rec.cut = 2
        if stage != "cut" { rec.revoke = 3 }
        if stage == "archived" || stage == "released" { rec.archive = 4 }
        if stage == "released" { rec.claimReleased = 5 }
        var state = WorkstationState()
        state.workspaces["erin"] = rec
        let text = try WorkspaceManifests.render(roster: r, settings: s, state: state, source: "roster.yaml")
        #expect(workspacePolicyViolations(text) == [], "\(stage)")
        let docs = try Self.docs(text).filter {
            (($0["metadata"] as? [String: Any])?["labels"] as? [String: String])?["workstation/os-user"] == "erin"
        }
        #expect(docs.map { $0["kind"] as? String ?? "" } == kinds, "\(stage)")
        for d in docs {
            let labels = (d["metadata"] as? [String: Any])?["labels"] as? [String: String]
            #expect(labels?["workstation/stage"] == (stage == "released" ? nil : stage), "\(stage)")
        }
        let sts = Self.find(docs, "StatefulSet", "workspace-erin")
        #expect((sts?["spec"] as? [String: Any])?["replicas"] as? Int == replicas, "\(stage)")
        if stage == "revoked" { #expect(Self.podSpec(docs)["serviceAccountName"] == nil) }
    }

    /// The policy check finds what it is there to find (it is not a test that cannot fail).
    @Test(arguments: [
        ("runAsNonRoot: true", "runAsNonRoot: false", "pod runAsNonRoot is not true"),
        ("allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true", "privilege escalation allowed"),
        ("- name: \"tmp\"\n        emptyDir: {}", "- name: \"tmp\"\n        hostPath: {path: /}", "host path volume"),
        ("          limits:\n            memory: \"4Gi\"", "          limits: {}", "no memory limit"),
        ("kind: \"NetworkPolicy\"", "kind: \"NetworkPolicyX\"", "no NetworkPolicy selects its pods"),
        ("pod-security.kubernetes.io/enforce: \"restricted\"", "x: \"y\"", "Pod Security restricted is not enforced"),
    ])
    func thePolicyCheckCatchesEachViolation(_ from: String, _ to: String, _ expected: String) throws {
        let (r, s) = try Self.scaleOut()
        let text = try WorkspaceManifests.render(roster: r, settings: s, state: nil, source: "roster.yaml")
        #expect(text.contains(from), "the rendered text no longer contains \(from)")
        let broken = text.replacingOccurrences(of: from, with: to)
        #expect(workspacePolicyViolations(broken).contains { $0.contains(expected) }, "\(expected)")
    }

    /// Every line of the host-only example is in the scale-out example, in order: the two never drift apart.
    @Test func theScaleOutExampleExtendsTheHostExample() throws {
        for file in ["roster.yaml", "workstation.yaml"] {
            let main = try String(contentsOf: Self.examples.appendingPathComponent(file), encoding: .utf8)
                .split(separator: "\n").dropFirst()
            var scale = try String(
                contentsOf: Self.examples.appendingPathComponent("scale-out/\(file)"),
                encoding: .utf8
            )
            .split(separator: "\n").dropFirst()[...]
            for line in main {
                guard let i = scale.firstIndex(of: line) else {
                    Issue.record("Examples/scale-out/\(file) lacks, in order: \(line)")
                    break
                }
                scale = scale[scale.index(after: i)...]
            }
        }
    }
}

import Foundation

/// One person's objects, and the in-cluster dispatcher's.
extension WorkspaceManifests {
    /// Home claim `workspace-<os_user>-home`.
    public static func claimName(_ osUser: String) -> String { "\(workspaceObjectName(osUser) ?? osUser)-home" }
    /// TLS Secret `workspace-<os_user>-tls` (`tls.crt`, `tls.key`, `ca.crt`), filled by the operator's pipeline.
    public static func tlsSecretName(_ osUser: String) -> String { "\(workspaceObjectName(osUser) ?? osUser)-tls" }
    /// The Secret `workspace-<os_user>` of `secrets.from: secret`, filled by the operator's pipeline.
    public static func secretName(_ osUser: String) -> String { workspaceObjectName(osUser) ?? osUser }

    /// The objects of one workspace at its stage: ServiceAccount (until revoke), claim, Service, NetworkPolicy and
    /// StatefulSet (until archive).
    static func person(_ ws: Workspace, settings: Settings) -> [ManifestValue] {
        var out: [ManifestValue] = []
        if ws.stage == .active || ws.stage == .cut { out.append(serviceAccount(ws)) }
        out.append(claim(ws, settings: settings))
        guard ws.stage != .archived else { return out }
        out.append(service(ws, settings: settings))
        out.append(networkPolicy(ws, settings: settings))
        out.append(statefulSet(ws, settings: settings))
        return out
    }

    static func serviceAccount(_ ws: Workspace) -> ManifestValue {
        object(
            "v1",
            "ServiceAccount",
            meta(ws.name, ws.namespace, labels: labels(ws)),
            [("automountServiceAccountToken", false)]
        )
    }

    /// The home claim. Pipelines that prune must never delete it: Argo CD's `Prune=false,Delete=false` and Helm's
    /// `keep` say so; its deletion is printed by `offboard --stage archive --confirm` only.
    static func claim(_ ws: Workspace, settings: Settings) -> ManifestValue {
        let w = settings.workspaces!
        var spec: [(String, ManifestValue)] = [
            ("accessModes", .list(["ReadWriteOnce"])),
            ("resources", .map([("requests", .map([("storage", .string(w.homeSize[ws.tier] ?? "10Gi"))]))])),
        ]
        if let c = w.storageClass { spec.append(("storageClassName", .string(c))) }
        return object(
            "v1",
            "PersistentVolumeClaim",
            meta(
                claimName(ws.osUser),
                ws.namespace,
                labels: labels(ws),
                annotations: [
                    ("argocd.argoproj.io/sync-options", "Prune=false,Delete=false"),
                    ("helm.sh/resource-policy", "keep"),
                ]
            ),
            [("spec", .map(spec))]
        )
    }

    static func service(_ ws: Workspace, settings: Settings) -> ManifestValue {
        let w = settings.workspaces!
        return object(
            "v1",
            "Service",
            meta(ws.name, ws.namespace, labels: labels(ws)),
            [
                (
                    "spec",
                    .map([
                        ("type", "ClusterIP"),
                        ("selector", .map(selector(ws))),
                        (
                            "ports",
                            .list([
                                .map([
                                    ("name", w.tls.mode == .mutual ? "https" : "http"), ("protocol", "TCP"),
                                    ("port", .int(w.port)), ("targetPort", "workspace"),
                                ])
                            ])
                        ),
                    ])
                )
            ]
        )
    }

    /// Admits only the dispatcher: its pods (in the cluster) or its addresses (`dispatcher.sources`), on the
    /// Service port. Egress is left open (the agent needs the network).
    static func networkPolicy(_ ws: Workspace, settings: Settings) -> ManifestValue {
        let w = settings.workspaces!
        var from: [ManifestValue] = []
        if w.dispatcher.inCluster {
            let dispatcherPods: [(String, ManifestValue)] = [(nameLabel, .string(dispatcherName))]
            from.append(.map([("podSelector", .map([("matchLabels", .map(dispatcherPods))]))]))
        }
        for cidr in w.dispatcher.sources { from.append(.map([("ipBlock", .map([("cidr", .string(cidr))]))])) }
        return object(
            "networking.k8s.io/v1",
            "NetworkPolicy",
            meta(ws.name, ws.namespace, labels: labels(ws)),
            [
                (
                    "spec",
                    .map([
                        ("podSelector", .map([("matchLabels", .map(selector(ws)))])),
                        ("policyTypes", .list(["Ingress"])),
                        (
                            "ingress",
                            .list([
                                .map([
                                    ("from", .list(from)),
                                    ("ports", .list([.map([("protocol", "TCP"), ("port", .int(w.port))])])),
                                ])
                            ])
                        ),
                    ])
                )
            ]
        )
    }

    /// `vault.secret_files` that apply to the person (by tier and flags), for the injector; none after revoke.
    static func vaultFiles(_ ws: Workspace, _ settings: Settings) -> [SecretFileSpec] {
        guard settings.workspaces?.secrets == .vaultInjector, ws.stage == .active || ws.stage == .cut else {
            return []
        }
        return (settings.vault?.secretFiles ?? []).filter { f in
            ws.entry.map { f.applies(to: $0) } ?? (f.tiers.isEmpty || f.tiers.contains(ws.tier))
        }
    }

    /// The Vault Agent Injector annotations: one `agent-inject-secret-<name>` and template per file, the agent's
    /// resources fixed (the quota counts them), files only in the agent container, readable by the person alone.
    static func vaultAnnotations(_ ws: Workspace, _ settings: Settings) -> [(String, ManifestValue)] {
        let files = vaultFiles(ws, settings)
        guard let w = settings.workspaces, !files.isEmpty else { return [] }
        let v = "vault.hashicorp.com/"
        var out: [(String, ManifestValue)] = [
            (v + "agent-inject", "true"),
            (v + "role", .string(w.secretsRole.replacingOccurrences(of: "{os_user}", with: ws.osUser))),
            (v + "agent-inject-containers", "agent"),
            (v + "agent-run-as-same-user", "true"),
            (v + "agent-requests-cpu", .string("\(vaultSidecar.cpuMillis)m")),
            (v + "agent-requests-mem", .string(kubernetesQuantity(vaultSidecar.requestBytes))),
            (v + "agent-limits-mem", .string(kubernetesQuantity(vaultSidecar.limitBytes))),
        ]
        for f in files {
            let path = "\(f.mount)/data/\(f.path.replacingOccurrences(of: "{os_user}", with: ws.osUser))"
            out.append((v + "agent-inject-secret-\(f.name)", .string(path)))
            out.append(
                (
                    v + "agent-inject-template-\(f.name)",
                    .string(
                        "{{- with secret \(KubernetesManifests.quote(path)) -}}{{ index .Data.data \(KubernetesManifests.quote(f.key)) }}{{- end -}}"
                    )
                )
            )
            out.append((v + "agent-inject-perms-\(f.name)", "0400"))
        }
        return out
    }

    static let restrictedContainer: [(String, ManifestValue)] = [
        ("allowPrivilegeEscalation", false),
        ("capabilities", .map([("drop", .list(["ALL"]))])),
    ]

    /// A sidecar's security context: its own non-root uid (never the person's), read-only root.
    static func sidecarSecurity(uid: Int) -> ManifestValue {
        .map(
            restrictedContainer + [
                ("readOnlyRootFilesystem", true), ("runAsNonRoot", true), ("runAsUser", .int(uid)),
                ("runAsGroup", .int(uid)),
            ]
        )
    }

    static func env(_ pairs: [(String, String)]) -> ManifestValue {
        .list(pairs.map { .map([("name", .string($0.0)), ("value", .string($0.1))]) })
    }

    static func mount(_ name: String, _ path: String, readOnly: Bool = false) -> ManifestValue {
        var m: [(String, ManifestValue)] = [("name", .string(name)), ("mountPath", .string(path))]
        if readOnly { m.append(("readOnly", true)) }
        return .map(m)
    }

    /// The StatefulSet: one replica (none from the cut stage on) of the agent as the person's uid, with the home
    /// claim, the config base read-only, a TLS sidecar and a git-sync sidecar where configured.
    static func statefulSet(_ ws: Workspace, settings: Settings) -> ManifestValue {
        let w = settings.workspaces!
        let home = joinPath(settings.accounts.homeRoot, ws.osUser)
        let b = budget(ws, settings)
        let tls = w.tls.mode == .mutual
        let instancePort = tls ? w.port + 1 : w.port
        let base = settings.configBase
        let baseParent = (base as NSString).deletingLastPathComponent
        let links = settings.inheritedItems.map { item in
            "  [ -e \"$HOME/.claude/\(item)\" ] || [ -L \"$HOME/.claude/\(item)\" ] || ln -s \(KubernetesManifests.quote(joinPath(base, item))) \"$HOME/.claude/\(item)\"\n"
        }.joined()
        let seedScript = "set -eu\numask 077\nmkdir -p \"$HOME/.claude\"\n" + (links.isEmpty ? "" : links)
        var agentMounts: [ManifestValue] = [mount("home", home), mount("tmp", "/tmp")]
        switch w.configBase {
        case .gitSync: agentMounts.append(mount("config-base", baseParent, readOnly: true))
        case .claim: agentMounts.append(mount("config-base", base, readOnly: true))
        }
        if w.secrets == .secret && (ws.stage == .active || ws.stage == .cut) {
            agentMounts.append(mount("secrets", "/run/workstation/secrets", readOnly: true))
        }
        var agent: [(String, ManifestValue)] = [
            ("name", "agent"),
            ("image", .string(w.image)),
            (
                "env",
                env([
                    ("HOME", home), ("USER", ws.osUser), ("T3CODE_HOST", tls ? "127.0.0.1" : "0.0.0.0"),
                    ("T3CODE_PORT", String(instancePort)),
                ])
            ),
        ]
        if !tls { agent.append(("ports", .list([.map([("name", "workspace"), ("containerPort", .int(w.port))])]))) }
        agent += [
            (
                "resources",
                .map([
                    (
                        "requests",
                        .map([
                            ("cpu", .string(w.cpuRequest[ws.tier] ?? "250m")),
                            ("memory", .string(kubernetesQuantity(b.high))),
                        ])
                    ),
                    ("limits", .map([("memory", .string(kubernetesQuantity(b.max)))])),
                ])
            ),
            (
                "securityContext",
                .map(
                    restrictedContainer + [
                        ("readOnlyRootFilesystem", .bool(w.readOnlyRoot)), ("runAsNonRoot", true),
                        ("runAsUser", .int(ws.uid)), ("runAsGroup", .int(ws.uid)),
                    ]
                )
            ),
            ("volumeMounts", .list(agentMounts)),
        ]
        if !tls { agent.append(("readinessProbe", .map([("tcpSocket", .map([("port", "workspace")]))]))) }
        var containers: [ManifestValue] = [.map(agent)]
        var volumes: [ManifestValue] = [
            .map([("name", "home"), ("persistentVolumeClaim", .map([("claimName", .string(claimName(ws.osUser)))]))]),
            .map([("name", "tmp"), ("emptyDir", .map([]))]),
        ]
        if tls {
            containers.append(
                .map([
                    ("name", "tls"),
                    ("image", .string(w.tls.image)),
                    (
                        "args",
                        .list([
                            "server", .string("--listen=0.0.0.0:\(w.port)"),
                            .string("--target=127.0.0.1:\(instancePort)"), "--cert=/tls/tls.crt", "--key=/tls/tls.key",
                            "--cacert=/tls/ca.crt", .string("--allow-cn=\(w.tls.clientName)"),
                        ])
                    ),
                    ("ports", .list([.map([("name", "workspace"), ("containerPort", .int(w.port))])])),
                    ("resources", tlsSidecar.resources),
                    ("securityContext", sidecarSecurity(uid: 65532)),
                    ("volumeMounts", .list([mount("tls", "/tls", readOnly: true)])),
                    ("readinessProbe", .map([("tcpSocket", .map([("port", "workspace")]))])),
                ])
            )
            volumes.append(
                .map([
                    ("name", "tls"),
                    ("secret", .map([("secretName", .string(tlsSecretName(ws.osUser))), ("defaultMode", 288)])),
                ])
            )
        }
        switch w.configBase {
        case .gitSync(let repo, let ref, let period, let image):
            containers.append(
                .map([
                    ("name", "config-sync"),
                    ("image", .string(image)),
                    (
                        "args",
                        .list([
                            .string("--repo=\(repo)"), .string("--ref=\(ref)"), "--root=/git",
                            .string("--link=\((base as NSString).lastPathComponent)"), .string("--period=\(period)s"),
                            "--depth=1",
                        ])
                    ),
                    ("resources", syncSidecar.resources),
                    ("securityContext", sidecarSecurity(uid: 65533)),
                    ("volumeMounts", .list([mount("config-base", "/git"), mount("sync-tmp", "/tmp")])),
                ])
            )
            volumes.append(.map([("name", "config-base"), ("emptyDir", .map([]))]))
            volumes.append(.map([("name", "sync-tmp"), ("emptyDir", .map([]))]))
        case .claim(let name):
            volumes.append(
                .map([
                    ("name", "config-base"),
                    ("persistentVolumeClaim", .map([("claimName", .string(name)), ("readOnly", true)])),
                ])
            )
        }
        if w.secrets == .secret && (ws.stage == .active || ws.stage == .cut) {
            volumes.append(
                .map([
                    ("name", "secrets"),
                    (
                        "secret",
                        .map([("secretName", .string(secretName(ws.osUser))), ("optional", true), ("defaultMode", 256)])
                    ),
                ])
            )
        }
        let vault = vaultAnnotations(ws, settings)
        var podSpec: [(String, ManifestValue)] = []
        if ws.stage == .active || ws.stage == .cut { podSpec.append(("serviceAccountName", .string(ws.name))) }
        podSpec += [
            ("automountServiceAccountToken", .bool(!vault.isEmpty)),
            ("enableServiceLinks", false),
            ("shareProcessNamespace", false),
            (
                "securityContext",
                .map([
                    ("runAsNonRoot", true), ("runAsUser", .int(ws.uid)), ("runAsGroup", .int(ws.uid)),
                    ("fsGroup", .int(ws.uid)), ("fsGroupChangePolicy", "OnRootMismatch"),
                    ("seccompProfile", .map([("type", "RuntimeDefault")])),
                ])
            ),
            (
                "initContainers",
                .list([
                    .map([
                        ("name", "seed-home"),
                        ("image", .string(w.image)),
                        ("command", .list(["/bin/sh", "-c", .string(seedScript)])),
                        ("env", env([("HOME", home)])),
                        ("resources", seedSidecar.resources),
                        (
                            "securityContext",
                            .map(
                                restrictedContainer + [
                                    ("readOnlyRootFilesystem", true), ("runAsNonRoot", true),
                                    ("runAsUser", .int(ws.uid)),
                                ]
                            )
                        ),
                        ("volumeMounts", .list([mount("home", home)])),
                    ])
                ])
            ),
            ("containers", .list(containers)),
            ("volumes", .list(volumes)),
        ]
        var templateMeta: [(String, ManifestValue)] = [("labels", .map(labels(ws)))]
        if !vault.isEmpty { templateMeta.append(("annotations", .map(vault))) }
        return object(
            "apps/v1",
            "StatefulSet",
            meta(ws.name, ws.namespace, labels: labels(ws)),
            [
                (
                    "spec",
                    .map([
                        ("replicas", .int(ws.runs ? 1 : 0)),
                        ("serviceName", .string(ws.name)),
                        ("selector", .map([("matchLabels", .map(selector(ws)))])),
                        ("template", .map([("metadata", .map(templateMeta)), ("spec", .map(podSpec))])),
                    ])
                )
            ]
        )
    }
}

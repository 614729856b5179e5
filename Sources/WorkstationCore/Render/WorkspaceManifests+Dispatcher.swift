import Foundation

/// The dispatcher's objects when it runs in the cluster (`workspaces.dispatcher.in_cluster: true`). It then routes
/// kubernetes-placed people only: host-placed people's instances listen on their host's loopback, which no pod
/// reaches; the host's own dispatcher serves both placements.
extension WorkspaceManifests {
    public static let dispatcherName = "workstation-dispatch"
    /// The ConfigMap holding dispatch.json (rendered here).
    public static let routesConfigMap = "workstation-dispatch-routes"
    /// The ConfigMap holding the dispatcher's workstation.yaml (the operator's; docs/scale-out.md has one).
    public static let settingsConfigMap = "workstation-dispatch-settings"
    /// The Secret with the dispatcher's client certificate for the workspaces' TLS (`tls.crt`, `tls.key`,
    /// `ca.crt`), filled by the operator's pipeline.
    public static let dispatcherTLSSecret = "workstation-dispatch-tls"
    /// The ConfigMap with the identity provider's JWKS (`jwks.json`), filled by the operator's pipeline.
    public static let jwksConfigMap = "workstation-dispatch-jwks"

    /// dispatch.json of the kubernetes-placed roster people (the in-cluster dispatcher's routes).
    public static func clusterRoutes(roster: Roster, settings: Settings) -> Data {
        guard let w = settings.workspaces else { return DispatchMap(users: [:]).encoded() }
        let ids = roster.kubernetesPlaced(settings).map { e in
            RoutedIdentity(
                authentikUser: e.authentikUser,
                osUser: e.osUser,
                ports: [:],
                adopted: false,
                workspace: WorkspaceRoute(
                    host: w.serviceHost(for: e.osUser),
                    port: w.port,
                    tlsName: w.tls.mode == .mutual ? w.tlsName(for: e.osUser) : nil
                )
            )
        }
        return DerivedFileRenderer.dispatch(ids, primary: settings.primaryUnit.template)
    }

    static func dispatcher(roster: Roster, settings: Settings) -> [ManifestValue] {
        let w = settings.workspaces!
        let d = w.dispatcher
        let labels: [(String, ManifestValue)] = [(nameLabel, .string(dispatcherName))]
        let routes = object(
            "v1",
            "ConfigMap",
            meta(routesConfigMap, w.namespace, labels: labels),
            [
                (
                    "data",
                    .map([
                        (
                            "dispatch.json",
                            .string(String(decoding: clusterRoutes(roster: roster, settings: settings), as: UTF8.self))
                        )
                    ])
                )
            ]
        )
        func configVolume(_ name: String, _ configMap: String) -> ManifestValue {
            .map([("name", .string(name)), ("configMap", .map([("name", .string(configMap))]))])
        }
        var volumes: [ManifestValue] = [
            configVolume("settings", settingsConfigMap), configVolume("routes", routesConfigMap),
            configVolume("jwks", jwksConfigMap), .map([("name", "tmp"), ("emptyDir", .map([]))]),
        ]
        var mounts: [ManifestValue] = [
            mount("settings", "/etc/workstation", readOnly: true), mount("routes", "/etc/t3-serve", readOnly: true),
            mount("jwks", "/var/lib/workstation/jwks", readOnly: true), mount("tmp", "/tmp"),
        ]
        if w.tls.mode == .mutual {
            volumes.append(
                .map([
                    ("name", "tls"),
                    ("secret", .map([("secretName", .string(dispatcherTLSSecret)), ("defaultMode", 288)])),
                ])
            )
            mounts.append(mount("tls", "/var/lib/workstation/tls", readOnly: true))
        }
        let container: ManifestValue = .map([
            ("name", "dispatch"),
            ("image", .string(d.image ?? "")),
            ("args", .list(["dispatch", "--settings", "/etc/workstation/workstation.yaml"])),
            ("ports", .list([.map([("name", "http"), ("containerPort", .int(d.port))])])),
            ("resources", dispatcherContainer.resources),
            ("securityContext", sidecarSecurity(uid: 65532)),
            ("volumeMounts", .list(mounts)),
            ("readinessProbe", .map([("tcpSocket", .map([("port", "http")]))])),
        ])
        let deployment = object(
            "apps/v1",
            "Deployment",
            meta(dispatcherName, w.namespace, labels: labels),
            [
                (
                    "spec",
                    .map([
                        ("replicas", .int(d.replicas)),
                        // No surge: the ResourceQuota counts exactly `replicas` dispatcher pods.
                        (
                            "strategy",
                            .map([
                                ("type", "RollingUpdate"),
                                ("rollingUpdate", .map([("maxSurge", 0), ("maxUnavailable", 1)])),
                            ])
                        ),
                        ("selector", .map([("matchLabels", .map(labels))])),
                        (
                            "template",
                            .map([
                                ("metadata", .map([("labels", .map(labels))])),
                                (
                                    "spec",
                                    .map([
                                        ("automountServiceAccountToken", false),
                                        ("enableServiceLinks", false),
                                        (
                                            "securityContext",
                                            .map([
                                                ("runAsNonRoot", true), ("runAsUser", 65532), ("runAsGroup", 65532),
                                                ("seccompProfile", .map([("type", "RuntimeDefault")])),
                                            ])
                                        ),
                                        ("containers", .list([container])),
                                        ("volumes", .list(volumes)),
                                    ])
                                ),
                            ])
                        ),
                    ])
                )
            ]
        )
        let service = object(
            "v1",
            "Service",
            meta(dispatcherName, w.namespace, labels: labels),
            [
                (
                    "spec",
                    .map([
                        ("type", "ClusterIP"),
                        ("selector", .map(labels)),
                        (
                            "ports",
                            .list([
                                .map([
                                    ("name", "http"), ("protocol", "TCP"), ("port", .int(d.port)),
                                    ("targetPort", "http"),
                                ])
                            ])
                        ),
                    ])
                )
            ]
        )
        // The edge reaches the dispatcher from anywhere in the cluster; the signed token is the proof (identity: jwt).
        let policy = object(
            "networking.k8s.io/v1",
            "NetworkPolicy",
            meta(dispatcherName, w.namespace, labels: labels),
            [
                (
                    "spec",
                    .map([
                        ("podSelector", .map([("matchLabels", .map(labels))])),
                        ("policyTypes", .list(["Ingress"])),
                        (
                            "ingress",
                            .list([.map([("ports", .list([.map([("protocol", "TCP"), ("port", .int(d.port))])]))])])
                        ),
                    ])
                )
            ]
        )
        return [routes, deployment, service, policy]
    }
}

import Foundation

/// One RBAC rule (`rbac.authorization.k8s.io/v1` PolicyRule).
public struct PolicyRule: Sendable, Hashable {
    public var apiGroups: [String]
    public var resources: [String]
    public var verbs: [String]
}

/// Renders what the cluster side of a workstation needs: RBAC manifests, the `k8s_users` entries, the per-user
/// OIDC kubeconfig and the Authentik edge-policy branch. Pure.
///
/// Sources: Kubernetes RBAC (`rbac.authorization.k8s.io/v1`, "Using RBAC Authorization"), kubeconfig exec
/// credentials (`client.authentication.k8s.io/v1`), kubelogin's `oidc-login get-token` (REFERENCE.md).
public enum KubernetesManifests {
    static let readVerbs = ["get", "list", "watch"]

    /// The `oidc-power-user-readonly` rules: get/list/watch on an enumerated set of resources. Never `secrets`,
    /// never `*`, never `pods/exec` (or attach, portforward, proxy), since RBAC has no deny and `list` on secrets
    /// returns their values.
    public static let readonlyRules: [PolicyRule] = [
        PolicyRule(
            apiGroups: [""],
            resources: [
                "pods", "pods/log", "pods/status", "services", "endpoints", "configmaps", "persistentvolumeclaims",
                "persistentvolumes", "nodes", "namespaces", "events", "replicationcontrollers", "serviceaccounts",
                "resourcequotas", "limitranges",
            ],
            verbs: readVerbs
        ),
        PolicyRule(
            apiGroups: ["apps"],
            resources: ["deployments", "replicasets", "statefulsets", "daemonsets"],
            verbs: readVerbs
        ),
        PolicyRule(apiGroups: ["batch"], resources: ["jobs", "cronjobs"], verbs: readVerbs),
        PolicyRule(apiGroups: ["autoscaling"], resources: ["horizontalpodautoscalers"], verbs: readVerbs),
        PolicyRule(apiGroups: ["policy"], resources: ["poddisruptionbudgets"], verbs: readVerbs),
        PolicyRule(
            apiGroups: ["networking.k8s.io"],
            resources: ["ingresses", "ingressclasses", "networkpolicies"],
            verbs: readVerbs
        ),
        PolicyRule(apiGroups: ["discovery.k8s.io"], resources: ["endpointslices"], verbs: readVerbs),
        PolicyRule(apiGroups: ["events.k8s.io"], resources: ["events"], verbs: readVerbs),
        PolicyRule(
            apiGroups: ["storage.k8s.io"],
            resources: ["storageclasses", "volumeattachments", "csidrivers", "csinodes"],
            verbs: readVerbs
        ),
        PolicyRule(apiGroups: ["apiextensions.k8s.io"], resources: ["customresourcedefinitions"], verbs: readVerbs),
        PolicyRule(apiGroups: ["metrics.k8s.io"], resources: ["pods", "nodes"], verbs: readVerbs),
    ]

    /// Namespace-owners may list namespaces and nodes cluster-wide, nothing more.
    public static let namespaceListRules: [PolicyRule] = [
        PolicyRule(apiGroups: [""], resources: ["namespaces", "nodes"], verbs: readVerbs)
    ]

    /// A JSON string literal, which is also a valid YAML double-quoted scalar.
    public static func quote(_ s: String) -> String {
        let data = try? JSONSerialization.data(withJSONObject: [s], options: [.withoutEscapingSlashes])
        let text = data.map { String(decoding: $0, as: UTF8.self) } ?? "[\"\"]"
        return String(text.dropFirst().dropLast())
    }

    /// An object-name-safe form of an os_user (`_` is not allowed in RBAC object names).
    static func objectName(_ s: String) -> String { s.replacingOccurrences(of: "_", with: "-") }

    /// Why `render rbac` cannot bind a roster user (no email), or nil.
    static func emailProblem(_ e: RosterEntry) -> String? {
        e.email == nil
            ? "\(e.osUser) (\(e.tier.rawValue)) has no email in the roster; the binding subject is the OIDC email: add email: \(e.osUser)@example.org"
            : nil
    }

    /// The label every RBAC object `render rbac` makes carries, and the one naming its person (`<os_user>` with `_`
    /// as `-`): together the selector of one person's objects (`revocationSelector`).
    public static let managedByLabel = "app.kubernetes.io/managed-by"
    public static let personLabel = "workstation/os-user"

    /// `app.kubernetes.io/managed-by=workstation,workstation/os-user=alice`: selects exactly the bindings
    /// `render rbac` made for `osUser` (Kubernetes "Labels and Selectors", equality-based).
    public static func revocationSelector(osUser: String) -> String {
        "\(managedByLabel)=workstation,\(personLabel)=\(objectName(osUser))"
    }

    /// The command that deletes every binding `render rbac` made for `osUser`, in every namespace.
    public static func revocationCommand(osUser: String) -> String {
        "kubectl delete rolebindings,clusterrolebindings --all-namespaces -l \(revocationSelector(osUser: osUser))"
    }

    /// Multi-document YAML: the read-only ClusterRole and one ClusterRoleBinding per power-user; for each
    /// namespace-owner a RoleBinding to the built-in `admin` ClusterRole per owned namespace and a binding to the
    /// namespace/node list role. Subjects are `User` with the OIDC username (prefix + email). Each binding carries
    /// `personLabel` (the revoke stage deletes by it).
    ///
    /// One owner per binding: a person whose `k8s_user` is in `provisioned` (the live `k8s_users` map, whose
    /// infrastructure binds them) gets no binding here, only a comment line saying so.
    /// - Throws: `RenderError` naming every roster user without an email (among those bound here).
    public static func rbac(
        roster: Roster,
        settings: KubernetesSettings,
        provisioned: Set<String> = []
    ) throws -> String {
        let skipped = roster.entries.filter { !$0.isAdopted && provisioned.contains($0.k8sUser) }
        let people = roster.entries.filter { !$0.isAdopted && !provisioned.contains($0.k8sUser) }
        let problems = people.compactMap(emailProblem)
        if !problems.isEmpty { throw RenderError(problems) }
        let label = "  labels:\n    \(managedByLabel): workstation\n"
        func personLabels(_ e: RosterEntry) -> String { label + "    \(personLabel): \(quote(objectName(e.osUser)))\n" }
        func rules(_ rs: [PolicyRule]) -> String {
            rs.map { r in
                "- apiGroups: [\(r.apiGroups.map(quote).joined(separator: ", "))]\n  resources: [\(r.resources.map(quote).joined(separator: ", "))]\n  verbs: [\(r.verbs.map(quote).joined(separator: ", "))]\n"
            }.joined()
        }
        func subject(_ e: RosterEntry) -> String {
            "subjects:\n- apiGroup: rbac.authorization.k8s.io\n  kind: User\n  name: \(quote(settings.usernamePrefix + (e.email ?? "")))\n"
        }
        func roleRef(_ kind: String, _ name: String) -> String {
            "roleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: \(kind)\n  name: \(quote(name))\n"
        }
        var docs: [String] = []
        let owned = skipped.map {
            "# not bound here: \($0.osUser) (k8s_user \($0.k8sUser)) is in k8s_users, whose infrastructure binds them\n"
        }.joined()
        docs.append(
            """
            \(owned)# generated by workstation render rbac: read-only without Secrets (never the existing oidc-power-user role)
            apiVersion: rbac.authorization.k8s.io/v1
            kind: ClusterRole
            metadata:
              name: \(quote(settings.readonlyRole))
            \(label)rules:
            \(rules(readonlyRules))
            """
        )
        docs.append(
            """
            apiVersion: rbac.authorization.k8s.io/v1
            kind: ClusterRole
            metadata:
              name: \(quote(settings.namespaceListRole))
            \(label)rules:
            \(rules(namespaceListRules))
            """
        )
        for e in people where e.tier == .powerUser {
            docs.append(
                """
                apiVersion: rbac.authorization.k8s.io/v1
                kind: ClusterRoleBinding
                metadata:
                  name: \(quote("\(settings.readonlyRole)-\(objectName(e.osUser))"))
                \(personLabels(e))\(roleRef("ClusterRole", settings.readonlyRole))\(subject(e))
                """
            )
        }
        for e in people where e.tier == .namespaceOwner {
            docs.append(
                """
                apiVersion: rbac.authorization.k8s.io/v1
                kind: ClusterRoleBinding
                metadata:
                  name: \(quote("\(settings.namespaceListRole)-\(objectName(e.osUser))"))
                \(personLabels(e))\(roleRef("ClusterRole", settings.namespaceListRole))\(subject(e))
                """
            )
            for ns in e.namespaces {
                docs.append(
                    """
                    apiVersion: rbac.authorization.k8s.io/v1
                    kind: RoleBinding
                    metadata:
                      name: \(quote("workstation-admin-\(objectName(e.osUser))"))
                      namespace: \(quote(ns))
                    \(personLabels(e))\(roleRef("ClusterRole", "admin"))\(subject(e))
                    """
                )
            }
        }
        return docs.map { $0.hasSuffix("\n") ? $0 : $0 + "\n" }.joined(separator: "---\n")
    }

    /// One `k8s_users` entry in Terraform (HCL) syntax, e.g. `alice = { role = "power-user", namespaces = [], email = "..." }`.
    public static func k8sUserEntry(_ e: RosterEntry) -> String {
        var parts = [
            "role = \(quote(e.tier.rawValue))", "namespaces = [\(e.namespaces.map(quote).joined(separator: ", "))]",
        ]
        if let m = e.email { parts.append("email = \(quote(m))") }
        return "\(quote(e.k8sUser)) = { \(parts.joined(separator: ", ")) }"
    }

    /// Every roster user's `k8s_users` entry, one per line, for the infrastructure's variables file.
    public static func k8sUsers(roster: Roster) -> String {
        "# k8s_users entries for the roster (generated by workstation render k8s-users; workstation never edits k8s_users)\n"
            + roster.entries.map { k8sUserEntry($0) + "\n" }.joined()
    }

    /// The per-user kubeconfig: one cluster, one context, and an `exec` user running kubelogin
    /// (`kubectl oidc-login get-token`) with a grant that opens no local port, `interactiveMode: IfAvailable`
    /// (required in v1). It carries no token. With `kubernetes.auth: service-account-token` the user is instead
    /// `tokenFile: <home>/<token_file>` (client-go reads the file on each request; the kubeconfig holds no token).
    /// - Parameter home: the person's home (absolute; the token file's path is written absolute), default `/home/<os_user>`.
    public static func kubeconfig(
        _ e: RosterEntry,
        settings k: KubernetesSettings,
        ca: Data?,
        home: String? = nil
    ) -> Data {
        let home = home ?? "/home/\(e.osUser)"
        let cluster = k.clusterName
        let context = "\(e.osUser)@\(cluster)"
        var caLine = ""
        if let ca {
            caLine = "    certificate-authority-data: \(quote(ca.base64EncodedString()))\n"
        } else if let d = k.caData {
            caLine = "    certificate-authority-data: \(quote(d))\n"
        }
        let ns = e.tier == .namespaceOwner ? e.namespaces.first.map { "    namespace: \(quote($0))\n" } ?? "" : ""
        let header: String
        let user: String
        if k.auth == .serviceAccountToken {
            header =
                "# auth: a service-account token in \(joinPath(home, k.tokenFile)) (yours, mode 0600), read on every request\n"
            user = """
                - name: "service-account"
                  user:
                    tokenFile: \(quote(joinPath(home, k.tokenFile)))

                """
        } else {
            header = ""
            user = """
                - name: "oidc"
                  user:
                    exec:
                      apiVersion: client.authentication.k8s.io/v1
                      command: kubectl
                      args:
                      - oidc-login
                      - get-token
                      - \(quote("--oidc-issuer-url=\(k.oidcIssuerURL ?? "")"))
                      - \(quote("--oidc-client-id=\(k.oidcClientID ?? "")"))
                      - --oidc-extra-scope=email
                \(grantArgs(k))      interactiveMode: IfAvailable
                      provideClusterInfo: false

                """
        }
        let userName = k.auth == .serviceAccountToken ? "service-account" : "oidc"
        return Data(
            """
            # written once by workstation; yours to edit (it is never overwritten)
            \(header)apiVersion: v1
            kind: Config
            clusters:
            - name: \(quote(cluster))
              cluster:
                server: \(quote(k.server ?? ""))
            \(caLine)contexts:
            - name: \(quote(context))
              context:
                cluster: \(quote(cluster))
                user: "\(userName)"
            \(ns)current-context: \(quote(context))
            preferences: {}
            users:
            \(user)
            """.utf8
        )
    }

    /// The kubelogin arguments of the grant (`KubernetesSettings.grantType`), each a line of the `args:` list:
    /// `--grant-type=authcode-keyboard` with `--oidc-redirect-url=...`, or `--grant-type=device-code`. Neither
    /// opens a local port (kubelogin `docs/usage.md`).
    static func grantArgs(_ k: KubernetesSettings) -> String {
        var args = ["--grant-type=\(k.grantType.rawValue)"]
        if k.grantType == .authcodeKeyboard { args.append("--oidc-redirect-url=\(k.redirectURL)") }
        return args.map { "      - \(quote($0))\n" }.joined()
    }

    /// The branch to add to the edge expression policy (Authentik), gating the host on the gate group.
    /// `ak_is_group_member` counts parent groups (REFERENCE.md).
    public static func authentikPolicy(_ a: AuthentikSettings) -> String {
        """
        # workstation gate: add this branch to the edge expression policy, where `host` is the requested host name
        if host == \(quote(a.gateHost)):
            return ak_is_group_member(request.user, name=\(quote(a.gateGroup)))

        """
    }
}

/// `render` could not produce its output; nothing was printed to stdout.
public struct RenderError: Error, CustomStringConvertible {
    public var problems: [String]
    public init(_ problems: [String]) { self.problems = problems }
    public var description: String { problems.joined(separator: "\n") }
}

import Foundation

/// Identity, cluster and secrets resources (spec sections 2, 6 and 7): the Authentik gate-group membership, the
/// `k8s_users` report, the per-user kubeconfig, the Vault helper and the secret files. Pure: everything remote was
/// read into `HostSnapshot.remote` by the observe step.
extension Planner {
    /// Paths observe must `lstat` for one person's integrations (kubeconfig, Vault helper, secret files); the
    /// root-owned profile snippet is among `sharedWatchedPaths`.
    public func integrationWatchedPaths(_ u: DesiredUser) -> [WatchedPath] {
        var out: [WatchedPath] = []
        if let k = settings.kubernetes, k.kubeconfigConfigured {
            out.append(WatchedPath(joinPath(u.home, k.kubeconfigPath)))
        }
        guard let v = settings.vault else { return out }
        out.append(WatchedPath(joinPath(u.home, v.helperFile)))
        if let p = settings.auth.playwright, p.tiers.isEmpty || p.tiers.contains(u.entry.tier) {
            out.append(WatchedPath(joinPath(u.home, ".claude.json"), readContent: true))
        }
        for f in secretFileSpecs(for: u) {
            out.append(WatchedPath(joinPath(u.home, f.target)))
            out += f.unlessPresent.map { WatchedPath(joinPath(u.home, $0)) }
            if let top = f.target.split(separator: "/").first, f.target.contains("/") {
                out.append(WatchedPath(joinPath(u.home, String(top))))
            }
            out += Self.enclosingDirectories(f.target).map { WatchedPath(joinPath(u.home, $0, ".git")) }
        }
        return out
    }

    /// The directories that enclose a home-relative target, the home itself (`""`) first: `a/b/c` -> `""`, `a`,
    /// `a/b`. A `.git` in any of them makes the target part of a git working tree.
    static func enclosingDirectories(_ target: String) -> [String] {
        let parts = target.split(separator: "/").dropLast()
        return [""] + parts.indices.map { parts[...$0].joined(separator: "/") }
    }

    /// Why a secret file must not be written at `target` under `u`'s home because git would take it in, or nil:
    /// the target lies in the infra clone (`infra_repo.directory`, present or to come) or in any directory holding a
    /// `.git` (the home included). There `git add -A` commits it and a push publishes it; workstation refuses rather
    /// than rely on each repository's ignore rules.
    func gitWorkingTreeProblem(_ u: DesiredUser, target: String, _ o: HostSnapshot) -> String? {
        let infra = settings.infraRepo
        let top = String(target.split(separator: "/").first ?? "")
        if target.contains("/"), top == infra.directory, infra.source(for: u.entry) != nil {
            return
                "\(joinPath(u.home, top)) is the infra clone, a git working tree: git add -A would commit the secret; choose a target outside any repository (e.g. .config/<tool>/...)"
        }
        for dir in Self.enclosingDirectories(target) where o.path(joinPath(u.home, dir, ".git")).kind != .absent {
            return
                "\(dir.isEmpty ? u.home : joinPath(u.home, dir)) is a git working tree (it holds .git): git add -A would commit the secret; choose a target outside any repository (e.g. .config/<tool>/...)"
        }
        return nil
    }

    /// Adds the integration changes to a plan: gate-group membership first (each user's host changes depend on
    /// it, so a failed add leaves that user's host side untouched), cluster and Vault resources last. A user whose
    /// IdP lookup failed has their host changes held back and the plan carries an error (exit 1).
    public func planIntegrations(_ plan: inout Plan, _ d: DesiredState, _ o: HostSnapshot) {
        var held: [String: String] = [:]
        let idp = authentikChanges(d, o, &plan, &held)
        if !held.isEmpty {
            plan.changes.removeAll { c in c.user.map { held[$0] != nil } == true && c.action != nil }
        }
        for u in d.users where held[u.osUser] == nil {
            plan.changes += kubeconfigChanges(u, o, &plan)
            let files = vaultChanges(u, o, plan, &plan.errors)
            plan.changes += files
            plan.changes += playwrightChanges(u, o, after: files)
        }
        let adding = Set(idp.compactMap(\.user))
        for i in plan.changes.indices {
            guard let u = plan.changes[i].user, plan.changes[i].action != nil, adding.contains(u) else { continue }
            plan.changes[i].dependsOn.append(.idp(u))
        }
        plan.changes.insert(contentsOf: idp, at: 0)
        plan.changes += k8sUsersReport(d, o, &plan)
        plan.changes += vaultProfileChanges(o)
        plan.changes += authProfileChanges(o)
        if let k = settings.kubernetes, !k.kubeconfigConfigured {
            plan.notes.append("kubernetes server, oidc_issuer_url and oidc_client_id are not set: kubeconfigs skipped")
        }
        if let k = settings.kubernetes, k.auth == .serviceAccountToken, k.kubeconfigConfigured,
            k.serviceAccountToken == nil
        {
            plan.notes.append(
                "kubernetes.auth is service-account-token without service_account_token: each person's ~/\(k.tokenFile) is put there by hand (0600, theirs); doctor checks it"
            )
        }
        if settings.vault == nil {
            plan.notes.append(
                "vault is not configured: Vault helper and secret files skipped (add vault: to workstation.yaml)"
            )
        }
        for (user, why) in held.sorted(by: { $0.key < $1.key }) {
            plan.errors.append("\(user): \(why); \(user)'s host changes were held back")
        }
    }

    // MARK: Authentik

    func authentikChanges(
        _ d: DesiredState,
        _ o: HostSnapshot,
        _ plan: inout Plan,
        _ held: inout [String: String]
    ) -> [Change] {
        guard let a = settings.authentik else {
            plan.notes.append(
                "authentik is not configured: gate group membership skipped (add authentik: to workstation.yaml)"
            )
            return []
        }
        guard let obs = o.remote.authentik else {
            plan.notes.append("authentik was not observed: gate group membership skipped")
            return []
        }
        let provisioned = Set(d.users.map(\.osUser))
        if let err = obs.error
            ?? (obs.groupPK == nil ? "the gate group '\(a.gateGroup)' was not found in Authentik; create it" : nil)
        {
            plan.errors.append("authentik: \(err)")
            for u in provisioned { held[u] = "authentik gate group unavailable" }
            return []
        }
        var out: [Change] = []
        let memberPKs = Set(obs.members.map(\.pk))
        for id in d.identities {
            let os = id.osUser
            if let err = obs.userErrors[id.authentikUser] {
                if provisioned.contains(os) {
                    held[os] = "authentik: \(err)"
                } else {
                    plan.errors.append("\(os): authentik: \(err)")
                }
                continue
            }
            guard let user = obs.users[id.authentikUser] else { continue }
            if memberPKs.contains(user.pk) { continue }
            out.append(
                Change(
                    id: .idp(os),
                    user: os,
                    kind: .create,
                    safety: .additive,
                    summary: "add Authentik user \(user.username) to group \(a.gateGroup)",
                    fields: [FieldChange("idp group", nil, "+\(a.gateGroup)")],
                    action: .addIdPGroupMember(
                        group: a.gateGroup,
                        groupPK: obs.groupPK!,
                        username: user.username,
                        userPK: user.pk
                    )
                )
            )
        }
        let wanted = Set(d.identities.map(\.authentikUser))
        for m in obs.members.sorted(by: { $0.username < $1.username }) where !wanted.contains(m.username) {
            out.append(
                Change(
                    id: .idpRevoke(m.username),
                    user: nil,
                    kind: .pending,
                    safety: .revoke,
                    summary:
                        "Authentik user \(m.username) is in group \(a.gateGroup) but not in the roster: removal pending",
                    fields: [FieldChange("idp group", a.gateGroup, nil)],
                    reason:
                        "apply never removes a member; the offboarding cut stage does (or remove them in Authentik by hand)",
                    command: "workstation offboard OS_USER --stage cut"
                )
            )
        }
        return out
    }

    // MARK: Kubernetes

    /// The fail-loud cross-check: every roster entry present in `k8s_users` must agree on role (= tier) and
    /// namespaces. Returns located problems naming both values; any problem stops plan and apply (exit 1).
    public func kubernetesCrossCheck(_ roster: Roster, _ o: HostSnapshot) -> [Diagnostic] {
        guard let obs = o.remote.k8sUsers else { return [] }
        if !obs.problems.isEmpty { return obs.problems }
        var out: [Diagnostic] = []
        for e in roster.entries {
            guard let k = obs.entries[e.k8sUser] else { continue }
            if k.role != e.tier.rawValue {
                out.append(
                    Diagnostic(
                        k.location,
                        "\(e.osUser): the roster says tier \(e.tier.rawValue) (\(e.location)) but k8s_users says role \(k.role) for '\(e.k8sUser)'; make them agree: change the roster tier or the k8s_users entry"
                    )
                )
            }
            if Set(k.namespaces) != Set(e.namespaces) {
                func list(_ a: [String]) -> String { "[\(a.sorted().joined(separator: ", "))]" }
                out.append(
                    Diagnostic(
                        k.location,
                        "\(e.osUser): the roster says namespaces \(list(e.namespaces)) (\(e.location)) but k8s_users says \(list(k.namespaces)) for '\(e.k8sUser)'; make them agree"
                    )
                )
            }
            // The cluster binds the OIDC email k8s_users names: a roster email that differs would be someone else.
            if let kEmail = k.email, kEmail != e.email {
                out.append(
                    Diagnostic(
                        k.location,
                        "\(e.osUser): the roster says email \(e.email.map { "'\(printable($0))'" } ?? "(none)") (\(e.location)) but k8s_users says '\(printable(kEmail))' for '\(e.k8sUser)'; the binding subject is that email: make them agree"
                    )
                )
            }
        }
        return out
    }

    func k8sUsersReport(_ d: DesiredState, _ o: HostSnapshot, _ plan: inout Plan) -> [Change] {
        guard let k = settings.kubernetes else {
            plan.notes.append(
                "kubernetes is not configured: k8s_users cross-check and kubeconfigs skipped (add kubernetes: to workstation.yaml)"
            )
            return []
        }
        guard k.k8sUsersFile != nil, let obs = o.remote.k8sUsers else {
            plan.notes.append("kubernetes.k8s_users_file is not set: the k8s_users cross-check is skipped")
            return []
        }
        var out: [Change] = []
        // People who left the roster (their identities are on record) but whom k8s_users still grants access.
        let kept = Set(d.identities.map(\.osUser))
        let wanted = Set(d.users.map(\.entry.k8sUser))
        for (os, id) in o.state.identities.sorted(by: { $0.key < $1.key })
        where !kept.contains(os) && !wanted.contains(id.k8sUser) {
            guard let entry = obs.entries[id.k8sUser] else { continue }
            out.append(
                Change(
                    id: .k8sUsersLeft(os),
                    user: os,
                    kind: .pending,
                    safety: .revoke,
                    summary:
                        "\(os) left the roster, but k8s_users still grants '\(id.k8sUser)' (role \(entry.role)): their cluster access remains",
                    fields: [FieldChange("k8s_users", id.k8sUser, nil)],
                    reason:
                        "workstation never edits k8s_users; remove the entry '\(id.k8sUser)' (\(entry.location)) and apply the infrastructure",
                    command: KubernetesManifests.revocationCommand(osUser: os)
                )
            )
        }
        for u in d.users where obs.entries[u.entry.k8sUser] == nil {
            let entry = KubernetesManifests.k8sUserEntry(u.entry)
            out.append(
                Change(
                    id: .k8sUsers(u.osUser),
                    user: u.osUser,
                    kind: .conflict,
                    safety: .additive,
                    summary:
                        "\(u.osUser) (k8s_user \(u.entry.k8sUser)) is missing from k8s_users: no cluster access until it is added",
                    fields: [FieldChange("k8s_users", nil, entry)],
                    reason:
                        "workstation never edits k8s_users; add the entry above to the infrastructure and apply it (workstation render k8s-users)"
                )
            )
        }
        return out
    }

    func kubeconfigChanges(_ u: DesiredUser, _ o: HostSnapshot, _ plan: inout Plan) -> [Change] {
        guard let k = settings.kubernetes else { return [] }
        guard k.kubeconfigConfigured else { return [] }
        if let p = o.remote.kubernetesCAProblem {
            if !plan.errors.contains(p) { plan.errors.append(p) }
            return []
        }
        let path = joinPath(u.home, k.kubeconfigPath)
        return homeFileChange(
            u,
            o,
            id: .kubeconfig(u.osUser),
            path: path,
            relative: k.kubeconfigPath,
            what: "kubeconfig",
            content: KubernetesManifests.kubeconfig(u.entry, settings: k, ca: o.remote.kubernetesCA, home: u.home)
        )
    }

    /// A non-secret file written once under the home: created when absent; an existing one workstation did not
    /// write is kept and reported.
    func homeFileChange(
        _ u: DesiredUser,
        _ o: HostSnapshot,
        id: ResourceID,
        path: String,
        relative: String,
        what: String,
        content: Data
    ) -> [Change] {
        let st = o.path(path)
        if st.kind == .absent {
            return [
                Change(
                    id: id,
                    user: u.osUser,
                    kind: .create,
                    safety: .additive,
                    summary: "write \(what) \(path) (absent)",
                    fields: [FieldChange("mode", nil, "0600"), FieldChange("size", nil, "\(content.count) bytes")],
                    action: .createHomeFile(user: u.osUser, path: path, content: content, mode: 0o600),
                    dependsOn: u.accountExists ? [] : [.account(u.osUser)]
                )
            ]
        }
        if o.state.homeFiles?[u.osUser]?.contains(relative) == true { return [] }
        return [
            Change(
                id: id,
                user: u.osUser,
                kind: .conflict,
                safety: .additive,
                summary: "\(path) exists; kept (workstation writes a \(what) only where there is none)",
                reason: "move it aside to get the workstation \(what)"
            )
        ]
    }

    // MARK: Vault

    /// The secret files each user should get, with what stops them (nil: write it).
    public func secretFilePlans(
        _ d: DesiredState,
        _ o: HostSnapshot
    ) -> [(user: DesiredUser, spec: SecretFileSpec, path: String, blocker: String?, written: Bool)] {
        guard settings.vault != nil else { return [] }
        var out: [(DesiredUser, SecretFileSpec, String, String?, Bool)] = []
        for u in d.users {
            for f in secretFileSpecs(for: u) {
                let path = joinPath(u.home, f.target)
                // The person set it up themselves (e.g. logged in to Claude): kept, nothing written.
                if f.unlessPresent.contains(where: { o.path(joinPath(u.home, $0)).kind != .absent })
                    && o.path(path).kind == .absent
                {
                    out.append((u, f, path, nil, true))
                    continue
                }
                let recorded = o.state.secretFilesWritten[u.osUser]?.contains(joinPath(u.home, f.target)) == true
                let top = String(f.target.split(separator: "/").first ?? "")
                var blocker: String?
                if o.path(path).kind == .absent, let problem = gitWorkingTreeProblem(u, target: f.target, o) {
                    out.append((u, f, path, problem, false))
                    continue
                }
                if o.path(path).kind != .absent {
                    blocker = recorded ? nil : "\(path) exists; kept, never written into"
                    out.append((u, f, path, blocker, true))
                    continue
                }
                if f.target.contains("/") {
                    let topState = o.path(joinPath(u.home, top))
                    // A file whose Vault read failed while ~/.claude was still absent is written into the ~/.claude
                    // that run created (it is a directory: the home-writer never follows a link on the way).
                    let pending =
                        o.state.secretFilesPending[u.osUser]?.contains(path) == true && topState.kind == .directory
                    if top == ".claude" && topState.kind != .absent && !pending {
                        blocker =
                            "\(joinPath(u.home, ".claude")) exists; workstation never writes into an existing ~/.claude"
                    } else if !top.hasPrefix(".") && topState.kind == .absent {
                        blocker =
                            "\(joinPath(u.home, top)) does not exist yet; the file is written on a later run once it does"
                    } else if topState.kind != .absent && topState.kind != .directory {
                        blocker = "\(joinPath(u.home, top)) is a \(topState.kind.rawValue), not a directory"
                    }
                }
                out.append((u, f, path, blocker, false))
            }
        }
        return out
    }

    /// The secret files that should be written now but whose Vault read failed (os_user -> host paths): apply
    /// records them in `state.secret_files_pending`, so a later run still writes them once Vault answers, even
    /// where this run creates their directory (`~/.claude`); plan reports each as an error meanwhile.
    public func unreadSecretFiles(_ d: DesiredState, _ o: HostSnapshot) -> [String: [String]] {
        var out: [String: [String]] = [:]
        for p in secretFilePlans(d, o) where !p.written && p.blocker == nil {
            if case .value? = o.remote.vault?.secrets[Planner.observationKey(p.spec)] { continue }
            out[p.user.osUser, default: []].append(p.path)
        }
        return out
    }

    /// Secret files observe must read from Vault: those some user still needs (absent target, nothing in the way).
    public func secretsToRead(_ d: DesiredState, _ o: HostSnapshot) -> [SecretFileSpec] {
        var out: [SecretFileSpec] = []
        for p in secretFilePlans(d, o) where !p.written && p.blocker == nil && !out.contains(p.spec) {
            out.append(p.spec)
        }
        return out
    }

    func vaultChanges(_ u: DesiredUser, _ o: HostSnapshot, _ plan: Plan, _ errors: inout [String]) -> [Change] {
        guard let v = settings.vault else {
            return []
        }
        var out: [Change] = []
        let helperPath = joinPath(u.home, v.helperFile)
        out += homeFileChange(
            u,
            o,
            id: .vaultHelper(u.osUser),
            path: helperPath,
            relative: v.helperFile,
            what: "Vault helper",
            content: vaultHelper(u.entry, v)
        )
        let claudeDir = ResourceID.dir(joinPath(u.home, ".claude"))
        for p in secretFilePlans(DesiredState(users: [u]), o) {
            let id = ResourceID.secret(user: u.osUser, name: p.spec.name)
            if let b = p.blocker {
                out.append(
                    Change(
                        id: id,
                        user: u.osUser,
                        kind: .conflict,
                        safety: .additive,
                        summary: "secret file \(p.spec.name) not written: \(b)",
                        fields: [FieldChange("source", nil, p.spec.reference)]
                    )
                )
                continue
            }
            if p.written { continue }
            switch o.remote.vault?.secrets[Planner.observationKey(p.spec)] {
            case .value(let value)?:
                let content: Redacted
                switch Planner.secretContent(p.spec, value) {
                case .success(let c): content = c
                case .failure(let why):
                    errors.append("\(u.osUser): vault: \(p.spec.reference) for \(p.path): \(why); not written")
                    continue
                }
                var deps: [ResourceID] = u.accountExists ? [] : [.account(u.osUser)]
                if p.spec.target.hasPrefix(".claude/") && plan.changes.contains(where: { $0.id == claudeDir }) {
                    deps.append(claudeDir)
                }
                out.append(
                    Change(
                        id: id,
                        user: u.osUser,
                        kind: .create,
                        safety: .additive,
                        summary: "write secret file \(p.path) from Vault (\(p.spec.name))",
                        fields: [
                            FieldChange("source", nil, p.spec.reference),
                            FieldChange("content", nil, content.description),
                            FieldChange("mode", nil, "0600"),
                        ],
                        action: .createSecretFile(user: u.osUser, path: p.path, content: content, mode: 0o600),
                        dependsOn: deps
                    )
                )
            case .failed(let why)?:
                errors.append(
                    "\(u.osUser): vault: cannot read \(p.spec.reference) for \(p.path): \(why); not written yet, retried on every run until it is"
                )
            case nil:
                errors.append(
                    "\(u.osUser): vault: \(p.spec.reference) was not read; \(p.path) not written yet, retried on every run until it is"
                )
            }
        }
        return out
    }

    /// `~/.config/workstation/vault.env`: `VAULT_ADDR`, the namespace and the tier's OIDC role. Never a token:
    /// people log in to the Vault web UI with OIDC in their own browser (the callback goes to Vault itself) and
    /// hand the token to `vault login` at its hidden prompt. Never `vault login -method=oidc` on this host: its
    /// callback listener (`localhost:8250`, vault-plugin-auth-jwt `cli.go`) can be taken by any account first,
    /// and Vault's CLI has no OIDC flow without a local TCP listener.
    public func vaultHelper(_ e: RosterEntry, _ v: VaultSettings) -> Data {
        var s = "# written once by workstation; no token here. Log in without opening a port on this shared host:\n"
        s +=
            "#   1. in your own browser: $VAULT_ADDR/ui/ , method OIDC, role $VAULT_OIDC_ROLE; then Copy token (user menu)\n"
        s += "#   2. here: vault login   (paste it at the hidden prompt; it is kept in ~/.vault-token, mode 0600)\n"
        s +=
            "# Not vault login -method=oidc: its callback listens on localhost:8250, which any account here can take first.\n"
        s += "export VAULT_ADDR=\(shellQuote(v.url))\n"
        if let ns = v.namespace { s += "export VAULT_NAMESPACE=\(shellQuote(ns))\n" }
        s += "export VAULT_OIDC_ROLE=\(shellQuote(v.oidcRole(e.tier)))\n"
        return Data(s.utf8)
    }

    /// The system profile snippet that sources each user's helper at login.
    public func vaultProfileSnippet(_ v: VaultSettings) -> Data {
        Data(
            """
            # generated by workstation; do not edit. Loads the per-user Vault helper (VAULT_ADDR, OIDC role; never a token).
            if [ -n "$HOME" ] && [ -r "$HOME/\(v.helperFile)" ]; then . "$HOME/\(v.helperFile)"; fi

            """.utf8
        )
    }

    func vaultProfileChanges(_ o: HostSnapshot) -> [Change] {
        guard let v = settings.vault else { return [] }
        return profileSnippetChanges(
            v.profileSnippet,
            vaultProfileSnippet(v),
            o,
            what: "loads the Vault helper at login"
        )
    }

    /// A root-owned `/etc/profile.d` snippet (mode 0644, derived): `rootFile` against what the snapshot holds there.
    func profileSnippetChanges(_ path: String, _ content: Data, _ o: HostSnapshot, what: String) -> [Change] {
        rootFile(path, content, observed: o.path(path), what)
    }
}

/// Quotes a value for a POSIX shell: `'...'` with embedded quotes escaped.
func shellQuote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }

/// `s` as one POSIX shell word: as it is when every character is one the shell takes literally (letters, digits,
/// `/._-+,=:@`), else `shellQuote(s)`.
public func shellWord(_ s: String) -> String {
    !s.isEmpty && s.allSatisfy { $0.isLetter || $0.isNumber || "/._-+,=:@".contains($0) } ? s : shellQuote(s)
}

extension DesiredState {
    init(users: [DesiredUser]) {
        self.init()
        self.users = users
    }
}

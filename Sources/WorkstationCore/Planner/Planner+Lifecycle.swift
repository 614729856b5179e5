import Foundation

/// The lifecycle's changes: the offboarding stages (built for the explicit `offboard` command, never by `plan`) and
/// the reinstatement apply runs when an offboarded user is back in the roster. Pure.
extension Planner {
    /// The account as it is now, for the cut record.
    public func beforeState(user: String, observed o: HostSnapshot, idpMembership: String) -> AccountBeforeState {
        let sh = o.shadow[user]
        return AccountBeforeState(
            groups: o.groupsOf(user),
            shell: o.account(user)?.shell ?? "",
            passwordLocked: sh?.passwordLocked ?? false,
            expireDays: sh?.expireDays,
            units: settings.units.reduce(into: [:]) {
                $0[$1.instance(user)] = o.enabledUnits.contains($1.instance(user))
            },
            idpMembership: idpMembership
        )
    }

    /// Stage cut: stop and disable every per-user unit, lock the password and expire the account (day 1).
    /// Revoke class; already-cut parts produce no change.
    public func cutChanges(user: String, observed o: HostSnapshot) -> [Change] {
        var out: [Change] = []
        for unit in settings.units {
            let instance = unit.instance(user)
            let enabled = o.enabledUnits.contains(instance)
            guard enabled || o.systemdRunning else { continue }
            out.append(
                Change(
                    id: .unit(instance),
                    user: user,
                    kind: .pending,
                    safety: .revoke,
                    summary: o.systemdRunning
                        ? "stop and disable \(instance)" : "disable \(instance) (no running systemd under this root)",
                    fields: [FieldChange("enabled", enabled ? "yes" : "no", "no")],
                    action: .disableUnit(name: instance)
                )
            )
        }
        let sh = o.shadow[user]
        let locked = sh?.passwordLocked ?? false
        if !locked || sh?.expireDays != 1 {
            out.append(
                Change(
                    id: .login(user),
                    user: user,
                    kind: .pending,
                    safety: .revoke,
                    summary: locked
                        ? "expire the account of \(user) (the password is locked already; key logins stop too)"
                        : "lock the password and expire the account of \(user) (key logins stop too)",
                    fields: [
                        FieldChange("password locked", locked ? "yes" : "no", "yes"),
                        FieldChange("expires", sh?.expireDays.map { "day \($0)" } ?? "never", "day 1 (1970-01-02)"),
                    ],
                    action: .restrictLogin(user: user, lock: !locked)
                )
            )
        }
        return out
    }

    /// The last steps of stage cut, after the units are stopped and logins refused: disable linger (when logind's
    /// linger file exists), then end every process of the account, its user manager included.
    /// - Parameters:
    ///   - lingering: whether `/var/lib/systemd/linger/<user>` exists.
    ///   - processes: the account's processes now (`pid`, command name), or nil when they are not ended here
    ///     (a `--root` prefix: processes belong to the live host, never to a prefix).
    public func cutSessionChanges(
        user: String,
        uid: Int,
        lingering: Bool,
        processes: [(pid: Int, name: String)]?
    ) -> [Change] {
        var out: [Change] = []
        if lingering {
            out.append(
                Change(
                    id: .linger(user),
                    user: user,
                    kind: .pending,
                    safety: .revoke,
                    summary: "disable linger for \(user) (no user manager at boot)",
                    fields: [FieldChange("linger", "yes", "no")],
                    action: .disableLinger(user: user)
                )
            )
        }
        if let processes {
            let shown =
                processes.prefix(20).map { "\($0.pid) (\(printable($0.name)))" }.joined(separator: ", ")
                + (processes.count > 20 ? ", ..." : "")
            out.append(
                Change(
                    id: .processes(user),
                    user: user,
                    kind: .pending,
                    safety: .revoke,
                    summary: processes.isEmpty
                        ? "end every process of \(user) (none runs now; their user manager, if any, is terminated)"
                        : "end every process of \(user) (uid \(uid)), their user manager included: \(processes.count) now: \(shown)",
                    fields: [FieldChange("processes", String(processes.count), "0")],
                    action: .endProcesses(user: user, uid: uid),
                    dependsOn: lingering ? [.linger(user)] : []
                )
            )
        }
        return out
    }

    /// Stage revoke: delete the per-user secret files workstation recorded writing (only those), and only while
    /// each holds exactly the bytes written (`state.written_digests`): a file in `kept` (host path -> why: changed
    /// since written, no digest recorded, not a regular file) is kept in the home, so the archive stage keeps it,
    /// and reported as a conflict.
    public func revokeChanges(user: String, observed o: HostSnapshot, kept: [String: String] = [:]) -> [Change] {
        (o.state.secretFilesWritten[user] ?? []).map { path in
            if let why = kept[path] {
                return Change(
                    id: .secret(path),
                    user: user,
                    kind: .conflict,
                    safety: .revoke,
                    summary: "kept secret file \(path): \(why)",
                    fields: [FieldChange("file", path, path)],
                    reason:
                        "only a file unchanged since workstation wrote it is deleted; this one stays in the home and goes into the archive (delete it by hand if it holds nothing worth keeping)"
                )
            }
            return Change(
                id: .secret(path),
                user: user,
                kind: .pending,
                safety: .revoke,
                summary: "delete secret file \(path) (unchanged since written)",
                fields: [FieldChange("file", path, nil)],
                action: .removeHomeEntry(user: user, path: path, onlySymlink: false)
            )
        }
    }

    /// The cluster side of stage revoke, for an admin to apply (the cluster is admin-applied), by the owner of the
    /// person's RBAC objects: the infrastructure when `k8s_users` holds them (the entry to remove, and what that
    /// removal deletes, by tier; REFERENCE "Kubernetes: kubelogin and RBAC"), and `render rbac` otherwise (the exact
    /// `kubectl delete` by label selector). Both when the k8s_users map was not read (`inK8sUsers` nil).
    public func clusterRevocationSteps(user: String, identity: RecordedIdentity?, inK8sUsers: Bool? = nil) -> [String] {
        let k8s = identity?.k8sUser ?? user
        var steps: [String] = []
        if inK8sUsers != true {
            steps.append(
                "delete the RBAC bindings rendered for \(user): \(KubernetesManifests.revocationCommand(osUser: user))"
            )
        }
        if inK8sUsers == false {
            steps.append(
                "check: kubectl get rolebindings,clusterrolebindings -A -o wide | grep -w \(k8s)  (no lines expected; bindings rendered before they were labelled show here)"
            )
            steps.append("revoke any shared token or memory credential issued to '\(user)' at the issuer")
            return steps
        }
        steps.append(
            "remove the k8s_users entry '\(k8s)' and apply the cluster configuration (an admin runs the apply)"
        )
        switch identity?.tier {
        case Tier.powerUser.rawValue?:
            steps.append("that deletes the ClusterRoleBinding of '\(k8s)' to the power-user read-only ClusterRole")
        case Tier.namespaceOwner.rawValue?:
            for ns in identity?.namespaces ?? [] {
                steps.append("that deletes the RoleBinding of '\(k8s)' to ClusterRole admin in namespace \(ns)")
            }
            steps.append(
                "and the ClusterRoleBinding of '\(k8s)' to the namespace-owner get/list/watch ClusterRole (namespaces, nodes)"
            )
        default:
            steps.append(
                "tier unknown (no identity recorded): delete every RoleBinding and ClusterRoleBinding whose subject is '\(k8s)'"
            )
        }
        steps.append(
            "check: kubectl get rolebindings,clusterrolebindings -A -o wide | grep -w \(k8s)  (no lines expected)"
        )
        steps.append("revoke any shared token or memory credential issued to '\(user)' at the issuer")
        return steps
    }

    /// The system files apply writes for one person: each per-user unit's drop-in and the memory-budget drop-in of
    /// their slice (`user-<uid>.slice.d`). The archive stage removes every one of them present (and each
    /// drop-in directory left empty).
    public func personSystemFiles(user: String, uid: Int) -> [String] {
        settings.units.map { dropInPath($0, user) } + [sliceDropInPath(uid: uid)]
    }

    /// Stage archive: archive the home, delete the account, remove every system file apply wrote for them
    /// (`personSystemFiles`: unit and slice drop-ins, with their directories once empty). Destroy class; each step
    /// depends on the previous one, so a failed archive deletes nothing.
    public func archiveChanges(
        user: String,
        uid: Int,
        home: String,
        archive: String,
        observed o: HostSnapshot
    ) -> [Change] {
        var out = [
            Change(
                id: .archive(user),
                user: user,
                kind: .pending,
                safety: .destroy,
                summary: "archive \(home) to \(archive) and verify it",
                fields: [FieldChange("archive", nil, archive)],
                action: .archiveHome(user: user, home: home, archive: archive)
            ),
            Change(
                id: .account(user),
                user: user,
                kind: .pending,
                safety: .destroy,
                summary: "delete account \(user) and its home (userdel --remove)",
                fields: [FieldChange("account", user, nil), FieldChange("home", home, nil)],
                action: .deleteAccount(user: user),
                dependsOn: [.archive(user)]
            ),
        ]
        for dropIn in personSystemFiles(user: user, uid: uid) {
            guard o.path(dropIn).kind != .absent else { continue }
            out.append(
                Change(
                    id: .file(dropIn),
                    user: user,
                    kind: .pending,
                    safety: .destroy,
                    summary:
                        "remove drop-in \(dropIn) (and \((dropIn as NSString).deletingLastPathComponent) once empty)",
                    fields: [FieldChange("file", dropIn, nil)],
                    action: .removeSystemFile(path: dropIn),
                    dependsOn: [.account(user)]
                )
            )
        }
        return out
    }

    /// Reinstatement: an offboarded (cut, not archived) user back in the roster gets back exactly what the cut recorded:
    /// password lock and expiry, the supplementary groups, and enabled units outside `settings.units` (those are
    /// `unitChanges`' job). Additive: it restores access the roster grants again.
    func reinstatementChanges(_ u: DesiredUser, _ o: HostSnapshot) -> [Change] {
        guard u.accountExists, let rec = o.state.offboarding[u.osUser], let cut = rec.cut, rec.archive == nil else {
            return []
        }
        let before = cut.before
        var out: [Change] = []
        let sh = o.shadow[u.osUser]
        let locked = sh?.passwordLocked ?? false
        let unlock = locked && !before.passwordLocked
        if unlock || sh?.expireDays != before.expireDays {
            out.append(
                Change(
                    id: .login(u.osUser),
                    user: u.osUser,
                    kind: .update,
                    safety: .additive,
                    summary: "restore the login of \(u.osUser) as recorded before offboarding",
                    fields: [
                        FieldChange("password locked", locked ? "yes" : "no", before.passwordLocked ? "yes" : "no"),
                        FieldChange(
                            "expires",
                            sh?.expireDays.map { "day \($0)" } ?? "never",
                            before.expireDays.map { "day \($0)" } ?? "never"
                        ),
                    ],
                    reason: "back in the roster; offboard cut recorded this state",
                    action: .restoreLogin(user: u.osUser, unlock: unlock, expireDays: before.expireDays)
                )
            )
        }
        // Not a forbidden group, nor the group of a tier they no longer hold (a tier change while offboarded).
        let current = Set(o.groupsOf(u.osUser))
        let otherTiers = Set(settings.accounts.tierGroups.values).subtracting(u.groups)
        for g in before.groups
        where !current.contains(g) && !u.groups.contains(g) && !settings.accounts.forbiddenGroups.contains(g)
            && !otherTiers.contains(g) && o.group(g) != nil
        {
            out.append(
                joining(
                    u.osUser,
                    g,
                    summary: "add \(u.osUser) back to group \(g)",
                    reason: "recorded before offboarding"
                )
            )
        }
        let managed = Set(settings.units.map { $0.instance(u.osUser) })
        for (instance, enabled) in before.units.sorted(by: { $0.key < $1.key })
        where enabled && !managed.contains(instance) && !o.enabledUnits.contains(instance) {
            out.append(
                Change(
                    id: .unit(instance),
                    user: u.osUser,
                    kind: .create,
                    safety: .additive,
                    summary: "enable \(instance) again",
                    fields: [FieldChange("enabled", "no", "yes")],
                    reason: "recorded before offboarding",
                    action: .enableUnit(name: instance)
                )
            )
        }
        return out
    }
}

extension Planner {
    /// Revocation that no gate holds back: the derived files as they are now, minus every entry whose
    /// (authentik_user, os_user) pair the roster no longer routes. Nothing is added or re-pointed, so a run refused
    /// by a gate (capacity, an idle gate, a `k8s_users` cross-check about someone else) still ends the web and
    /// terminal access of the people who left. Entries of accounts with admin rights are kept (the lockout guard).
    /// - Returns: the changes (at most one per derived file) and the os_users dropped, sorted.
    public func revocationOnlyChanges(_ d: DesiredState, _ o: HostSnapshot) -> (changes: [Change], dropped: [String]) {
        let routed = Set(d.identities.map { "\($0.authentikUser)\u{0}\($0.osUser)" })
        // A kubernetes-placed person has no account here to log into: the ttyd map drops them too.
        let onHost = Set(d.identities.filter { $0.workspace == nil }.map { "\($0.authentikUser)\u{0}\($0.osUser)" })
        let adminGroup = o.group(settings.accounts.adminGroup)
        let admins = Set(adminGroup?.members ?? []).union(o.passwd.filter { $0.gid == adminGroup?.gid }.map(\.name))
        func keep(_ ak: String, _ os: String) -> Bool { routed.contains("\(ak)\u{0}\(os)") || admins.contains(os) }
        func keepTerminal(_ ak: String, _ os: String) -> Bool {
            onHost.contains("\(ak)\u{0}\(os)") || admins.contains(os)
        }
        var changes: [Change] = []
        var dropped: Set<String> = []
        let ttyd = o.path(settings.derived.ttydUserMap)
        if ttyd.kind == .file, let data = ttyd.content {
            let map = DerivedFileRenderer.parseTtydUserMap(data)
            let left = map.filter { keepTerminal($0.key, $0.value) }
            if left.count != map.count {
                for (ak, os) in map where left[ak] == nil { dropped.insert(os) }
                let content = DerivedFileRenderer.ttydUserMap(
                    left.map { RoutedIdentity(authentikUser: $0.key, osUser: $0.value, ports: [:], adopted: false) }
                )
                changes.append(droppingLeavers(settings.derived.ttydUserMap, from: data, to: content))
            }
        }
        let dispatch = o.path(settings.derived.dispatch)
        if dispatch.kind == .file, let data = dispatch.content, let map = try? DispatchMap.decode(data) {
            let left = map.users.filter { keep($0.key, $0.value.osUser) }
            if left.count != map.users.count {
                for (ak, u) in map.users where left[ak] == nil { dropped.insert(u.osUser) }
                let content = DispatchMap(version: map.version, users: left).encoded()
                changes.append(droppingLeavers(settings.derived.dispatch, from: data, to: content))
            }
        }
        return (changes, dropped.sorted())
    }

    /// The derived-file update that only removes the people who left the roster (`before` -> `after`).
    private func droppingLeavers(_ path: String, from before: Data, to after: Data) -> Change {
        Change(
            id: .file(path),
            user: nil,
            kind: .update,
            safety: .derived,
            summary: "drop the people who left the roster from \(path) (revocation only)",
            fields: lineDiff(String(decoding: before, as: UTF8.self), String(decoding: after, as: UTF8.self)),
            action: .writeFile(path: path, content: after, mode: 0o644)
        )
    }
}

/// State bookkeeping apply does for the lifecycle.
public enum LifecycleState {
    /// Records every provisioned roster entry's identities, and drops the offboarding record of a user who is back in the
    /// roster once `verification` has nothing left for them (the reinstatement is complete; the journal keeps the history).
    /// A person placed on Kubernetes keeps the offboarding record of their host side (it is being offboarded).
    public static func afterApply(
        _ state: inout WorkstationState,
        roster: Roster,
        verification: Plan,
        settings: Settings = Settings()
    ) {
        for e in roster.entries where !e.isAdopted {
            state.identities[e.osUser] = RecordedIdentity(
                authentikUser: e.authentikUser,
                k8sUser: e.k8sUser,
                tier: e.tier.rawValue,
                namespaces: e.namespaces
            )
            if e.placement(settings) == .host, let rec = state.offboarding[e.osUser], rec.archive == nil,
                !verification.actionable.contains(where: { $0.user == e.osUser })
            {
                state.offboarding[e.osUser] = nil
            }
        }
    }
}

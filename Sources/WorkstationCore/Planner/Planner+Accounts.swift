import Foundation

/// Groups, accounts, memberships and homes: the first families of a plan, in execution order.
extension Planner {
    func groupChanges(_ d: DesiredState, _ o: HostSnapshot) -> [Change] {
        var needed: [String] = []
        for u in d.users { for g in u.groups where !needed.contains(g) { needed.append(g) } }
        return needed.filter { o.group($0) == nil }.map { g in
            Change(
                id: .group(g),
                user: nil,
                kind: .create,
                safety: .additive,
                summary: "create group \(g)",
                fields: [FieldChange("group", nil, g)],
                action: .createGroup(name: g)
            )
        }
    }

    func accountChanges(_ u: DesiredUser, _ o: HostSnapshot) -> [Change] {
        var out: [Change] = []
        if !u.accountExists {
            let spec = AccountSpec(
                name: u.osUser,
                uid: u.uid,
                home: u.home,
                shell: settings.accounts.shell,
                groups: u.groups,
                comment: u.entry.email ?? u.entry.authentikUser
            )
            out.append(
                Change(
                    id: .account(u.osUser),
                    user: u.osUser,
                    kind: .create,
                    safety: .additive,
                    summary: "create account \(u.osUser) (uid \(u.uid), tier \(u.entry.tier.rawValue))",
                    fields: [
                        FieldChange("uid", nil, String(u.uid)), FieldChange("home", nil, u.home),
                        FieldChange("shell", nil, settings.accounts.shell),
                        FieldChange("groups", nil, u.groups.joined(separator: ",")),
                    ],
                    action: .createAccount(spec),
                    dependsOn: u.groups.filter { o.group($0) == nil }.map { .group($0) }
                )
            )
        }
        // Admin rights on a non-admin are a violation; removing them is a revoke, never an apply change.
        for g in settings.accounts.forbiddenGroups where o.isMember(u.osUser, of: g) {
            out.append(
                Change(
                    id: .violation(u.osUser, g),
                    user: u.osUser,
                    kind: .pending,
                    safety: .revoke,
                    summary: "\(u.osUser) is in group \(g), which a \(u.entry.tier.rawValue) must not hold",
                    reason: "violation: non-admins never hold sudo, docker or shared-code membership",
                    command: "gpasswd -d \(u.osUser) \(g)"
                )
            )
        }
        return out
    }

    /// The groups `u` should join, and the tier groups of other tiers `u` still holds (after a tier change). Leaving a
    /// group is a revoke (DESIGN.md section 3), so the second kind is pending with the `gpasswd(8)` command that does
    /// it; a tier group the roster entry names in `groups:` is wanted, not stale.
    func membershipChanges(_ u: DesiredUser, _ o: HostSnapshot) -> [Change] {
        guard u.accountExists else { return [] }  // useradd -G sets them at creation
        let stale = settings.accounts.tierGroups.sorted { $0.key.rawValue < $1.key.rawValue }.filter { _, g in
            !u.groups.contains(g) && o.isMember(u.osUser, of: g)
        }
        let leave = stale.map { tier, g in
            Change(
                id: .membership(u.osUser, g),
                user: u.osUser,
                kind: .pending,
                safety: .revoke,
                summary: "\(u.osUser) is still in group \(g) of tier \(tier.rawValue); their tier is "
                    + u.entry.tier.rawValue,
                fields: [FieldChange("groups", g, nil)],
                reason: "a tier change leaves the old tier's group to a revoke, never an apply change",
                command: "gpasswd -d \(u.osUser) \(g)"
            )
        }
        return leave
            + u.groups.filter { !o.isMember(u.osUser, of: $0) }.map { g in
                joining(
                    u.osUser,
                    g,
                    summary: "add \(u.osUser) to group \(g)",
                    dependsOn: o.group(g) == nil ? [.group(g)] : []
                )
            }
    }

    /// The additive change that puts `user` into `group` (`usermod -a -G`, the executor's `addMembership`).
    func joining(
        _ user: String,
        _ group: String,
        summary: String,
        reason: String? = nil,
        dependsOn: [ResourceID] = []
    ) -> Change {
        Change(
            id: .membership(user, group),
            user: user,
            kind: .create,
            safety: .additive,
            summary: summary,
            fields: [FieldChange("groups", nil, "+\(group)")],
            reason: reason,
            action: .addMembership(user: user, group: group),
            dependsOn: dependsOn
        )
    }

    /// Home: owned by the user, no group or other bits. A root-owned home is chowned (the directory only);
    /// a home owned by someone else is a conflict. Modes are only ever tightened.
    func homeChanges(_ u: DesiredUser, _ o: HostSnapshot) -> [Change] {
        guard u.accountExists else { return [] }  // useradd creates it; the account change secures it
        let st = o.path(u.home)
        switch st.kind {
        case .absent where makesHome(u, o):
            return [
                Change(
                    id: .home(u.osUser),
                    user: u.osUser,
                    kind: .create,
                    safety: .additive,
                    summary:
                        "create home \(u.home) of \(u.osUser) (workstation created the account; a run stopped before its home)",
                    fields: [FieldChange("home", nil, u.home)],
                    action: .createHome(user: u.osUser, path: u.home)
                )
            ]
        case .absent:
            return [
                Change(
                    id: .home(u.osUser),
                    user: u.osUser,
                    kind: .conflict,
                    safety: .additive,
                    summary: "home \(u.home) of \(u.osUser) is missing",
                    reason: "the account exists without its home; create it by hand (mkhomedir_helper \(u.osUser))"
                )
            ]
        case .directory:
            let wrongOwner = st.uid != u.uid
            if wrongOwner && st.uid != 0 {
                return [
                    Change(
                        id: .home(u.osUser),
                        user: u.osUser,
                        kind: .conflict,
                        safety: .tighten,
                        summary: "home \(u.home) is owned by uid \(st.uid), not \(u.osUser)",
                        reason: "workstation only takes over a root-owned home; chown it by hand if intended"
                    )
                ]
            }
            let mode = st.mode & 0o7777
            let tight = mode & ~0o077
            guard wrongOwner || tight != mode else { return [] }
            var fields: [FieldChange] = []
            if tight != mode { fields.append(FieldChange("mode", octal(mode), octal(tight))) }
            if wrongOwner { fields.append(FieldChange("owner", "uid \(st.uid)", u.osUser)) }
            return [
                Change(
                    id: .home(u.osUser),
                    user: u.osUser,
                    kind: .update,
                    safety: .tighten,
                    summary: "secure home \(u.home)",
                    fields: fields,
                    action: .secureHome(user: u.osUser, path: u.home, chownTo: wrongOwner ? u.uid : nil, mode: tight)
                )
            ]
        default:
            return [
                Change(
                    id: .home(u.osUser),
                    user: u.osUser,
                    kind: .conflict,
                    safety: .additive,
                    summary: "home \(u.home) of \(u.osUser) is a \(st.kind.rawValue), not a directory",
                    reason: "workstation never follows or replaces it; fix it by hand"
                )
            ]
        }
    }

    /// True when the plan makes `u`'s home: an account workstation created (recorded, or intended by a run that
    /// stopped) whose home is missing.
    func makesHome(_ u: DesiredUser, _ o: HostSnapshot) -> Bool {
        u.accountExists && o.path(u.home).kind == .absent
            && (o.state.accounts[u.osUser]?.created == true || o.state.intents?.accounts[u.osUser] != nil)
    }
}

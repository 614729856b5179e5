import Foundation

extension Planner {
    /// Every group id `u` has (or will have once apply adds the managed groups).
    func groupIds(_ u: DesiredUser, _ o: HostSnapshot) -> Set<Int> {
        var gids: Set<Int> = [o.account(u.osUser)?.gid ?? u.uid]
        for g in o.groups where g.members.contains(u.osUser) || u.groups.contains(g.name) { gids.insert(g.gid) }
        return gids
    }

    /// Per child: can they read each inherited item through every directory on the way? Blocked items are reported
    /// per user with the blocking directory; the fix is one additive ACL change per blocking directory granting the
    /// managed group search (`--x`), or `r-x` on the item itself (`setfacl(1)`).
    func reachabilityChanges(_ d: DesiredState, _ o: HostSnapshot, _ host: SetupHostObservation) -> [Change] {
        var out: [Change] = []
        let group = settings.accounts.group
        let groupGid = o.group(group)?.gid
        // directory -> (perms, users blocked there)
        var fixes: [String: (perms: UInt8, entry: TraversedEntry, users: [String])] = [:]
        var fixOrder: [String] = []
        for chain in host.chains {
            guard let problem = chain.problem else { continue }
            out.append(
                Change(
                    id: .reach(chain.item),
                    user: nil,
                    kind: .conflict,
                    safety: .additive,
                    summary: "config base item \(chain.item) \(problem)",
                    reason: "children's links to it dangle; create it in the config base"
                )
            )
        }
        for u in d.users {
            let gids = groupIds(u, o)
            for chain in host.chains where chain.problem == nil {
                let blocked = chain.blocking(uid: u.uid, gids: gids)
                guard let first = blocked.first else { continue }
                let fixable = blocked.allSatisfy { e in
                    e.uid != u.uid
                        && e.granting(group: groupGid ?? -2, perms: e.need).allows(
                            uid: u.uid,
                            gids: gids.union([groupGid ?? -2])
                        )
                }
                out.append(
                    Change(
                        id: .reach(chain.item, user: u.osUser),
                        user: u.osUser,
                        kind: .conflict,
                        safety: .additive,
                        summary:
                            "\(u.osUser) cannot read \(chain.item): blocked at \(first.path) (mode \(octal(first.mode)), owner uid \(first.uid), group gid \(first.gid)\(first.acl.isEmpty ? "" : ", with an ACL"))",
                        fields: blocked.map { FieldChange("blocked at", $0.path, "needs \(permsText($0.need))") },
                        reason: fixable
                            ? "fix: the ACL change\(blocked.count == 1 ? "" : "s") on \(blocked.map(\.path).joined(separator: ", ")) in this plan (setup-host applies it)"
                            : "an ACL for group \(group) would not help here (the user owns it or has a named ACL entry); fix the modes by hand"
                    )
                )
                guard fixable else { continue }
                for e in blocked {
                    if fixes[e.path] == nil {
                        fixOrder.append(e.path)
                        fixes[e.path] = (e.need, e, [])
                    }
                    fixes[e.path]!.perms |= e.need
                    if !fixes[e.path]!.users.contains(u.osUser) { fixes[e.path]!.users.append(u.osUser) }
                }
            }
        }
        guard !fixOrder.isEmpty else { return out }
        // A grant inside the home that holds the config base opens that home to every managed account: refused
        // while a credential file there is readable by others (they could then read it by name).
        if let home = host.baseHome {
            let exposed = (settings.homeSecretFiles + wellKnownSecretFiles).map { joinPath(home, $0) }
                .filter {
                    let st = host.file($0)
                    return st.kind == .file && st.mode & 0o004 != 0
                }
            let opening = fixOrder.filter { $0 == home || $0.hasPrefix(home + "/") }
            if !exposed.isEmpty && !opening.isEmpty {
                for path in opening {
                    out.append(
                        Change(
                            id: .acl(path),
                            user: nil,
                            kind: .conflict,
                            safety: .additive,
                            summary:
                                "refused: granting group \(group) \(permsText(fixes[path]!.perms)) on \(path) would let every managed account read \(exposed.joined(separator: ", ")) (readable by others)",
                            fields: exposed.map {
                                FieldChange(
                                    "exposed",
                                    "\($0) mode \(octal(host.file($0).mode & 0o7777))",
                                    "needs go-rwx"
                                )
                            },
                            reason:
                                "chmod go-rwx \(exposed.joined(separator: " ")), then run setup-host again; or move the config base out of \(home)"
                        )
                    )
                }
                fixOrder.removeAll { opening.contains($0) }
                if fixOrder.isEmpty { return out }
            }
        }
        var deps: [ResourceID] = []
        if groupGid == nil {
            out.append(
                Change(
                    id: .group(group),
                    user: nil,
                    kind: .create,
                    safety: .additive,
                    summary: "create group \(group) (the config-base ACLs name it)",
                    fields: [FieldChange("group", nil, group)],
                    action: .createGroup(name: group)
                )
            )
            deps = [.group(group)]
        }
        for path in fixOrder {
            let f = fixes[path]!
            out.append(
                Change(
                    id: .acl(path),
                    user: nil,
                    kind: .update,
                    safety: .additive,
                    summary:
                        "grant group \(group) \(permsText(f.perms)) on \(path) so \(f.users.joined(separator: ", ")) can reach the config base",
                    fields: [FieldChange("acl", nil, "group:\(group):\(permsText(f.perms))")],
                    reason: "additive: one ACL entry, every other entry and the mode bits stay as they are",
                    action: .grantGroupACL(path: path, group: group, perms: permsText(f.perms)),
                    dependsOn: deps
                )
            )
        }
        return out
    }
}

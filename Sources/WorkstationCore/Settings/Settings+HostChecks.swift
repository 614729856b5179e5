import Foundation

/// The settings checks that need the host's account databases (pure: they read a snapshot).
extension Settings {
    /// The managed group and the tier groups, each with its settings key.
    var managedGroupKeys: [(key: String, group: String)] {
        [("accounts.group", accounts.group)]
            + [Tier.powerUser, .namespaceOwner].compactMap { t in
                accounts.tierGroups[t].map { ("accounts.tier_groups.\(t.rawValue)", $0) }
            }
    }

    /// The account whose home holds `path` (the deepest such home among regular accounts, uid in `UID_MIN...` or
    /// root; a system directory such as `/srv` as a home is a service account's, not taken as owning it), or nil.
    public func homeOwner(of path: String, in snapshot: HostSnapshot) -> PasswdEntry? {
        snapshot.passwd.filter { p in
            (p.uid == 0 || snapshot.uidRange.contains(p.uid)) && p.home.hasPrefix("/")
                && !systemDirectories.contains(p.home)
                && (path == p.home || path.hasPrefix(p.home.hasSuffix("/") ? p.home : p.home + "/"))
        }.max { $0.home.count < $1.home.count }
    }

    /// True when `name` is an admin: `tier: admin` in the roster, declared under `admins:`, or root.
    func isAdmin(_ name: String, _ roster: Roster) -> Bool {
        name == "root" || roster[name]?.isAdopted == true || admins.contains { $0.osUser == name }
    }

    /// Located errors for settings that would widen access on this host:
    /// - the managed group or a tier group exists as a system group (gid below `UID_MIN`, or within
    ///   `SYS_GID_MIN...SYS_GID_MAX` of `login.defs(5)`) or as an account's private group: every managed account
    ///   would be put in it. Groups workstation created (recorded in state), and groups with workstation's own
    ///   names (`workstation`, `workstation-*`) that are nobody's primary group, are its own;
    /// - `config_base` inside the home of an account that is not an admin (or under `home_root` in no admin's
    ///   home): the ACLs that let everyone reach the base would open that home.
    public func hostDiagnostics(roster: Roster, snapshot: HostSnapshot) -> [Diagnostic] {
        var out: [Diagnostic] = []
        for (key, g) in managedGroupKeys {
            guard let grp = snapshot.group(g), !snapshot.state.createdGroups.contains(g) else { continue }
            // workstation makes its own groups with `groupadd --system`: one of its names that is nobody's primary
            // group is taken as its own (state may have been lost; members added by hand or departed are kept).
            let ownName = g == "workstation" || g.hasPrefix("workstation-")
            if ownName && !snapshot.passwd.contains(where: { $0.gid == grp.gid }) { continue }
            if grp.gid < snapshot.uidRange.lowerBound || snapshot.systemGidRange.contains(grp.gid) {
                out.append(
                    Diagnostic(
                        location(of: key),
                        "\(key) '\(g)' is a system group on this host (gid \(grp.gid), below UID_MIN \(snapshot.uidRange.lowerBound) or in SYS_GID_MIN-SYS_GID_MAX \(snapshot.systemGidRange.lowerBound)-\(snapshot.systemGidRange.upperBound), login.defs); every managed account would join it, so name a group of its own (workstation creates it)"
                    )
                )
            } else if let owner = snapshot.passwd.first(where: { $0.name == g || $0.gid == grp.gid }) {
                out.append(
                    Diagnostic(
                        location(of: key),
                        "\(key) '\(g)' is the private group of account '\(owner.name)'; every managed account would join it and reach their files, so name a group of its own"
                    )
                )
            }
        }
        let home = accounts.homeRoot
        if let owner = homeOwner(of: configBase, in: snapshot) {
            if !isAdmin(owner.name, roster) {
                out.append(
                    Diagnostic(
                        location(of: "config_base"),
                        "config_base \(configBase) is inside the home of '\(owner.name)' (\(owner.home)), who is not an admin: the ACLs that let every person reach the base would open that home; move the base out (e.g. /srv/workstation/config-base) or declare '\(owner.name)' an admin (tier: admin, or admins: in settings)"
                    )
                )
            }
        } else if configBase.hasPrefix(home + "/") {
            let name = String(configBase.dropFirst(home.count + 1).prefix { $0 != "/" })
            if !isAdmin(name, roster) {
                out.append(
                    Diagnostic(
                        location(of: "config_base"),
                        "config_base \(configBase) is under home_root \(home) in no admin's home: the account '\(name)' could be made later and own it; move the base out (e.g. /srv/workstation/config-base)"
                    )
                )
            }
        }
        return out
    }
}

/// Names under a home that hold credentials besides `setup_host.secret_files`: SSH keys, `.netrc` (curl, git),
/// git's credential store, the Docker, AWS and GitHub CLI configurations, libpq's password file.
public let wellKnownSecretFiles: [String] = [
    ".ssh/id_rsa", ".ssh/id_ecdsa", ".ssh/id_ed25519", ".netrc", ".git-credentials",
    ".docker/config.json", ".aws/credentials", ".config/gh/hosts.yml", ".pgpass",
]

/// Cross-entry checks of a parsed roster: names, look-alike uniqueness (`lookAlikeSkeleton`: case, width,
/// compatibility forms and letters of other scripts folded together) of os_user, authentik_user, k8s_user and
/// email, pinned uids and ports, forbidden groups. Pure; reports into a collector so every problem is listed at once.
struct RosterValidator {
    var settings: Settings

    func check(_ roster: Roster, _ diags: DiagnosticCollector) {
        var osUsers: [String: RosterEntry] = [:]
        var authentik: [String: RosterEntry] = [:]
        var k8sUsers: [String: RosterEntry] = [:]
        var emails: [String: RosterEntry] = [:]
        /// Records `value` of `e` under its skeleton; a second person with the same skeleton is reported at the field.
        func unique(
            _ e: RosterEntry,
            _ field: String,
            _ value: String,
            in seen: inout [String: RosterEntry],
            _ fix: String
        ) {
            let key = lookAlikeSkeleton(value)
            guard let other = seen[key] else {
                seen[key] = e
                return
            }
            let theirs =
                field == "authentik_user"
                ? other.authentikUser : field == "k8s_user" ? other.k8sUser : other.email ?? ""
            let alike =
                theirs == value
                ? ""
                : " (it passes for their '\(printable(theirs))' once case, width and look-alike letters are folded)"
            diags.error(
                e.location(of: field),
                "\(field) '\(printable(value))' is mapped to both '\(other.osUser)' (line \(other.location.line)) and '\(e.osUser)'\(alike); \(fix)"
            )
        }
        var uids: [Int: RosterEntry] = [:]
        var ports: [Int: String] = [:]
        let reservedGroups = Set(settings.accounts.allManagedGroups)
        for e in roster.entries {
            if let p = accountNameProblem(e.osUser) {
                diags.error(e.location, "os_user '\(printable(e.osUser))' \(p)")
            } else if reservedGroups.contains(e.osUser) {
                diags.error(
                    e.location,
                    "os_user '\(e.osUser)' is the name of a group workstation manages; pick another name"
                )
            }
            if e.claudeLogin == .shared, settings.auth.claude?.token == nil {
                diags.error(
                    e.location(of: "claude_login"),
                    "claude_login: shared for '\(e.osUser)' needs the org's token in Vault: set auth.claude.token {path, key} in the settings (docs/auth.md), or use own-login"
                )
            }
            if let p = identityProblem(e.authentikUser) {
                diags.error(
                    e.location(of: "authentik_user"),
                    "authentik_user '\(printable(e.authentikUser))' of '\(e.osUser)' \(p)"
                )
            }
            if let p = identityProblem(e.k8sUser, maxLength: 253) {
                diags.error(e.location(of: "k8s_user"), "k8s_user '\(printable(e.k8sUser))' of '\(e.osUser)' \(p)")
            }
            if let other = osUsers[lookAlikeSkeleton(e.osUser)] {
                diags.error(
                    e.location,
                    "os_user '\(e.osUser)' duplicates '\(other.osUser)' (line \(other.location.line)) when case is ignored and look-alike characters are folded; two accounts must not pass for each other, rename one"
                )
            } else {
                osUsers[lookAlikeSkeleton(e.osUser)] = e
            }
            unique(
                e,
                "authentik_user",
                e.authentikUser,
                in: &authentik,
                "one IdP user maps to one os_user; fix one of them"
            )
            unique(
                e,
                "k8s_user",
                e.k8sUser,
                in: &k8sUsers,
                "one cluster identity belongs to one person; give each their own k8s_user"
            )
            if let email = e.email {
                unique(
                    e,
                    "email",
                    email,
                    in: &emails,
                    "the cluster binds roles to the email, so the two would share access; fix one of them"
                )
            }
            if let uid = e.uid {
                if let other = uids[uid] {
                    diags.error(
                        e.location,
                        "uid \(uid) of '\(e.osUser)' is already pinned for '\(other.osUser)' (line \(other.location.line))"
                    )
                } else {
                    uids[uid] = e
                }
            }
            for (unit, port) in e.ports.map({ ($0.key, $0.value) }) + (e.port.map { [("", $0)] } ?? []) {
                let label = unit.isEmpty ? "port" : "ports.\(unit)"
                if let service = settings.reservedPorts[port] {
                    diags.error(
                        e.location(of: unit.isEmpty ? "port" : "ports"),
                        "\(label) \(port) of '\(e.osUser)' is where \(service) listens; pin a free port of the unit's port_range"
                    )
                }
                if let other = ports[port] {
                    diags.error(e.location, "\(label) \(port) of '\(e.osUser)' is already pinned for \(other)")
                } else {
                    ports[port] = "'\(e.osUser)'"
                }
            }
            for unit in e.ports.keys where !settings.units.contains(where: { $0.template == unit }) {
                diags.error(
                    e.location,
                    "ports of '\(e.osUser)' names '\(unit)', which is not a per-user unit in settings (\(settings.units.map(\.template).joined(separator: ", ")))"
                )
            }
            if !e.isAdopted {
                for g in e.groups where settings.accounts.forbiddenGroups.contains(g) {
                    diags.error(
                        e.location,
                        "'\(e.osUser)' is \(e.tier.rawValue) and may not be in group '\(g)' (admin rights); only an admin may"
                    )
                }
            }
        }
        checkPlacements(roster, settings: settings, diags)
        for admin in settings.admins {
            if let e = roster[admin.osUser], !e.isAdopted {
                diags.error(
                    e.location,
                    "'\(e.osUser)' is declared as an admin in settings but has tier \(e.tier.rawValue) here; keep one declaration"
                )
            }
            if let other = authentik[lookAlikeSkeleton(admin.authentikUser)], other.osUser != admin.osUser {
                diags.error(
                    other.location(of: "authentik_user"),
                    "authentik_user '\(printable(other.authentikUser))' is also the settings admin '\(admin.osUser)' (authentik_user '\(printable(admin.authentikUser))'); one IdP user maps to one os_user, fix one of them"
                )
            }
        }
    }
}

/// Cross-entry checks of a parsed roster: names, case-folded uniqueness, pinned uids and ports, forbidden groups.
/// Pure; reports into a collector so every problem is listed at once.
struct RosterValidator {
    var settings: Settings

    func check(_ roster: Roster, _ diags: DiagnosticCollector) {
        var osUsers: [String: RosterEntry] = [:]
        var authentik: [String: RosterEntry] = [:]
        var uids: [Int: RosterEntry] = [:]
        var ports: [Int: String] = [:]
        let reservedGroups = Set(settings.accounts.allManagedGroups)
        for e in roster.entries {
            if let p = accountNameProblem(e.osUser) {
                diags.error(e.location, "os_user '\(printable(e.osUser))' \(p)")
            } else if reservedGroups.contains(e.osUser) {
                diags.error(e.location, "os_user '\(e.osUser)' is the name of a group workstation manages; pick another name")
            }
            if let p = identityProblem(e.authentikUser) {
                diags.error(e.location, "authentik_user '\(printable(e.authentikUser))' of '\(e.osUser)' \(p)")
            }
            if let p = identityProblem(e.k8sUser, maxLength: 253) {
                diags.error(e.location, "k8s_user '\(printable(e.k8sUser))' of '\(e.osUser)' \(p)")
            }
            let folded = e.osUser.lowercased()
            if let other = osUsers[folded] {
                diags.error(e.location, "os_user '\(e.osUser)' duplicates '\(other.osUser)' (line \(other.location.line)) when case is ignored")
            } else {
                osUsers[folded] = e
            }
            let fa = e.authentikUser.lowercased()
            if let other = authentik[fa] {
                diags.error(e.location, "authentik_user '\(e.authentikUser)' is mapped to both '\(other.osUser)' (line \(other.location.line)) and '\(e.osUser)'; one IdP user maps to one os_user")
            } else {
                authentik[fa] = e
            }
            if let uid = e.uid {
                if let other = uids[uid] {
                    diags.error(e.location, "uid \(uid) of '\(e.osUser)' is already pinned for '\(other.osUser)' (line \(other.location.line))")
                } else {
                    uids[uid] = e
                }
            }
            for (unit, port) in e.ports.map({ ($0.key, $0.value) }) + (e.port.map { [("", $0)] } ?? []) {
                let label = unit.isEmpty ? "port" : "ports.\(unit)"
                if let other = ports[port] {
                    diags.error(e.location, "\(label) \(port) of '\(e.osUser)' is already pinned for \(other)")
                } else {
                    ports[port] = "'\(e.osUser)'"
                }
            }
            for unit in e.ports.keys where !settings.units.contains(where: { $0.template == unit }) {
                diags.error(e.location, "ports of '\(e.osUser)' names '\(unit)', which is not a per-user unit in settings (\(settings.units.map(\.template).joined(separator: ", ")))")
            }
            if !e.isAdopted {
                for g in e.groups where settings.accounts.forbiddenGroups.contains(g) {
                    diags.error(e.location, "'\(e.osUser)' is \(e.tier.rawValue) and may not be in group '\(g)' (admin rights); only an admin may")
                }
            }
        }
        for admin in settings.admins {
            if let e = roster[admin.osUser], !e.isAdopted {
                diags.error(e.location, "'\(e.osUser)' is declared as an admin in settings but has tier \(e.tier.rawValue) here; keep one declaration")
            }
            if let other = authentik[admin.authentikUser.lowercased()], other.osUser != admin.osUser {
                diags.error(other.location, "authentik_user '\(other.authentikUser)' is also the settings admin '\(admin.osUser)'")
            }
        }
    }
}

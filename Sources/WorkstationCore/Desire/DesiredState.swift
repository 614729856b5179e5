import Foundation

/// One provisioned (non-admin) person: what their host-side resources should be.
public struct DesiredUser: Sendable, Hashable {
    public var entry: RosterEntry
    /// Pinned, existing, recorded or newly allocated uid.
    public var uid: Int
    /// `/home/alice`, or the existing account's home.
    public var home: String
    /// Groups workstation manages for this person (the `workstation` group, the tier group, roster extras).
    public var groups: [String]
    /// Unit template -> port.
    public var ports: [String: Int]
    /// True when the account already exists in `/etc/passwd`.
    public var accountExists: Bool

    public var osUser: String { entry.osUser }
}

/// What the host should look like: the output of `desire`, input of `plan`.
public struct DesiredState: Sendable, Hashable {
    public var users: [DesiredUser] = []
    /// Everyone routed in the derived files, admins included.
    public var identities: [RoutedIdentity] = []
    public var ttydUserMap = Data()
    public var dispatch = Data()
    /// Ports to record in state: template -> os_user -> port.
    public var ports: [String: [String: Int]] = [:]
    /// os_users workstation manages (state) that left the roster: offboard pending.
    public var departed: [String] = []
    /// Host-aware roster problems (a pinned uid another account holds...), located at the roster entry.
    public var diagnostics: [Diagnostic] = []
}

/// Computes the desired state. Pure: reads only its arguments.
///
/// uids: pinned, else the existing account's, else the one recorded in state, else the lowest free uid in
/// `UID_MIN...UID_MAX` that is no account's uid, no group's gid (so the user private group gets the same number)
/// and not retired. Ports: pinned, else recorded in state, else found in the existing dispatch.json, else the
/// lowest free port of the unit's range.
public func desire(roster: Roster, settings: Settings, snapshot: HostSnapshot) -> DesiredState {
    var out = DesiredState()
    let state = snapshot.state
    let rosterNames = Set(roster.entries.map(\.osUser))

    // Settings that would widen access on this host (system groups, a config base in a person's home).
    out.diagnostics += settings.hostDiagnostics(roster: roster, snapshot: snapshot)

    // Host-aware checks, located at the roster entry.
    for e in roster.entries {
        if let pinned = e.uid, let holder = snapshot.passwd.first(where: { $0.uid == pinned && $0.name != e.osUser }) {
            out.diagnostics.append(
                Diagnostic(
                    e.location,
                    "uid \(pinned) of '\(e.osUser)' is already used by account '\(holder.name)'; pick a free uid or remove the pin"
                )
            )
        }
        if let pinned = e.uid, state.retiredUids.contains(pinned), snapshot.account(e.osUser) == nil {
            out.diagnostics.append(
                Diagnostic(
                    e.location,
                    "uid \(pinned) of '\(e.osUser)' belonged to an archived account and is retired; pick another"
                )
            )
        }
        if !e.isAdopted, let acct = snapshot.account(e.osUser), acct.uid < snapshot.uidRange.lowerBound {
            out.diagnostics.append(
                Diagnostic(e.location, "os_user '\(e.osUser)' is a system account (uid \(acct.uid)); pick another name")
            )
        }
        if !e.isAdopted, let acct = snapshot.account(e.osUser),
            !isDirectChild(acct.home, of: settings.accounts.homeRoot)
        {
            out.diagnostics.append(
                Diagnostic(
                    e.location,
                    "'\(e.osUser)' exists with home \(acct.home), which is not a directory directly under accounts.home_root (\(settings.accounts.homeRoot)); workstation writes only into such homes, so fix the account's home (usermod -d) or home_root"
                )
            )
        }
        if !e.isAdopted {
            for g in e.groups {
                if let host = snapshot.group(g), host.gid < snapshot.uidRange.lowerBound,
                    !state.createdGroups.contains(g)
                {
                    out.diagnostics.append(
                        Diagnostic(
                            e.location,
                            "group '\(g)' of '\(e.osUser)' is a system group (gid \(host.gid)); extra groups must be ordinary groups (gid \(snapshot.uidRange.lowerBound) or above)"
                        )
                    )
                } else if g != e.osUser, snapshot.account(g) != nil || roster[g] != nil {
                    out.diagnostics.append(
                        Diagnostic(
                            e.location,
                            "group '\(g)' of '\(e.osUser)' is the private group of account '\(g)'; membership would give access to their files"
                        )
                    )
                }
            }
        }
        if !e.isAdopted, let pinned = e.uid, let acct = snapshot.account(e.osUser), acct.uid != pinned {
            out.diagnostics.append(
                Diagnostic(
                    e.location,
                    "'\(e.osUser)' exists with uid \(acct.uid), but the roster pins \(pinned); workstation never renumbers an account, fix the pin"
                )
            )
        }
    }

    // uids.
    var takenUids = Set(snapshot.passwd.map(\.uid)).union(snapshot.groups.map(\.gid)).union(state.retiredUids)
    takenUids.formUnion(roster.entries.compactMap(\.uid))
    for (name, a) in state.accounts where !rosterNames.contains(name) { takenUids.insert(a.uid) }
    var uids: [String: Int] = [:]
    let accountUids = Set(snapshot.passwd.map(\.uid))
    for e in roster.entries where !e.isAdopted {
        if let acct = snapshot.account(e.osUser) {
            uids[e.osUser] = acct.uid
        } else if let pinned = e.uid {
            uids[e.osUser] = pinned
        } else if let recorded = state.accounts[e.osUser]?.uid, !accountUids.contains(recorded) {
            uids[e.osUser] = recorded
            takenUids.insert(recorded)
        }
    }
    // Taken uids only accumulate in this loop, so each search resumes where the last one ended (linear in all).
    var nextUid = snapshot.uidRange.lowerBound
    for e in roster.entries where !e.isAdopted && uids[e.osUser] == nil {
        var candidate = nextUid
        while takenUids.contains(candidate) && candidate < snapshot.uidRange.upperBound { candidate += 1 }
        if takenUids.contains(candidate) {
            out.diagnostics.append(
                Diagnostic(
                    e.location,
                    "no free uid left for '\(e.osUser)' in UID_MIN-UID_MAX (\(snapshot.uidRange.lowerBound)-\(snapshot.uidRange.upperBound), login.defs); pin a uid or widen the range"
                )
            )
        }
        uids[e.osUser] = candidate
        takenUids.insert(candidate)
        nextUid = candidate
    }

    // Identities for the derived files: roster entries, then admins declared in settings.
    struct Person {
        var os: String
        var ak: String
        var pinned: [String: Int]
        var adopted: Bool
    }
    var people: [Person] = roster.entries.map { e in
        var pinned = e.ports
        if let p = e.port { pinned[settings.primaryUnit.template] = p }
        return Person(os: e.osUser, ak: e.authentikUser, pinned: pinned, adopted: e.isAdopted)
    }
    for a in settings.admins where roster[a.osUser] == nil {
        people.append(
            Person(
                os: a.osUser,
                ak: a.authentikUser,
                pinned: a.port.map { [settings.primaryUnit.template: $0] } ?? [:],
                adopted: true
            )
        )
    }

    // Ports: admins take only the primary unit (their other units are their own business).
    // The live dispatch.json is decoded only when someone's port is checked or chosen against it (a pin, or no
    // port on record): on a converged host nobody's is, and a large file costs more to decode than the rest of desire.
    let dispatchBytes = snapshot.path(settings.derived.dispatch).content ?? Data()
    lazy var existingDispatch = adoptablePorts(fromDispatch: dispatchBytes)
    var claimed: [Int: String] = [:]  // port -> os_user holding it by pin or state record
    for p in people { for port in p.pinned.values { claimed[port] = p.os } }
    // A pin must not take a port someone else already holds (recorded, or routed by the live dispatch.json):
    // moving a working person's port silently would restart their instance and break their route.
    var holders: [Int: String] = [:]
    for (_, byUser) in state.ports { for (os, port) in byUser { holders[port] = os } }
    // Names routed to each port by the live dispatch.json, sorted so the one reported is stable.
    lazy var liveHolders: [Int: [String]] = {
        var byPort: [Int: [String]] = [:]
        for (name, port) in existingDispatch { byPort[port, default: []].append(name) }
        for k in byPort.keys { byPort[k]!.sort() }
        return byPort
    }()
    for p in people where !p.pinned.isEmpty {
        for (template, port) in p.pinned.sorted(by: { $0.key < $1.key }) {
            let holder =
                holders[port].flatMap { $0 == p.os ? nil : $0 }
                ?? liveHolders[port]?.first { $0 != p.ak && $0 != p.os }
            if let holder, let e = roster[p.os] {
                out.diagnostics.append(
                    Diagnostic(
                        e.location,
                        "port \(port) pinned for \(template)\(p.os) is already held by \(holder); pick a free port (workstation never moves a working person's port)"
                    )
                )
            }
        }
    }
    for (_, byUser) in state.ports { for (os, port) in byUser where claimed[port] == nil { claimed[port] = os } }
    lazy var inLiveDispatch = Set(existingDispatch.values)
    var chosen = Set<Int>()
    var ports: [String: [String: Int]] = [:]
    for unit in settings.units {
        // As with uids: ports below the last one handed out stay taken, so the search resumes there.
        var nextPort = unit.portRange.lowerBound
        for p in people where !(p.adopted && unit != settings.primaryUnit) {
            func free(_ port: Int) -> Bool { (claimed[port] == nil || claimed[port] == p.os) && !chosen.contains(port) }
            var port: Int
            if let pin = p.pinned[unit.template] {
                port = pin
            } else if let rec = state.ports[unit.template]?[p.os], (1024...65535).contains(rec), free(rec) {
                port = rec
            } else if unit == settings.primaryUnit, let found = existingDispatch[p.ak] ?? existingDispatch[p.os],
                unit.portRange.contains(found), free(found)
            {
                port = found
            } else {
                func taken(_ port: Int) -> Bool { !free(port) || claimed[port] != nil || inLiveDispatch.contains(port) }
                port = nextPort
                while port < unit.portRange.upperBound && taken(port) { port += 1 }
                nextPort = port
                if taken(port) {
                    // Every port of the range is in use: handing out the last one again would route two people to one port.
                    let at = roster[p.os]?.location ?? SourceLocation(file: "workstation.yaml", line: 0, column: 0)
                    out.diagnostics.append(
                        Diagnostic(
                            at,
                            "no free port left for '\(p.os)' in the port_range of \(unit.template) (\(unit.portRange.lowerBound)-\(unit.portRange.upperBound), \(unit.portRange.count) ports); widen port_range in workstation.yaml"
                        )
                    )
                }
            }
            chosen.insert(port)
            ports[unit.template, default: [:]][p.os] = port
        }
    }
    // Keep ports of departed users reserved until they are archived.
    for (template, byUser) in state.ports {
        for (os, port) in byUser
        where !rosterNames.contains(os) && !settings.admins.contains(where: { $0.osUser == os }) {
            if state.accounts[os] != nil { ports[template, default: [:]][os] = port }
        }
    }
    out.ports = ports

    out.identities = people.map { p in
        RoutedIdentity(
            authentikUser: p.ak,
            osUser: p.os,
            ports: settings.units.reduce(into: [:]) { acc, u in
                if let port = ports[u.template]?[p.os] { acc[u.template] = port }
            },
            adopted: p.adopted
        )
    }
    // The derived files render on another thread while the users are built (for a large roster, dispatch.json is a
    // few hundred kilobytes).
    let identities = out.identities
    let primary = settings.primaryUnit.template
    let (finalUids, finalPorts) = (uids, ports)
    let ((ttydUserMap, dispatch), users) = concurrently(
        { (DerivedFileRenderer.ttydUserMap(identities), DerivedFileRenderer.dispatch(identities, primary: primary)) },
        { desiredUsers(roster, settings, snapshot, uids: finalUids, ports: finalPorts) }
    )
    out.users = users
    out.departed = state.accounts.keys.filter { !rosterNames.contains($0) }.sorted()
    out.ttydUserMap = ttydUserMap
    out.dispatch = dispatch
    return out
}

/// The provisioned people of `roster`, in roster order (accounts that exist keep their home).
private func desiredUsers(
    _ roster: Roster,
    _ settings: Settings,
    _ snapshot: HostSnapshot,
    uids: [String: Int],
    ports: [String: [String: Int]]
) -> [DesiredUser] {
    var users: [DesiredUser] = []
    for e in roster.entries where !e.isAdopted {
        let acct = snapshot.account(e.osUser)
        var groups = [settings.accounts.group]
        if let tg = settings.accounts.tierGroups[e.tier] { groups.append(tg) }
        for g in e.groups where !groups.contains(g) { groups.append(g) }
        let userPorts = settings.units.reduce(into: [String: Int]()) { acc, u in
            if let p = ports[u.template]?[e.osUser] { acc[u.template] = p }
        }
        users.append(
            DesiredUser(
                entry: e,
                uid: uids[e.osUser]!,
                home: acct?.home ?? joinPath(settings.accounts.homeRoot, e.osUser),
                groups: groups,
                ports: userPorts,
                accountExists: acct != nil
            )
        )
    }
    return users
}

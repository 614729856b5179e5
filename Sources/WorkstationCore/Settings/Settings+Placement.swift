import Foundation
import Yams

/// Checks that keep root's own file from widening access by mistake: where root writes and what it trusts
/// (placement), which groups the managed accounts get (groups), and which ports the per-person units take (ports).
/// The checks that need the host (existing groups' gids, symlinks and world-writable directories on the way to a
/// path) are `Settings.hostDiagnostics` and the host's `Observer.settingsPathDiagnostics`.

/// Directories that can never be the parent of homes, nor a directory workstation writes into as a whole.
let systemDirectories: Set<String> = [
    "/", "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/boot", "/dev", "/proc", "/sys",
    "/run", "/root", "/var", "/tmp", "/opt", "/srv", "/usr/local", "/var/lib", "/home",
]
/// Files root's own identity depends on; no derived file may be one of them.
let protectedFiles: Set<String> = [
    "/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow", "/etc/sudoers", "/etc/login.defs",
    "/etc/subuid", "/etc/subgid", "/etc/pam.conf", "/etc/fstab", "/etc/hosts", "/etc/crontab",
]
/// Directories every account may write into (sticky or not): a path below one can be created or swapped by anyone
/// first (`/tmp` races, CWE-377), and pseudo file systems that are not storage.
let sharedWritableDirectories: [String] = [
    "/tmp", "/var/tmp", "/dev/shm", "/run/shm", "/run/lock", "/var/lock", "/run/user",
    "/var/crash", "/var/mail", "/var/spool/mail", "/proc", "/sys", "/dev",
]
/// Groups whose members hold rights over the whole host (sudo(8), polkit, the container and VM daemons, the
/// journal and the raw disks): never a group workstation puts every managed account in.
public let adminGroupNames: Set<String> = [
    "root", "sudo", "wheel", "adm", "admin", "staff", "shadow", "disk", "kmem", "sys",
    "docker", "lxd", "incus-admin", "libvirt", "kvm", "systemd-journal", "lpadmin", "sudoers",
    "netdev", "plugdev", "tty", "utmp", "dialout", "operator",
]

/// One path from settings that root writes to, or reads as trusted input.
public struct SettingsPath: Sendable, Hashable {
    /// The dotted key, e.g. `offboard.backup_directory`.
    public var key: String
    /// The normalized absolute host path.
    public var path: String
    /// True for a directory root writes into (the path itself must not be a link either).
    public var isDirectory: Bool
}

extension Settings {
    /// Every path root writes to or reads as trusted input: state, backups, skel, the managed layer, derived files,
    /// the profile scripts, the JWKS, the installed binary, token and CA files.
    public var rootPaths: [SettingsPath] {
        var out = [
            SettingsPath(key: "state_directory", path: stateDirectory, isDirectory: true),
            SettingsPath(key: "offboard.backup_directory", path: offboard.backupDirectory, isDirectory: true),
            SettingsPath(key: "setup_host.skel", path: setupHost.skel, isDirectory: true),
            SettingsPath(key: "setup_host.managed_directory", path: setupHost.managedDirectory, isDirectory: true),
            SettingsPath(key: "setup_host.profile_script", path: setupHost.profileScript, isDirectory: false),
            SettingsPath(key: "derived.ttyd_user_map", path: derived.ttydUserMap, isDirectory: false),
            SettingsPath(key: "derived.dispatch", path: derived.dispatch, isDirectory: false),
        ]
        // Unset, the binary is the package's or the local install's, both fixed system paths.
        if let binary = setupHost.binary {
            out.append(SettingsPath(key: "setup_host.binary", path: binary, isDirectory: false))
        }
        if let a = authentik {
            out.append(SettingsPath(key: "authentik.jwks_file", path: a.jwksFile, isDirectory: false))
            if let f = a.token.file {
                out.append(SettingsPath(key: "authentik.token_file", path: f, isDirectory: false))
            }
            if let f = a.caFile { out.append(SettingsPath(key: "authentik.ca_file", path: f, isDirectory: false)) }
        }
        if let v = vault {
            out.append(SettingsPath(key: "vault.profile_snippet", path: v.profileSnippet, isDirectory: false))
            if let f = v.token.file { out.append(SettingsPath(key: "vault.token_file", path: f, isDirectory: false)) }
            if let f = v.caFile { out.append(SettingsPath(key: "vault.ca_file", path: f, isDirectory: false)) }
        }
        if let k = kubernetes {
            if let f = k.k8sUsersFile {
                out.append(SettingsPath(key: "kubernetes.k8s_users_file", path: f, isDirectory: false))
            }
            if let f = k.caFile { out.append(SettingsPath(key: "kubernetes.ca_file", path: f, isDirectory: false)) }
        }
        return out
    }

    /// Refuses placements that would let a user's symlink, another account or a typo redirect root's writes or
    /// replace what root trusts: any root path (`rootPaths`) or the config base under `home_root` (the config base
    /// may be in an admin's home; `hostDiagnostics` checks whose) or under a directory every account can write
    /// (`/tmp`, `/dev/shm`...), a system directory as a whole directory setting, a derived file that is an
    /// account database, a system directory as `home_root`. Paths are normalized before (`absolutePath`).
    func checkPlacement(_ r: KeyedReader, _ diags: DiagnosticCollector) {
        let home = accounts.homeRoot
        if systemDirectories.contains(home) && home != "/home" || home == "/" {
            diags.error(
                location(of: "accounts.home_root"),
                "accounts.home_root \(home) is a system directory; homes live in a directory of their own such as /home"
            )
        }
        func inside(_ p: String, _ dir: String) -> Bool { p == dir || p.hasPrefix(dir == "/" ? "/" : dir + "/") }
        for rp in rootPaths {
            let at = location(of: rp.key)
            if inside(rp.path, home) {
                diags.error(
                    at,
                    rp.key.hasPrefix("derived.")
                        ? "derived file \(rp.path) is under home_root \(home), where users control the path; put it under /etc"
                        : "\(rp.key) \(rp.path) is under home_root \(home), where users control the path; root's own files live outside homes, e.g. \(Settings.defaultPath(rp.key))"
                )
            }
            if let shared = sharedWritableDirectories.first(where: { inside(rp.path, $0) }) {
                diags.error(
                    at,
                    "\(rp.key) \(rp.path) is under \(shared), where any account can create or swap it first; use a root-owned place such as \(Settings.defaultPath(rp.key))"
                )
            }
            if rp.isDirectory && systemDirectories.contains(rp.path) {
                diags.error(
                    at,
                    "\(rp.key) \(rp.path) is a system directory; give it a directory of its own such as \(Settings.defaultPath(rp.key))"
                )
            }
        }
        for (key, path) in [("derived.ttyd_user_map", derived.ttydUserMap), ("derived.dispatch", derived.dispatch)] {
            if protectedFiles.contains(path) || path.hasPrefix("/etc/sudoers.d/") || path.hasPrefix("/etc/pam.d/") {
                diags.error(
                    location(of: key),
                    "derived file \(path) would overwrite a system file; pick a path of its own such as /etc/ttyd-user-map"
                )
            }
        }
        if derived.ttydUserMap == derived.dispatch {
            diags.error(location(of: "derived"), "derived.ttyd_user_map and derived.dispatch are the same file")
        }
        if let shared = sharedWritableDirectories.first(where: { inside(configBase, $0) }) {
            diags.error(
                location(of: "config_base"),
                "config_base \(configBase) is under \(shared), where any account can replace what every person inherits; keep it in a root- or admin-owned directory such as /srv/workstation/config-base"
            )
        }
        if systemDirectories.contains(configBase) {
            diags.error(
                location(of: "config_base"),
                "config_base \(configBase) is a system directory; the config base is a checkout of its own, e.g. /srv/workstation/config-base"
            )
        }
    }

    /// The default of a path setting, for messages.
    static func defaultPath(_ key: String) -> String {
        let d = Settings()
        switch key {
        case "state_directory": return d.stateDirectory
        case "offboard.backup_directory": return d.offboard.backupDirectory
        case "setup_host.skel": return d.setupHost.skel
        case "setup_host.managed_directory": return d.setupHost.managedDirectory
        case "setup_host.profile_script": return d.setupHost.profileScript
        case "setup_host.binary": return d.setupHost.binary ?? SetupHostSettings.localBinary
        case "derived.ttyd_user_map": return d.derived.ttydUserMap
        case "derived.dispatch": return d.derived.dispatch
        case "authentik.jwks_file": return AuthentikSettings(url: "").jwksFile
        case "vault.profile_snippet": return VaultSettings(url: "").profileSnippet
        default: return "/etc/workstation/\(key.split(separator: ".").last ?? "")"
        }
    }

    /// The managed group and the tier groups must not give what only an admin may hold: an admin group
    /// (`adminGroupNames`, `accounts.admin_group`), a group non-admins must never be in (`accounts.forbidden_groups`,
    /// `cutover.shared_code_group`), or a system group's name (`reservedAccountNames`). Every managed account is put in
    /// them, so a wrong name here would hand that group to everyone.
    func checkGroups(_ diags: DiagnosticCollector) {
        var named: [(key: String, group: String)] = [("accounts.group", accounts.group)]
        for tier in [Tier.powerUser, .namespaceOwner] {
            if let g = accounts.tierGroups[tier] { named.append(("accounts.tier_groups.\(tier.rawValue)", g)) }
        }
        for (key, g) in named {
            let why: String? =
                adminGroupNames.contains(g) || g == accounts.adminGroup
                ? "is an admin group: its members hold rights over the host"
                : accounts.forbiddenGroups.contains(g)
                    ? "is in accounts.forbidden_groups, which a non-admin must never hold"
                    : g == cutover.sharedCodeGroup
                        ? "is cutover.shared_code_group, which people leave at cutover"
                        : reservedAccountNames.contains(g) && g != "workstation"
                            ? "is a system group's name"
                            : nil
            if let why {
                diags.error(
                    location(of: key),
                    "\(key) '\(g)' \(why); every managed account is put in it, so name a group of its own such as \(key == "accounts.group" ? "workstation" : "workstation-\(key.split(separator: ".").last ?? "")")"
                )
            }
        }
    }

    /// Ports other services on this host listen on, from these settings: the dispatcher's `dispatch.listen` and
    /// `dispatch.metrics_listen` (default `127.0.0.1:9464`) when they are TCP, and the loopback URLs of the services
    /// (Authentik, Vault, the API server, the OIDC issuer, the JWKS). Port -> what holds it.
    func otherServicePorts(_ doc: YAMLValue?) -> [Int: String] {
        var out: [Int: String] = [9464: "dispatch.metrics_listen (default 127.0.0.1:9464)"]
        if let doc, case .mapping(let m) = doc.node, let d = m["dispatch"], case .mapping(let dm) = d {
            out[9464] = nil
            var metricsSet = false
            for key in ["listen", "metrics_listen"] {
                guard let text = dm[key]?.string else { continue }
                if key == "metrics_listen" { metricsSet = true }
                if !text.hasPrefix("unix:"), let colon = text.lastIndex(of: ":"),
                    let port = Int(text[text.index(after: colon)...])
                {
                    out[port] = "dispatch.\(key) (\(text))"
                }
            }
            if !metricsSet { out[9464] = "dispatch.metrics_listen (default 127.0.0.1:9464)" }
        }
        let urls: [(String, String?)] = [
            ("authentik.url", authentik?.url), ("authentik.jwks_url", authentik?.jwksURL), ("vault.url", vault?.url),
            ("kubernetes.server", kubernetes?.server), ("kubernetes.oidc_issuer_url", kubernetes?.oidcIssuerURL),
        ]
        for (key, u) in urls {
            guard let u, let url = URL(string: u), let host = url.host?.lowercased() else { continue }
            let loopback = host == "localhost" || host.hasPrefix("127.") || host == "::1" || host == "[::1]"
            guard loopback else { continue }
            out[url.port ?? (url.scheme == "https" ? 443 : 80)] = "\(key) (\(u))"
        }
        return out
    }

    /// Per-person port ranges (`units[].port_range`) must not overlap each other nor a port another service
    /// listens on (`otherServicePorts`): a person's instance would take it, or be refused it.
    mutating func checkPorts(_ doc: YAMLValue?, _ diags: DiagnosticCollector) {
        let others = otherServicePorts(doc)
        reservedPorts = others
        for (i, unit) in units.enumerated() {
            let at = locations["units[\(i)].port_range"] ?? locations["units[\(i)]"] ?? location(of: "units")
            for (port, holder) in others.sorted(by: { $0.key < $1.key }) where unit.portRange.contains(port) {
                diags.error(
                    at,
                    "port_range \(unit.portRange.lowerBound)-\(unit.portRange.upperBound) of \(unit.template) holds port \(port), where \(holder) listens; move the range (or that listener) so they do not overlap"
                )
            }
            for other in units[..<i] where other.portRange.overlaps(unit.portRange) {
                diags.error(
                    at,
                    "port_range \(unit.portRange.lowerBound)-\(unit.portRange.upperBound) of \(unit.template) overlaps \(other.portRange.lowerBound)-\(other.portRange.upperBound) of \(other.template); two people's instances could get one port, give each unit a range of its own"
                )
            }
        }
    }
}

/// The location of every key of the settings file to three levels, by dotted path (`units[0].port_range` for
/// list items); `""` is the document.
func keyLocations(_ doc: YAMLValue) -> [String: SourceLocation] {
    var out: [String: SourceLocation] = ["": doc.location]
    func walk(_ v: YAMLValue, _ prefix: String, _ depth: Int) {
        guard depth < 3 else { return }
        if case .sequence(let seq) = v.node {
            for (i, item) in seq.enumerated() {
                let iv = YAMLValue(node: item, file: v.file)
                out["\(prefix)[\(i)]"] = iv.location
                walk(iv, "\(prefix)[\(i)]", depth + 1)
            }
            return
        }
        guard case .mapping(let m) = v.node else { return }
        for i in m.startIndex..<m.endIndex {
            let (k, value) = m[i]
            guard let key = k.string else { continue }
            let path = prefix.isEmpty ? key : prefix + "." + key
            let vv = YAMLValue(node: value, file: v.file)
            out[path] = vv.isNull ? YAMLValue(node: k, file: v.file).location : vv.location
            walk(vv, path, depth + 1)
        }
    }
    walk(doc, "", 0)
    return out
}

/// An absolute path, normalized the way the kernel would walk it when no component is a symlink: repeated
/// slashes collapsed, `.` dropped, `..` taking away the component before it (never above `/`), no trailing slash.
/// nil for a relative path or one with a line break or NUL.
public func normalizedAbsolutePath(_ p: String) -> String? {
    guard p.hasPrefix("/"), !p.contains("\n"), !p.contains("\0") else { return nil }
    var parts: [Substring] = []
    for c in p.split(separator: "/", omittingEmptySubsequences: true) {
        if c == "." { continue }
        if c == ".." {
            _ = parts.popLast()
            continue
        }
        parts.append(c)
    }
    return "/" + parts.joined(separator: "/")
}

/// An absolute path from settings, normalized (`normalizedAbsolutePath`) before any check compares it.
func absolutePath(_ v: YAMLValue, _ what: String, _ diags: DiagnosticCollector) -> String? {
    guard let p = v.string(what, diags) else { return nil }
    guard let n = normalizedAbsolutePath(p) else {
        diags.error(v.location, "\(what) must be an absolute path on one line, got '\(printable(p))'")
        return nil
    }
    return n
}

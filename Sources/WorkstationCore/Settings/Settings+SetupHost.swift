import Foundation
import Yams

/// A JSON value for the managed settings (`managed-settings.json`), read from YAML with its types kept
/// (`true`/`false` plain scalars are booleans, plain decimal integers are numbers, everything else a string).
public indirect enum ManagedValue: Sendable, Hashable, Codable {
    case string(String)
    case integer(Int)
    case number(Double)
    case bool(Bool)
    case array([ManagedValue])
    case object([String: ManagedValue])
    case null

    /// A `JSONSerialization` object.
    public var jsonObject: Any {
        switch self {
        case .string(let s): s
        case .integer(let i): i
        case .number(let d): d
        case .bool(let b): b
        case .array(let a): a.map(\.jsonObject)
        case .object(let o): o.mapValues(\.jsonObject)
        case .null: NSNull()
        }
    }

    /// From a `JSONSerialization` object (reading an existing file); nil for anything else.
    public init?(json: Any) {
        switch json {
        case let s as String: self = .string(s)
        case let n as NSNumber:
            if String(cString: n.objCType) == "c" {
                self = .bool(n.boolValue)
            } else if n.doubleValue == n.doubleValue.rounded(), abs(n.doubleValue) < 1e15 {
                self = .integer(n.intValue)
            } else {
                self = .number(n.doubleValue)
            }
        case let a as [Any]: self = .array(a.compactMap(ManagedValue.init(json:)))
        case let o as [String: Any]: self = .object(o.compactMapValues(ManagedValue.init(json:)))
        case is NSNull: self = .null
        default: return nil
        }
    }

    var isEmptyValue: Bool {
        switch self {
        case .null: true
        case .string(let s): s.isEmpty
        default: false
        }
    }
}

/// One variable of the shared shell environment (`/etc/profile.d/workstation.sh`).
public struct EnvironmentVariable: Sendable, Hashable, Codable {
    public var name: String
    public var value: String
    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// `setup_host:` in workstation.yaml: what `workstation setup-host` converges machine-wide (spec section 4, the
/// managed layer, skel, profile.d, the tool manifest, the reconcile timer). Every key has a default.
public struct SetupHostSettings: Sendable, Hashable, Codable {
    /// The org guidance, relative to the config base; copied to `<managed dir>/CLAUDE.md` and the `claudeMd` key.
    public var guidanceFile: String = "CLAUDE.md"
    /// Claude Code's managed directory on Linux (`managed-settings.json`, `managed-settings.d/`, `CLAUDE.md`).
    public var managedDirectory: String = "/etc/claude-code"
    /// Further managed settings keys (no secrets: the guard refuses them when settings are read).
    public var managedSettings: [String: ManagedValue] = [:]
    /// The shared shell environment script.
    public var profileScript: String = "/etc/profile.d/workstation.sh"
    /// Variables exported by the profile script, in order (no secrets).
    public var profileEnvironment: [EnvironmentVariable] = []
    /// The skeleton directory `useradd -m` copies; `.claude/<item>` links go in it.
    public var skel: String = "/etc/skel"
    /// Debian packages every workstation needs (the tool manifest), checked in `/var/lib/dpkg/status`.
    ///
    /// Every default is in Debian 12's main archive. kubectl is not (Debian 12 has only `kubernetes-client` 1.20,
    /// which conflicts with the `kubectl` package): it comes from the Kubernetes apt repository `pkgs.k8s.io`
    /// (an operator step, docs/auth.md); add `kubectl` here once that repository is configured. `doctor` checks it.
    public var packages: [String] = ["acl", "git", "git-crypt"]
    /// How often the reconcile timer runs after boot (a `systemd.time(7)` span such as `15min`).
    public var reconcileInterval: String = "15min"
    /// Where the workstation binary is installed; the reconcile service runs `<binary> apply`. nil (the default):
    /// `packagedBinary` where it exists under the root (the Debian package installs it), else `localBinary`.
    public var binary: String?
    /// Where the Debian package (scripts/package) installs the binary.
    public static let packagedBinary = "/usr/bin/workstation"
    /// Where a binary built from source is installed (README, "On a real host").
    public static let localBinary = "/usr/local/bin/workstation"
    /// Files under each managed home that hold credentials: owned by the user, no group or other bits.
    public var secretFiles: [String] = [
        ".claude/settings.json", ".claude.json", ".claude/.credentials.json", ".vault-token", ".kube/config",
    ]

    public init() {}

    /// `<managed dir>/managed-settings.json`.
    public var managedSettingsPath: String { joinPath(managedDirectory, "managed-settings.json") }
    /// workstation's drop-in, used when a managed-settings.json it did not write exists.
    public var managedDropInPath: String { joinPath(managedDirectory, "managed-settings.d", "50-workstation.json") }
    /// `<managed dir>/CLAUDE.md`.
    public var managedGuidancePath: String { joinPath(managedDirectory, "CLAUDE.md") }

    static let keys = [
        "guidance_file", "managed_directory", "managed_settings", "profile_script", "profile_env", "skel", "packages",
        "reconcile_interval", "binary", "secret_files",
    ]

    /// Parses `setup_host:`. Secret-looking managed settings and profile variables are errors located at the key.
    public static func parse(_ v: YAMLValue, _ diags: DiagnosticCollector) -> SetupHostSettings {
        var s = SetupHostSettings()
        guard let r = KeyedReader(v, what: "setup_host", known: keys, diags) else { return s }
        if let v = r["guidance_file"], let f = v.string("setup_host.guidance_file", diags) {
            if f.isEmpty || f.hasPrefix("/") || f.split(separator: "/").contains("..") {
                diags.error(
                    v.location,
                    "setup_host.guidance_file must be a path relative to config_base, e.g. CLAUDE.md"
                )
            } else {
                s.guidanceFile = f
            }
        }
        if let v = r["managed_directory"], let p = absolutePath(v, "setup_host.managed_directory", diags) {
            s.managedDirectory = p
        }
        if let v = r["profile_script"], let p = absolutePath(v, "setup_host.profile_script", diags) {
            if !p.hasSuffix(".sh") {
                diags.error(v.location, "setup_host.profile_script must end in .sh, or login shells will not source it")
            }
            s.profileScript = p
        }
        if let v = r["skel"], let p = absolutePath(v, "setup_host.skel", diags) { s.skel = p }
        if let v = r["binary"], let p = absolutePath(v, "setup_host.binary", diags) { s.binary = p }
        if let v = r["reconcile_interval"], let t = v.string("setup_host.reconcile_interval", diags) {
            let unit = t.drop { $0.isNumber }
            if t.first?.isNumber != true || !["s", "min", "h"].contains(String(unit)) || t.hasPrefix("0") {
                diags.error(v.location, "setup_host.reconcile_interval must be a span like 15min, 1h or 90s")
            } else {
                s.reconcileInterval = t
            }
        }
        if let v = r["packages"], let list = v.stringList("setup_host.packages", diags) {
            for (name, loc) in list where !isDebianPackageName(name) {
                diags.error(loc, "'\(printable(name))' is not a Debian package name (lowercase letters, digits, + - .)")
            }
            s.packages = list.map(\.0)
        }
        if let v = r["secret_files"], let list = v.stringList("setup_host.secret_files", diags) {
            for (rel, loc) in list
            where rel.isEmpty || rel.hasPrefix("/")
                || rel.split(separator: "/").contains(where: { $0 == ".." || $0 == "." })
            {
                diags.error(
                    loc,
                    "secret file '\(printable(rel))' must be a path relative to the home, e.g. .kube/config"
                )
            }
            s.secretFiles = list.map(\.0)
        }
        if let v = r["profile_env"], let pairs = v.mapping("setup_host.profile_env", diags) {
            for p in pairs {
                guard let value = p.value.string("setup_host.profile_env.\(p.key)", diags) else { continue }
                if p.key.isEmpty || p.key.first!.isNumber
                    || !p.key.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") })
                {
                    diags.error(p.keyValue.location, "'\(printable(p.key))' is not a shell variable name")
                    continue
                }
                if let pattern = SecretGuard.secretName(p.key) {
                    diags.error(
                        p.keyValue.location,
                        "profile_env key \(p.key) looks like a secret (name matches \(pattern)); /etc/profile.d is read by every user: \(SecretGuard.advice)"
                    )
                } else if let why = SecretGuard.tokenShaped(value) {
                    diags.error(
                        p.value.location,
                        "profile_env key \(p.key) has a value that looks like \(why); /etc/profile.d is read by every user: \(SecretGuard.advice)"
                    )
                }
                s.profileEnvironment.append(EnvironmentVariable(name: p.key, value: value))
            }
        }
        if let v = r["managed_settings"], let pairs = v.mapping("setup_host.managed_settings", diags) {
            for p in pairs {
                if p.key == "claudeMd" {
                    diags.error(
                        p.keyValue.location,
                        "managed_settings must not set claudeMd: it is the config base's \(s.guidanceFile); edit that file instead"
                    )
                    continue
                }
                let value = managedValue(p.value)
                for f in SecretGuard.scan(.object([p.key: value])) {
                    let at = locate(f.key, in: p.keyValue, p.value) ?? p.keyValue.location
                    diags.error(
                        at,
                        "managed setting \(f.message); the managed settings are read by every user: \(SecretGuard.advice)"
                    )
                }
                s.managedSettings[p.key] = value
            }
        }
        return s
    }

    /// The YAML node of a dotted key path (for locating a guard finding); nil when not found.
    private static func locate(_ path: String, in key: YAMLValue, _ value: YAMLValue) -> SourceLocation? {
        var parts = path.split(separator: ".").map(String.init)
        guard !parts.isEmpty else { return nil }
        parts.removeFirst()
        var node = value.node
        var loc = key.location
        for part in parts {
            guard case .mapping(let m) = node else { return loc }
            guard let (k, v) = m.first(where: { $0.key.string == part.split(separator: "[").first.map(String.init) })
            else { return loc }
            loc = YAMLValue(node: k, file: key.file).location
            node = v
        }
        return loc
    }

    static func managedValue(_ v: YAMLValue) -> ManagedValue {
        switch v.node {
        case .scalar(let s):
            if v.isNull { return .null }
            if s.style == .plain {
                if s.string == "true" { return .bool(true) }
                if s.string == "false" { return .bool(false) }
                if let i = Int(s.string), s.string.allSatisfy({ $0.isNumber || $0 == "-" }),
                    !(s.string.count > 1 && s.string.hasPrefix("0"))
                {
                    return .integer(i)
                }
            }
            return .string(s.string)
        case .sequence(let seq):
            return .array(seq.map { managedValue(YAMLValue(node: $0, file: v.file)) })
        case .mapping(let m):
            var o: [String: ManagedValue] = [:]
            for (k, val) in m { o[k.string ?? ""] = managedValue(YAMLValue(node: val, file: v.file)) }
            return .object(o)
        case .alias:
            return .null
        }
    }
}

/// Debian policy 5.6.1: at least two characters, lowercase letters, digits, `+`, `-`, `.`, starting alphanumeric.
func isDebianPackageName(_ s: String) -> Bool {
    guard s.count >= 2, let first = s.first, first.isASCII, first.isLowercase || first.isNumber else { return false }
    return s.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || "+-.".contains($0)) }
}

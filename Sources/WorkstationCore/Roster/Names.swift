/// Naming rules shared by validation, the dispatcher and the ttyd login shim.
///
/// A unix account name must satisfy both Debian's `useradd(8)` (`NAME_REGEX` default `^[a-z][-a-z0-9_]*\$?$`, 32
/// characters) and systemd's user-name rule (`systemd.exec(5)` "User=": `[a-zA-Z_][a-zA-Z0-9_-]*`, at most 31 for
/// portability), since it becomes `t3-serve@NAME.service`. systemd once ran a unit whose `User=` started with a digit
/// as root, so a leading digit is refused outright.

/// Names that useradd accepts but that belong to the system or to workstation itself.
public let reservedAccountNames: Set<String> = [
    "root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy", "www-data",
    "backup", "list", "irc", "gnats", "nobody", "nogroup", "_apt", "messagebus", "sshd", "systemd-network",
    "systemd-resolve", "systemd-timesync", "systemd-journal", "systemd-coredump", "polkitd", "adm", "sudo", "wheel",
    "docker", "staff", "users", "admin", "workstation", "tty", "disk", "kmem", "dialout", "shadow", "utmp", "video",
    "audio", "plugdev", "netdev", "input", "render", "kvm", "operator", "halt", "shutdown", "ftp", "postgres",
]

/// Why `name` cannot be an os_user, or nil when it can.
public func accountNameProblem(_ name: String) -> String? {
    // The common case, checked on bytes: [a-z_][a-z0-9_-]*, at most 31, not reserved, not a missing value.
    if let first = name.utf8.first, first == 0x5F || (0x61...0x7A).contains(first), name.utf8.count <= 31,
        name.utf8.allSatisfy({ $0 == 0x5F || $0 == 0x2D || (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) }),
        !reservedAccountNames.contains(name), !looksLikeMissingValue(name)
    {
        return nil
    }
    if name.isEmpty { return "is empty" }
    if name.count > 31 { return "is \(name.count) characters; at most 31 (systemd and useradd limits)" }
    if looksLikeMissingValue(name) { return "looks like a missing value, not a name; write the real name" }
    if name.allSatisfy({ $0.isASCII && $0.isNumber }) { return "is all digits; tools would read it as a uid" }
    if let c = name.unicodeScalars.first(where: { $0.value < 0x20 || $0.value == 0x7F }) {
        return "contains a control character (U+\(String(c.value, radix: 16, uppercase: true)))"
    }
    if name.contains(where: \.isWhitespace) { return "contains whitespace" }
    if name.utf8.contains(UInt8(ascii: "@")) { return "contains '@' (an IdP login is authentik_user, not os_user)" }
    if name.utf8.contains(UInt8(ascii: "\\")) { return "contains '\\' (a DOMAIN\\user name); use the plain user name" }
    if name.contains(where: { $0.isUppercase }) {
        return "contains upper-case letters; useradd refuses them, use '\(name.lowercased())'"
    }
    if let first = name.first, first.isNumber { return "starts with a digit; systemd may run such a unit as root" }
    if name.first == "-" { return "starts with '-'" }
    let allowed = name.allSatisfy { ($0.isASCII && ($0.isLowercase || $0.isNumber)) || $0 == "-" || $0 == "_" }
    if !allowed { return "may contain only a-z, 0-9, '-' and '_'" }
    if reservedAccountNames.contains(name) { return "is a reserved system name" }
    return nil
}

/// A group name as `groupadd(8)` accepts it by default on Debian.
public func isValidGroupName(_ name: String) -> Bool {
    guard !name.isEmpty, name.count <= 32, let first = name.first, first.isASCII, first.isLowercase || first == "_"
    else {
        return false
    }
    return name.allSatisfy { ($0.isASCII && ($0.isLowercase || $0.isNumber)) || $0 == "-" || $0 == "_" }
}

/// Why `name` cannot appear as an identity in a derived file (`authentik_user=os_user` lines, JSON keys,
/// `X-authentik-username` values), or nil.
///
/// The ttyd map is `key=value` per line, so `=`, line breaks, whitespace and control characters would let one
/// entry forge another. ttyd passes at most 29 characters of the header on (`TTYD_USER`), cutting longer values
/// short: so a name is at most 28 characters, and a 29-character `TTYD_USER` (possibly a longer name cut short,
/// whose first 29 characters could equal someone's name) is never a name.
public func identityProblem(_ name: String, maxLength: Int = 28) -> String? {
    // The common case, checked on bytes: ASCII letters, digits and . _ - @ + only (none of the characters below).
    if !name.isEmpty, name.utf8.count <= maxLength, name.utf8.allSatisfy({ isPlainIdentityByte($0) }),
        !looksLikeMissingValue(name)
    {
        return nil
    }
    if name.isEmpty { return "is empty" }
    if name.count > maxLength {
        return maxLength == 28
            ? "is \(name.count) characters; at most 28 (ttyd cuts its header at 29, so a longer name could pass for another)"
            : "is \(name.count) characters; at most \(maxLength)"
    }
    if looksLikeMissingValue(name) { return "looks like a missing value, not a name; write the real name" }
    if name.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F || (0x80...0x9F).contains($0.value) })
    {
        return "contains a control character"
    }
    if name.contains(where: \.isWhitespace) || name.contains(where: \.isNewline) { return "contains whitespace" }
    if let c = name.unicodeScalars.first(where: { $0.properties.generalCategory == .format }) {
        return
            "contains an invisible formatting character (U+\(String(c.value, radix: 16, uppercase: true))) that makes look-alike names"
    }
    if name.contains("=") { return "contains '=' (the ttyd map separator)" }
    if name.contains(":") { return "contains ':' (the passwd and group field separator)" }
    if name.contains("|") { return "contains '|' (the group separator of X-authentik-groups)" }
    if name.contains("#") && name.first == "#" { return "starts with '#' (a comment in the ttyd map)" }
    if let (a, b) = mixedScripts(name) {
        return
            "mixes \(a.rawValue) and \(b.rawValue) letters, which is how a name is made to pass for another (UTS #39); write it in one script"
    }
    return nil
}

@inline(__always) private func isPlainIdentityByte(_ c: UInt8) -> Bool {
    switch c {
    case 0x30...0x39, 0x41...0x5A, 0x61...0x7A, 0x2E, 0x5F, 0x2D, 0x40, 0x2B: true
    default: false
    }
}

/// True for what a template or script writes when a variable was unset (`null`, `None`, `nil`, `undefined`), in
/// any case. No person is named that; such a value in the roster is a generation bug, not a name.
public func looksLikeMissingValue(_ s: String) -> Bool {
    s.utf8.count <= 9 && ["null", "none", "nil", "undefined"].contains(s.lowercased())
}

/// DNS-1123 label, as Kubernetes requires for namespace names.
public func isDNSLabel(_ s: String) -> Bool {
    guard !s.isEmpty, s.count <= 63, let f = s.first, let l = s.last else { return false }
    func ok(_ c: Character) -> Bool { c.isASCII && (c.isLowercase || c.isNumber) }
    return ok(f) && ok(l) && s.allSatisfy { ok($0) || $0 == "-" }
}

func isPlausibleEmail(_ s: String) -> Bool {
    let parts = s.split(separator: "@", omittingEmptySubsequences: false)
    return parts.count == 2 && !parts[0].isEmpty && parts[1].utf8.contains(UInt8(ascii: "."))
        && identityProblem(s, maxLength: 254) == nil
}

/// Shows a name safely in a message, on one line: control, format (bidi) and separator characters escaped as
/// `\u{hex}` (`terminalSafe(_:keepingNewlines:)` with newlines escaped too).
public func printable(_ s: String) -> String {
    terminalSafe(s, keepingNewlines: false)
}

import Foundation
import WorkstationCore

/// Seeds an empty directory with what a fresh Debian host has (the account databases from `base-passwd`,
/// `login.defs`, `/etc/skel`), the per-user template units and a small sample config base, so the demo and the
/// tests run the real shadow utilities and `systemctl --root` against it.
public enum SandboxRoot {
    /// Seeds `root` unless it already has `etc/passwd`. Returns false when it was already seeded.
    /// - Throws: file-system errors creating the files.
    @discardableResult
    public static func seed(_ root: HostRoot, settings: Settings) throws -> Bool {
        precondition(!root.isSystem, "refusing to seed the real root")
        if FileManager.default.fileExists(atPath: root.path("/etc/passwd")) { return false }
        let files: [(String, String, UInt32)] = [
            ("/etc/passwd", passwd, 0o644), ("/etc/group", group, 0o644), ("/etc/shadow", shadow, 0o640),
            ("/etc/gshadow", gshadow, 0o640), ("/etc/login.defs", loginDefs, 0o644),
            (
                "/etc/skel/.bashrc",
                "# ~/.bashrc: executed by bash(1) for non-login shells.\n[ -z \"$PS1\" ] && return\nPS1='\\u@\\h:\\w\\$ '\n",
                0o644
            ),
            (
                "/etc/skel/.profile",
                "# ~/.profile: executed by the command interpreter for login shells.\n[ -n \"$BASH_VERSION\" ] && [ -f \"$HOME/.bashrc\" ] && . \"$HOME/.bashrc\"\n",
                0o644
            ),
            ("/etc/skel/.bash_logout", "# ~/.bash_logout: executed by bash(1) when login shell exits.\n", 0o644),
        ]
        for (path, content, mode) in files {
            try writeFileAtomically(Data(content.utf8), to: root.path(path), mode: mode)
        }
        for dir in ["/home", "/run", "/etc/systemd/system", "/var/lib"] {
            try FileManager.default.createDirectory(atPath: root.path(dir), withIntermediateDirectories: true)
        }
        for unit in settings.units {
            try writeFileAtomically(
                Data(ReconcileUnits.perUserTemplate(unit).utf8),
                to: root.path("/etc/systemd/system/\(unit.templateUnit)")
            )
        }
        let base = settings.configBase
        let sample: [(String, String)] = [
            (
                "CLAUDE.md",
                "# Org guidance\n\nWork in ~/code. Never commit secrets. Ask before applying infrastructure changes.\n"
            ),
            (
                "skills/review/SKILL.md",
                "---\nname: review\ndescription: Review a change the way the team does.\n---\nRead the diff, then list risks first.\n"
            ),
            ("rules/style.md", "Prefer small commits with messages that say why.\n"),
            ("agents/helper.md", "---\nname: helper\ndescription: A small helper agent.\n---\nBe brief.\n"),
            ("commands/status.md", "Summarize the state of ~/code.\n"),
        ]
        for (rel, content) in sample {
            try writeFileAtomically(Data(content.utf8), to: root.path(joinPath(base, rel)))
        }
        return true
    }

    static let passwd = """
        root:x:0:0:root:/root:/bin/bash
        daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
        bin:x:2:2:bin:/bin:/usr/sbin/nologin
        sys:x:3:3:sys:/dev:/usr/sbin/nologin
        sync:x:4:65534:sync:/bin:/bin/sync
        games:x:5:60:games:/usr/games:/usr/sbin/nologin
        man:x:6:12:man:/var/cache/man:/usr/sbin/nologin
        lp:x:7:7:lp:/var/spool/lpd:/usr/sbin/nologin
        mail:x:8:8:mail:/var/mail:/usr/sbin/nologin
        news:x:9:9:news:/var/spool/news:/usr/sbin/nologin
        uucp:x:10:10:uucp:/var/spool/uucp:/usr/sbin/nologin
        proxy:x:13:13:proxy:/bin:/usr/sbin/nologin
        www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin
        backup:x:34:34:backup:/var/backups:/usr/sbin/nologin
        list:x:38:38:Mailing List Manager:/var/list:/usr/sbin/nologin
        irc:x:39:39:ircd:/run/ircd:/usr/sbin/nologin
        _apt:x:42:65534::/nonexistent:/usr/sbin/nologin
        nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin

        """

    static let groupNames: [(String, Int)] = [
        ("root", 0), ("daemon", 1), ("bin", 2), ("sys", 3), ("adm", 4), ("tty", 5), ("disk", 6), ("lp", 7), ("mail", 8),
        ("news", 9), ("uucp", 10), ("man", 12), ("proxy", 13), ("kmem", 15), ("dialout", 20), ("fax", 21),
        ("voice", 22),
        ("cdrom", 24), ("floppy", 25), ("tape", 26), ("sudo", 27), ("audio", 29), ("dip", 30), ("www-data", 33),
        ("backup", 34), ("operator", 37), ("list", 38), ("irc", 39), ("src", 40), ("shadow", 42), ("utmp", 43),
        ("video", 44), ("sasl", 45), ("plugdev", 46), ("staff", 50), ("games", 60), ("users", 100), ("nogroup", 65534),
    ]
    static let group = groupNames.map { "\($0.0):x:\($0.1):\n" }.joined()
    static let gshadow = groupNames.map { "\($0.0):*::\n" }.joined()
    static let shadow = passwd.split(separator: "\n").map { "\($0.split(separator: ":")[0]):*:20000:0:99999:7:::\n" }
        .joined()
    static let loginDefs = """
        MAIL_DIR        /var/mail
        ENV_SUPATH      PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
        ENV_PATH        PATH=/usr/local/bin:/usr/bin:/bin
        UMASK           022
        HOME_MODE       0700
        PASS_MAX_DAYS   99999
        PASS_MIN_DAYS   0
        PASS_WARN_AGE   7
        UID_MIN         1000
        UID_MAX         60000
        GID_MIN         1000
        GID_MAX         60000
        SYS_UID_MIN     100
        SYS_UID_MAX     999
        SYS_GID_MIN     100
        SYS_GID_MAX     999
        USERGROUPS_ENAB yes
        ENCRYPT_METHOD  SHA512

        """
}

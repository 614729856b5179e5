import Foundation

/// Who may run a change (DESIGN section 3). `apply` runs additive, derived and tighten changes only.
public enum SafetyClass: String, Sendable, Codable, Comparable {
    case additive, derived, tighten, revoke, destroy

    public static func < (a: SafetyClass, b: SafetyClass) -> Bool {
        let order: [SafetyClass] = [.additive, .derived, .tighten, .revoke, .destroy]
        return order.firstIndex(of: a)! < order.firstIndex(of: b)!
    }

    /// True for the classes `apply` may run.
    public var runsInApply: Bool { self <= .tighten }
}

/// What a change is, for display and exit codes.
public enum ChangeKind: String, Sendable, Codable {
    /// `+` something absent is created.
    case create
    /// `~` something present is changed (regenerated, tightened).
    case update
    /// `!` a revoke or destroy that only an explicit command may run; apply lists it with that command.
    case pending
    /// `?` found state that workstation will not touch (a real directory where a link belongs...).
    case conflict

    public var symbol: String {
        switch self {
        case .create: "+"
        case .update: "~"
        case .pending: "!"
        case .conflict: "?"
        }
    }

    /// True when apply would run the change.
    public var isActionable: Bool { self == .create || self == .update }
}

/// One field of a change, before and after (nil: absent).
extension Change {
    /// The shadow utilities whose `--root CHROOT_DIR` option (useradd(8), usermod(8), userdel(8), gpasswd(8),
    /// groupadd(8), groupmod(8), groupdel(8), chage(1), passwd(1)) makes a suggested command act on the account files
    /// under a sandbox root instead of this machine's.
    static let rootAwareTools: Set<Substring> = [
        "gpasswd", "useradd", "usermod", "userdel", "groupadd", "groupmod", "groupdel", "chage", "passwd",
    ]

    /// This change with its suggested `command` made to act on `root` (a sandbox root's directory): `--root DIR` after
    /// the tool's name when it is one of `rootAwareTools`; any other command is left as it is.
    public func suggesting(onRoot root: String) -> Change {
        guard let cmd = command, let tool = cmd.split(separator: " ", maxSplits: 1).first,
            Self.rootAwareTools.contains(tool)
        else { return self }
        var c = self
        c.command = "\(tool) --root \(shellWord(root))" + cmd.dropFirst(tool.count)
        return c
    }
}

public struct FieldChange: Sendable, Hashable, Codable {
    public var field: String
    public var before: String?
    public var after: String?
    public init(_ field: String, _ before: String?, _ after: String?) {
        self.field = field
        self.before = before
        self.after = after
    }
}

/// What the executor does for a change. Pure data; the executor maps each case to an adapter.
public enum Action: Sendable, Hashable, Codable {
    /// `groupadd(8)`.
    case createGroup(name: String)
    /// `useradd(8)` with a home created from skel, mode 0700.
    case createAccount(AccountSpec)
    /// `usermod -aG GROUP USER` (`usermod(8)`): adds one membership, touches no other.
    case addMembership(user: String, group: String)
    /// Make the missing home of an account workstation created (0700, the person's, `/etc/skel` copied in), as
    /// `useradd -m` would have, and give the account the subordinate id ranges useradd would have given it (where the
    /// host keeps `/etc/subuid`): a run stopped between creating the account and its home.
    case createHome(user: String, path: String)
    /// chown (only when `chownTo` is set, the directory alone, never recursive) and chmod of a home directory.
    case secureHome(user: String, path: String, chownTo: Int?, mode: UInt32)
    /// Atomically replace a root-owned file (temp file + fsync + rename), creating parent directories 0755.
    case writeFile(path: String, content: Data, mode: UInt32)
    /// Create a directory under a user's home if absent, owned by the user (safe home-writer).
    case createHomeDirectory(user: String, path: String, mode: UInt32)
    /// Create a symlink under a user's home if absent, owned by the user (safe home-writer).
    case createHomeLink(user: String, path: String, target: String)
    /// `systemctl enable` (and `--now` where systemd runs).
    case enableUnit(name: String)
    /// Clone the infra repository keyless into a user's home, as the user, only if the target is absent.
    case cloneInfraRepo(InfraCloneSpec)
    /// Authentik `POST /api/v3/core/groups/<group>/add_user/` with `{"pk": user}` (additive).
    case addIdPGroupMember(group: String, groupPK: String, username: String, userPK: Int)
    /// Create a file under a user's home only if absent, creating missing parents 0700 (safe home-writer).
    case createHomeFile(user: String, path: String, content: Data, mode: UInt32)
    /// As `createHomeFile`, for a secret: recorded in state so offboarding can delete exactly it.
    case createSecretFile(user: String, path: String, content: Redacted, mode: UInt32)
    /// Add `mcpServers.<name>` (`entry`, JSON text) to the user's `~/.claude.json` where absent, changing nothing
    /// else in it (`ClaudeJSON.addMCPServer`); creates the file (0600) when absent; a file that is not a JSON
    /// object is left alone (an error).
    case addMCPServer(user: String, path: String, name: String, entry: String)
    /// Create a root-owned system directory if absent (`mkdir(2)`, parents 0755).
    case createSystemDirectory(path: String, mode: UInt32)
    /// Create a root-owned symlink if nothing is at the path (`symlink(2)` never replaces).
    case createSystemLink(path: String, target: String)
    /// Add one POSIX ACL entry `group:GROUP:PERMS` to a directory (`setfacl(1) -m`), keeping every other entry.
    case grantGroupACL(path: String, group: String, perms: String)
    /// Remove group and other bits of a secret file in a home (safe home-writer; never chowns, never follows).
    case tightenHomeFile(user: String, path: String, mode: UInt32)
    /// `apt-get install` of the missing manifest packages (`setup-host --install-packages` only).
    case installPackages(names: [String])
    /// `systemctl try-restart NAME` after a daemon-reload (`systemctl(1)`): a running unit restarts so its
    /// regenerated drop-in (port, slice) takes effect; a stopped unit stays stopped. Planned only where systemd runs.
    case restartUnit(name: String)
    /// `systemctl start NAME` after a daemon-reload (`systemctl(1)`): an enabled unit that is not running.
    /// Idempotent (starting an active unit does nothing). Planned only where systemd runs.
    case startUnit(name: String)
    /// `systemctl try-reload-or-restart NAME` after a daemon-reload (`systemctl(1)`): a running unit loads its
    /// regenerated configuration (the firewall's `ExecReload`); a stopped unit stays stopped. Planned only where
    /// systemd runs.
    case reloadUnit(name: String)
    /// `systemd-sysusers CONFIG` (`systemd-sysusers(8)`; `--root=DIR` under a root): creates the system accounts
    /// and groups a `sysusers.d(5)` file (a name looked up in `/etc/sysusers.d`) declares. Idempotent.
    case createSystemAccounts(config: String)
    /// `systemctl disable --now` where systemd runs, else `systemctl --root=DIR disable` (`systemctl(1)`). Revoke.
    case disableUnit(name: String)
    /// `usermod [-L] --expiredate 1 USER` (`usermod(8)`): lock the password (when `lock`) and expire the account,
    /// so key-based logins stop too. Revoke.
    case restrictLogin(user: String, lock: Bool)
    /// `usermod [-U] --expiredate DAYS|'' USER`: puts lock and expiry back as the cut stage recorded them.
    case restoreLogin(user: String, unlock: Bool, expireDays: Int?)
    /// Ends every process of the account (live root only): `loginctl terminate-user USER` (`loginctl(1)`: the
    /// sessions and the user manager) where systemd runs, then SIGKILL of every process whose real, effective or
    /// saved uid is `uid` (`/proc/<pid>/status`, `proc(5)`), repeated until none is left. Revoke.
    case endProcesses(user: String, uid: Int)
    /// `loginctl disable-linger USER` where systemd runs, else removes `/var/lib/systemd/linger/USER` (the file
    /// logind keeps for a lingering user, `logind.conf(5)`), so no user manager starts for them at boot. Revoke.
    case disableLinger(user: String)
    /// `usermod -r -G GROUP USER` (shadow 4.13+): removes one supplementary membership, leaves the others. Revoke.
    case removeMembership(user: String, group: String)
    /// `unlinkat(2)` of one entry under a home, never following links; a directory is refused.
    /// `onlySymlink`: refuse anything but a symlink.
    case removeHomeEntry(user: String, path: String, onlySymlink: Bool)
    /// Replaces a regular file under a home (temp file + `renameat(2)`), keeping its owner and mode unless given.
    case rewriteHomeFile(user: String, path: String, content: Data, uid: Int?, gid: Int?, mode: UInt32?)
    /// Creates or replaces a symlink (never a directory or file) under a home, owned by `uid:gid`.
    case placeHomeLink(user: String, path: String, target: String, uid: Int, gid: Int)
    /// Moves an entry under a home into a root-only directory (`renameat(2)`), e.g. the clone that replaced `~/code`.
    case moveHomeEntryOut(user: String, path: String, toDirectory: String)
    /// `tar --numeric-owner --acls --xattrs -cpzf ARCHIVE` of the home, then verified by listing and checksum. Destroy.
    case archiveHome(user: String, home: String, archive: String)
    /// `userdel --remove USER` (`userdel(8)`): the account, its home and mail spool. Destroy.
    case deleteAccount(user: String)
    /// Removes a root-owned system file workstation wrote (a deleted account's unit drop-in). Destroy.
    case removeSystemFile(path: String)
}

/// Everything `useradd` needs; the uid is allocated by the planner so the plan is exact.
public struct AccountSpec: Sendable, Hashable, Codable {
    public var name: String
    public var uid: Int
    public var home: String
    public var shell: String
    public var groups: [String]
    public var comment: String
    public init(name: String, uid: Int, home: String, shell: String, groups: [String], comment: String) {
        self.name = name
        self.uid = uid
        self.home = home
        self.shell = shell
        self.groups = groups
        self.comment = comment
    }
}

/// One planned change to one resource.
public struct Change: Sendable, Hashable, Codable {
    /// Stable resource id, e.g. `account:alice`, `membership:alice:workstation`, `file:/etc/ttyd-user-map`.
    public var id: ResourceID
    /// The os_user it belongs to, nil for host-wide resources.
    public var user: String?
    public var kind: ChangeKind
    public var safety: SafetyClass
    /// One line: what happens, e.g. `create account alice (uid 1001)`.
    public var summary: String
    public var fields: [FieldChange]
    /// Why, when not obvious (the conflict, the violation).
    public var reason: String?
    /// For pending revoke/destroy changes: the explicit command that would run it.
    public var command: String?
    /// What apply runs; nil for report-only changes.
    public var action: Action?
    /// Ids of changes that must succeed first (e.g. the account before its links).
    public var dependsOn: [ResourceID]

    public init(
        id: ResourceID,
        user: String?,
        kind: ChangeKind,
        safety: SafetyClass,
        summary: String,
        fields: [FieldChange] = [],
        reason: String? = nil,
        command: String? = nil,
        action: Action? = nil,
        dependsOn: [ResourceID] = []
    ) {
        self.id = id
        self.user = user
        self.kind = kind
        self.safety = safety
        self.summary = summary
        self.fields = fields
        self.reason = reason
        self.command = command
        self.action = action
        self.dependsOn = dependsOn
    }
}

/// The safety gates that can refuse a whole run (exit 3). The raw value is the name `plan`, `apply --json`
/// (`refusals[].gate`) and `doctor` print.
public enum Gate: String, Sendable, Hashable, Codable, CustomStringConvertible {
    /// Removing the last admin's access, or the run's own (DESIGN section 3).
    case lockoutGuard = "lockout guard"
    /// Admission: onboarding would overcommit the memory budgets (docs/capacity.md).
    case capacity
    /// A person still has live processes (cutover, offboarding cut).
    case idleGate = "idle gate"
    /// A destructive stage needs `--confirm USER`.
    case confirmation
    /// Offboarding a person who is still in the roster.
    case roster
    /// An offboarding stage before the stages it follows (cut, revoke, archive).
    case stageOrder = "stage order"
    /// Cutting a person whom dispatch.json or the ttyd map still route.
    case derivedFiles = "derived files"
    /// Archiving a home while its owner still runs processes (or they cannot be read).
    case runningProcesses = "running processes"
    /// Offboarding a Kubernetes workspace that is not on record.
    case workspace

    public var description: String { rawValue }
}

/// A safety gate that refuses the whole run (exit 3): the lockout guard, capacity admission, the idle gate.
public struct Refusal: Sendable, Hashable, Codable, CustomStringConvertible {
    public var gate: Gate
    public var message: String
    public init(gate: Gate, message: String) {
        self.gate = gate
        self.message = message
    }
    public var description: String { "refused by \(gate): \(message)" }
}

/// The plan: every change, in execution order, plus notes and refusals.
public struct Plan: Sendable, Hashable, Codable {
    public var changes: [Change] = []
    /// One-line remarks (e.g. a service that is not configured and was skipped).
    public var notes: [String] = []
    public var refusals: [Refusal] = []
    /// Problems that make the run exit 1 although the rest of the plan still runs (a service error for one user...).
    public var errors: [String] = []

    public init(changes: [Change] = [], notes: [String] = [], refusals: [Refusal] = []) {
        self.changes = changes
        self.notes = notes
        self.refusals = refusals
    }

    /// Changes apply would run.
    public var actionable: [Change] { changes.filter { $0.kind.isActionable && $0.safety.runsInApply } }
    /// True when apply has nothing to do.
    public var isEmpty: Bool { actionable.isEmpty }

    public struct Summary: Sendable, Hashable, Codable {
        public var create = 0, update = 0, pending = 0, conflict = 0
    }

    public var summary: Summary {
        var s = Summary()
        for c in changes {
            switch c.kind {
            case .create: s.create += 1
            case .update: s.update += 1
            case .pending: s.pending += 1
            case .conflict: s.conflict += 1
            }
        }
        return s
    }
}

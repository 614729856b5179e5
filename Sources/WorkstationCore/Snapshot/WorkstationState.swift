import Foundation

/// workstation's record of what it manages, `<state dir>/state.json`. Only what is recorded here (or named by
/// the roster) is ever changed.
public struct WorkstationState: Sendable, Hashable, Codable {
    public struct Account: Sendable, Hashable, Codable {
        public var uid: Int
        /// True when workstation ran useradd for it (false: adopted, existed before).
        public var created: Bool
        public init(uid: Int, created: Bool) {
            self.uid = uid
            self.created = created
        }
    }
    public var version = 1
    /// os_user -> account record, for every non-admin workstation has managed.
    public var accounts: [String: Account] = [:]
    /// unit template -> os_user -> port.
    public var ports: [String: [String: Int]] = [:]
    /// Groups workstation created with groupadd.
    public var createdGroups: [String] = []
    /// os_user -> groups workstation added them to.
    public var addedMemberships: [String: [String]] = [:]
    /// uids of archived accounts; never handed out again.
    public var retiredUids: [Int] = []
    /// Completion time of the last apply that verified clean (seconds since 1970).
    public var lastSuccessfulApply: Double?
    /// os_user -> home-relative paths of other files workstation wrote once (kubeconfig, Vault helper).
    public var homeFiles: [String: [String]]?
    /// Machine-wide files workstation wrote and may regenerate (e.g. managed-settings.json); nil in older files.
    public var ownedFiles: [String]?
    /// os_user -> the staged offboarding as far as it got (kept after archive).
    public var offboarding: [String: OffboardingRecord] = [:]
    /// os_user -> the last cutover and whether it was rolled back.
    public var cutovers: [String: CutoverRecord] = [:]
    /// os_user -> host paths of per-user secret files workstation wrote (deleted by `offboard --stage revoke`).
    public var secretFilesWritten: [String: [String]] = [:]
    /// os_user -> host path -> `sha256:<hex>` of the bytes workstation wrote there (secret files). The revoke stage
    /// deletes a file only while it still holds exactly those bytes; a changed one is kept for the archive.
    public var writtenDigests: [String: [String: String]] = [:]
    /// os_user -> host paths of secret files whose Vault read failed: retried on every run until written.
    public var secretFilesPending: [String: [String]] = [:]
    /// os_user -> identities of the roster entry at the last apply (offboarding needs them after the entry is gone).
    public var identities: [String: RecordedIdentity] = [:]

    public init() {}

    /// Decodes any older state file: every field missing from it takes its default.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        version = try c.decodeIfPresent(Int.self, forKey: .version) ?? 1
        accounts = try c.decodeIfPresent([String: Account].self, forKey: .accounts) ?? [:]
        ports = try c.decodeIfPresent([String: [String: Int]].self, forKey: .ports) ?? [:]
        createdGroups = try c.decodeIfPresent([String].self, forKey: .createdGroups) ?? []
        addedMemberships = try c.decodeIfPresent([String: [String]].self, forKey: .addedMemberships) ?? [:]
        retiredUids = try c.decodeIfPresent([Int].self, forKey: .retiredUids) ?? []
        lastSuccessfulApply = try c.decodeIfPresent(Double.self, forKey: .lastSuccessfulApply)
        offboarding = try c.decodeIfPresent([String: OffboardingRecord].self, forKey: .offboarding) ?? [:]
        cutovers = try c.decodeIfPresent([String: CutoverRecord].self, forKey: .cutovers) ?? [:]
        secretFilesWritten = try c.decodeIfPresent([String: [String]].self, forKey: .secretFilesWritten) ?? [:]
        writtenDigests = try c.decodeIfPresent([String: [String: String]].self, forKey: .writtenDigests) ?? [:]
        secretFilesPending = try c.decodeIfPresent([String: [String]].self, forKey: .secretFilesPending) ?? [:]
        identities = try c.decodeIfPresent([String: RecordedIdentity].self, forKey: .identities) ?? [:]
        homeFiles = try c.decodeIfPresent([String: [String]].self, forKey: .homeFiles)
        ownedFiles = try c.decodeIfPresent([String].self, forKey: .ownedFiles)
        intents = try c.decodeIfPresent(Intents.self, forKey: .intents)
    }

    /// What a run was about to do with a tool when it last saved: set just before useradd, groupadd or usermod
    /// runs, cleared when it returns. A run killed meanwhile leaves it, and the tool may still finish on its own;
    /// the next run settles it against the host (`settleIntents`). Absent in files written before it existed.
    public var intents: Intents?

    /// Tool runs in flight (see `intents`).
    public struct Intents: Sendable, Hashable, Codable {
        /// os_user -> the account useradd was creating.
        public var accounts: [String: Account] = [:]
        /// os_user -> the supplementary groups useradd -G was given.
        public var accountGroups: [String: [String]] = [:]
        public var groups: [String] = []
        /// os_user -> groups usermod -aG was adding.
        public var memberships: [String: [String]] = [:]
        public init() {}
        public var isEmpty: Bool { accounts.isEmpty && groups.isEmpty && memberships.isEmpty }
    }

    /// Records as workstation's what an interrupted run's tools did (an account with the intended uid, a group, a
    /// membership now present), and drops the rest: the next plan does it again.
    public mutating func settleIntents(passwd: [PasswdEntry], groups hostGroups: [GroupEntry]) {
        guard let i = intents else { return }
        intents = nil
        let uids = Dictionary(passwd.map { ($0.name, $0.uid) }, uniquingKeysWith: { a, _ in a })
        let members = Dictionary(hostGroups.map { ($0.name, Set($0.members)) }, uniquingKeysWith: { a, _ in a })
        func added(_ user: String, _ g: String) {
            var list = addedMemberships[user] ?? []
            if !list.contains(g) { list.append(g) }
            addedMemberships[user] = list
        }
        for (name, a) in i.accounts.sorted(by: { $0.key < $1.key }) where uids[name] == a.uid {
            accounts[name] = Account(uid: a.uid, created: true)
            for g in i.accountGroups[name] ?? [] where members[g]?.contains(name) == true { added(name, g) }
        }
        for g in i.groups where members[g] != nil && !createdGroups.contains(g) { createdGroups.append(g) }
        for (user, gs) in i.memberships.sorted(by: { $0.key < $1.key }) {
            for g in gs where members[g]?.contains(user) == true { added(user, g) }
        }
    }
}

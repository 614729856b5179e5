/// One person's part of `WorkstationState` and the host-wide rest, as it stood after one change: what a line of the
/// state log carries (`<state dir>/state.log`, see `StateLog` in WorkstationHost). Replaying the lines written since
/// `state.json` was last saved, in order, over that file gives the state as the apply left it: every change edits
/// only the entries of the people it names and the host-wide fields, and each line carries those whole.
///
/// Shape (JSON, snake_case keys like `state.json`): `base` (which `state.json` it follows), `users` (os_user ->
/// `Person`, an entry per person the change named), and the host-wide fields `version`, `created_groups`,
/// `retired_uids`, `last_successful_apply`, `owned_files`, `home_files_present`, `port_templates`, `intents`.
public struct StateDelta: Sendable, Hashable, Codable {
    /// Everything `WorkstationState` records about one os_user; a nil field means "no entry".
    public struct Person: Sendable, Hashable, Codable {
        public var account: WorkstationState.Account?
        /// unit template -> port.
        public var ports: [String: Int] = [:]
        public var addedMemberships: [String]?
        public var homeFiles: [String]?
        public var offboarding: OffboardingRecord?
        public var cutover: CutoverRecord?
        public var secretFilesWritten: [String]?
        public var writtenDigests: [String: String]?
        public var secretFilesPending: [String]?
        public var identity: RecordedIdentity?
        public var workspace: WorkspaceRecord?
    }

    /// Identifies the `state.json` this line applies to, by its content (lines of any other base are ignored).
    public var base: String
    public var users: [String: Person]
    public var version: Int
    public var createdGroups: [String]
    public var retiredUids: [Int]
    public var lastSuccessfulApply: Double?
    public var ownedFiles: [String]?
    /// Whether `home_files` is present at all (nil and empty differ in `state.json`).
    public var homeFilesPresent: Bool
    /// The unit templates `ports` has entries for (a template with no one left stays, as in `state.json`).
    public var portTemplates: [String]
    public var intents: WorkstationState.Intents?

    /// The entries of `users` in `state` and its host-wide fields, to be applied over the `state.json` named `base`.
    public init(base: String, state: WorkstationState, users: some Sequence<String>) {
        self.base = base
        var people: [String: Person] = [:]
        for u in users {
            var ports: [String: Int] = [:]
            for (template, byUser) in state.ports { if let p = byUser[u] { ports[template] = p } }
            people[u] = Person(
                account: state.accounts[u],
                ports: ports,
                addedMemberships: state.addedMemberships[u],
                homeFiles: state.homeFiles?[u],
                offboarding: state.offboarding[u],
                cutover: state.cutovers[u],
                secretFilesWritten: state.secretFilesWritten[u],
                writtenDigests: state.writtenDigests[u],
                secretFilesPending: state.secretFilesPending[u],
                identity: state.identities[u],
                workspace: state.workspaces[u]
            )
        }
        self.users = people
        version = state.version
        createdGroups = state.createdGroups
        retiredUids = state.retiredUids
        lastSuccessfulApply = state.lastSuccessfulApply
        ownedFiles = state.ownedFiles
        homeFilesPresent = state.homeFiles != nil
        portTemplates = state.ports.keys.sorted()
        intents = state.intents
    }
}

extension WorkstationState {
    /// Applies a state-log line: the host-wide fields as recorded, and each named person's entries set (or
    /// removed) as recorded. Idempotent; lines must be replayed in the order they were written.
    public mutating func replay(_ d: StateDelta) {
        version = d.version
        createdGroups = d.createdGroups
        retiredUids = d.retiredUids
        lastSuccessfulApply = d.lastSuccessfulApply
        ownedFiles = d.ownedFiles
        intents = d.intents
        if !d.homeFilesPresent { homeFiles = nil } else if homeFiles == nil { homeFiles = [:] }
        let templates = Set(d.portTemplates)
        for t in ports.keys where !templates.contains(t) { ports[t] = nil }
        for t in templates where ports[t] == nil { ports[t] = [:] }
        for (u, p) in d.users {
            accounts[u] = p.account
            for template in Set(ports.keys).union(p.ports.keys) { ports[template, default: [:]][u] = p.ports[template] }
            addedMemberships[u] = p.addedMemberships
            if homeFiles != nil { homeFiles?[u] = p.homeFiles }
            offboarding[u] = p.offboarding
            cutovers[u] = p.cutover
            secretFilesWritten[u] = p.secretFilesWritten
            writtenDigests[u] = p.writtenDigests
            secretFilesPending[u] = p.secretFilesPending
            identities[u] = p.identity
            workspaces[u] = p.workspace
        }
    }
}

/// The stable id of the resource a `Change` acts on: a kind and a name, printed `kind:name`
/// (`account:alice`, `membership:alice:workstation`, `file:/etc/ttyd-user-map`). Plans, `apply --json`
/// (`applied`, `not_converged`), the journal and `dependsOn` carry the printed form; the planner builds ids only
/// through the constructors below, so two families cannot spell one resource two ways.
public struct ResourceID: Hashable, Comparable, Sendable, Codable, CustomStringConvertible, ExpressibleByStringLiteral {
    /// What kind of resource; the raw value is the printed prefix.
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        case file, link, dir, secret, acl, move
        case account, group, membership, violation, home, login, linger, processes
        case unit, restart, reload
        case reach, clone, archive, offboard, cutover, rollback, packages, capacity, jwks
        case idp
        case idpRevoke = "idp-revoke"
        case k8sUsers = "k8s-users"
        case k8sUsersLeft = "k8s-users-left"
        case kubeconfig
        case vaultHelper = "vault-helper"
        case mcp
    }

    public let kind: Kind
    /// Everything after `kind:`; empty for a host-wide singleton (`packages`).
    public let name: String

    public init(_ kind: Kind, _ name: String) {
        self.kind = kind
        self.name = name
    }

    /// Parses the printed form; an unknown kind is a programming error in a literal (tests, fixtures).
    public init(stringLiteral value: String) {
        guard let parsed = ResourceID(parsing: value) else { preconditionFailure("not a resource id: \(value)") }
        self = parsed
    }

    /// Parses `kind:name` (or a bare `kind`); nil for an unknown kind.
    public init?(parsing value: String) {
        let cut = value.firstIndex(of: ":")
        guard let kind = Kind(rawValue: String(value[..<(cut ?? value.endIndex)])) else { return nil }
        self.init(kind, cut.map { String(value[value.index(after: $0)...]) } ?? "")
    }

    public var description: String { name.isEmpty ? kind.rawValue : kind.rawValue + ":" + name }

    /// Ordered by the printed form.
    public static func < (a: ResourceID, b: ResourceID) -> Bool { a.description < b.description }

    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let parsed = ResourceID(parsing: text) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "resource id \(text)")
            )
        }
        self = parsed
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }

    // Constructors, one per kind (two-part names joined with ':').
    public static func file(_ path: String) -> ResourceID { ResourceID(.file, path) }
    public static func link(_ path: String) -> ResourceID { ResourceID(.link, path) }
    public static func dir(_ path: String) -> ResourceID { ResourceID(.dir, path) }
    public static func secret(_ path: String) -> ResourceID { ResourceID(.secret, path) }
    /// A secret the integrations write: `secret:USER:NAME`.
    public static func secret(user: String, name: String) -> ResourceID { ResourceID(.secret, user + ":" + name) }
    public static func acl(_ path: String) -> ResourceID { ResourceID(.acl, path) }
    public static func move(_ path: String) -> ResourceID { ResourceID(.move, path) }
    public static func account(_ user: String) -> ResourceID { ResourceID(.account, user) }
    public static func group(_ name: String) -> ResourceID { ResourceID(.group, name) }
    public static func membership(_ user: String, _ group: String) -> ResourceID {
        ResourceID(.membership, user + ":" + group)
    }
    public static func violation(_ user: String, _ group: String) -> ResourceID {
        ResourceID(.violation, user + ":" + group)
    }
    public static func home(_ user: String) -> ResourceID { ResourceID(.home, user) }
    public static func login(_ user: String) -> ResourceID { ResourceID(.login, user) }
    public static func linger(_ user: String) -> ResourceID { ResourceID(.linger, user) }
    public static func processes(_ user: String) -> ResourceID { ResourceID(.processes, user) }
    public static func unit(_ name: String) -> ResourceID { ResourceID(.unit, name) }
    public static func restart(_ unit: String) -> ResourceID { ResourceID(.restart, unit) }
    public static func reload(_ unit: String) -> ResourceID { ResourceID(.reload, unit) }
    /// Reachability of an inherited item, host-wide or for one person.
    public static func reach(_ item: String, user: String? = nil) -> ResourceID {
        ResourceID(.reach, user.map { $0 + ":" + item } ?? item)
    }
    public static func clone(_ target: String) -> ResourceID { ResourceID(.clone, target) }
    public static func archive(_ user: String) -> ResourceID { ResourceID(.archive, user) }
    public static func offboard(_ user: String) -> ResourceID { ResourceID(.offboard, user) }
    /// One offboarding stage of a person (`offboard:alice:cut`).
    public static func offboard(_ user: String, stage: String) -> ResourceID {
        ResourceID(.offboard, user + ":" + stage)
    }
    public static func cutover(_ user: String) -> ResourceID { ResourceID(.cutover, user) }
    public static func rollback(_ user: String) -> ResourceID { ResourceID(.rollback, user) }
    public static let packages = ResourceID(.packages, "")
    public static func capacity(_ what: String) -> ResourceID { ResourceID(.capacity, what) }
    public static func jwks(_ path: String) -> ResourceID { ResourceID(.jwks, path) }
    public static func idp(_ user: String) -> ResourceID { ResourceID(.idp, user) }
    public static func idpRevoke(_ username: String) -> ResourceID { ResourceID(.idpRevoke, username) }
    public static func k8sUsers(_ user: String) -> ResourceID { ResourceID(.k8sUsers, user) }
    public static func k8sUsersLeft(_ user: String) -> ResourceID { ResourceID(.k8sUsersLeft, user) }
    public static func kubeconfig(_ user: String) -> ResourceID { ResourceID(.kubeconfig, user) }
    public static func vaultHelper(_ user: String) -> ResourceID { ResourceID(.vaultHelper, user) }
    /// One MCP server entry in a person's `~/.claude.json`.
    public static func mcp(_ user: String, _ name: String) -> ResourceID { ResourceID(.mcp, user + ":" + name) }
}

import Foundation
import WorkstationCore
import WorkstationIntegrations

/// The offboarding cut's gate-group step on Authentik: reads and removes the person's membership of the gate group
/// (`authentik.gate_group`, "T3 Users" by default) through `AuthentikClient` (API v3 `core_groups_list`,
/// `core_users_list`, `remove_user`).
public struct AuthentikGateHook: GateMembershipHook {
    public let client: any AuthentikClient
    public let gateGroup: String

    public init(client: any AuthentikClient, gateGroup: String) {
        self.client = client
        self.gateGroup = gateGroup
    }

    /// The hook for what settings configure; nil when Authentik is not configured (the cut records that).
    public static func live(settings: Settings, root: HostRoot, environment: [String: String]) -> AuthentikGateHook? {
        guard let a = settings.authentik,
            let client = IntegrationClients.live(settings: settings, root: root, environment: environment).authentik
        else { return nil }
        return AuthentikGateHook(client: client, gateGroup: a.gateGroup)
    }

    /// - Throws: `AuthentikError`, or `GateHookError.noIdentity` when no authentik_user was recorded for the account.
    public func membership(osUser: String, identity: RecordedIdentity?) throws -> String {
        let name = try username(osUser, identity)
        let group = try client.findGroup(name: gateGroup)
        let member = try client.groupMembers(groupPK: group).contains { $0.username == name }
        return member ? "\(name) member of \(gateGroup)" : "\(name) not a member of \(gateGroup)"
    }

    /// Removes the membership; not being a member is success.
    /// - Throws: `AuthentikError` (403, network...), `GateHookError.noIdentity`.
    public func removeFromGate(osUser: String, identity: RecordedIdentity?) throws {
        let name = try username(osUser, identity)
        let group = try client.findGroup(name: gateGroup)
        guard let user = try client.groupMembers(groupPK: group).first(where: { $0.username == name }) else { return }
        try client.removeMember(groupPK: group, userPK: user.pk)
    }

    private func username(_ osUser: String, _ identity: RecordedIdentity?) throws -> String {
        guard let identity else { throw GateHookError.noIdentity(osUser) }
        return identity.authentikUser
    }
}

public enum GateHookError: Error, CustomStringConvertible {
    case noIdentity(String)
    public var description: String {
        switch self {
        case .noIdentity(let u):
            "no authentik_user is recorded for \(u) (it is recorded at apply); remove them from the gate group in Authentik by hand"
        }
    }
}

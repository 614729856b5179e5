import Foundation
import WorkstationCore
import WorkstationIntegrations

/// The clients of the configured services. A configured service without a client has a `problems` entry (no token).
public struct IntegrationClients: Sendable {
    public var authentik: (any AuthentikClient)?
    public var vault: (any VaultClient)?
    /// Service name (`authentik`, `vault`) -> why there is no client, e.g. no token.
    public var problems: [String: String] = [:]

    public init(authentik: (any AuthentikClient)? = nil, vault: (any VaultClient)? = nil) {
        self.authentik = authentik
        self.vault = vault
    }

    /// The live clients for what settings configure. Tokens: the environment variable when set and non-empty, else
    /// the token file (a host path under `root`), trimmed. Nothing is contacted here.
    public static func live(settings: Settings, root: HostRoot, environment: [String: String]) -> IntegrationClients {
        var c = IntegrationClients()
        if let a = settings.authentik {
            switch token(a.token, root: root, environment: environment) {
            case .success(let t): c.authentik = LiveAuthentikClient(baseURL: a.url, token: t, pageSize: a.pageSize, timeout: a.timeout)
            case .failure(let why): c.problems["authentik"] = AuthentikError.noToken(why.description).description
            }
        }
        if let v = settings.vault {
            switch token(v.token, root: root, environment: environment) {
            case .success(let t): c.vault = LiveVaultClient(baseURL: v.url, token: t, namespace: v.namespace, timeout: v.timeout)
            case .failure(let why): c.problems["vault"] = VaultError.noToken(why.description).description
            }
        }
        return c
    }


    /// The token of one service: the environment variable when set and non-empty, else the file under `root`, trimmed.
    /// - Returns: the token, or why there is none (naming what to set; never a token).
    public static func token(_ source: TokenSource, root: HostRoot, environment: [String: String]) -> Result<String, TokenMessage> {
        if let name = source.environment, let value = environment[name]?.trimmingCharacters(in: .whitespacesAndNewlines), !value.isEmpty {
            return .success(value)
        }
        if let file = source.file {
            guard let data = root.read(file) else { return .failure(TokenMessage("cannot read the token file \(root.path(file)); create it (mode 0600) or set \(source.environment ?? "the token variable")")) }
            let value = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard !value.isEmpty else { return .failure(TokenMessage("the token file \(root.path(file)) is empty")) }
            return .success(value)
        }
        return .failure(TokenMessage("set \(source.environment ?? "the token variable") or token_file in workstation.yaml"))
    }
}

/// A reason without a value in it.
public struct TokenMessage: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ s: String) { description = s }
}

/// The observe step for the services outside the host: reads Authentik (gate group, members, roster users), the
/// `k8s_users` file and the cluster CA (files under the root), and the Vault secrets still needed. Reads only; every
/// failure is recorded in the snapshot for the planner to report, never thrown.
public struct RemoteObserver: Sendable {
    public let root: HostRoot
    public let settings: Settings
    public let clients: IntegrationClients

    public init(root: HostRoot, settings: Settings, clients: IntegrationClients) {
        self.root = root
        self.settings = settings
        self.clients = clients
    }

    public func observe(desired: DesiredState, snapshot: HostSnapshot) -> RemoteSnapshot {
        var r = RemoteSnapshot()
        if let a = settings.authentik { r.authentik = observeAuthentik(a, desired) }
        if let k = settings.kubernetes {
            if let file = k.k8sUsersFile {
                if let data = root.read(file) {
                    r.k8sUsers = K8sUsersObservation.parse(data, file: root.path(file))
                } else {
                    var o = K8sUsersObservation(file: root.path(file))
                    o.problems = [Diagnostic(SourceLocation(file: root.path(file), line: 0, column: 0),
                                             "cannot read the k8s_users file; write it (terraform output -json k8s_users > \(file)) or unset kubernetes.k8s_users_file")]
                    r.k8sUsers = o
                }
            }
            if let ca = k.caFile {
                if let data = root.read(ca) { r.kubernetesCA = data } else { r.kubernetesCAProblem = "kubernetes: cannot read the CA file \(root.path(ca)); fix kubernetes.ca_file (kubeconfigs were not written)" }
            }
        }
        if settings.vault != nil {
            var v = VaultObservation()
            for spec in Planner(settings: settings).secretsToRead(desired, snapshot) {
                guard let client = clients.vault else {
                    v.secrets[spec.name] = .failed(clients.problems["vault"] ?? "vault has no client")
                    continue
                }
                do {
                    v.secrets[spec.name] = .value(try client.readSecret(mount: spec.mount, path: spec.path, key: spec.key))
                } catch {
                    v.secrets[spec.name] = .failed("\(error)")
                }
            }
            r.vault = v
        }
        return r
    }

    func observeAuthentik(_ a: AuthentikSettings, _ d: DesiredState) -> AuthentikObservation {
        var o = AuthentikObservation()
        guard let client = clients.authentik else {
            o.error = clients.problems["authentik"] ?? "authentik has no client"
            return o
        }
        do {
            let pk = try client.findGroup(name: a.gateGroup)
            o.members = try client.groupMembers(groupPK: pk)
            o.groupPK = pk
        } catch {
            o.error = "\(error)"
            return o
        }
        for name in Set(d.identities.map(\.authentikUser)).sorted() {
            if let m = o.members.first(where: { $0.username == name }) {
                o.users[name] = m
                continue
            }
            do { o.users[name] = try client.findUser(username: name) } catch { o.userErrors[name] = "\(error)" }
        }
        return o
    }
}

import Foundation

/// Bytes that must never be shown: every textual, reflective and encoded form is `<redacted, N bytes>`.
/// Encoding writes only that marker, so decoding gives back an empty value: a plan that went through JSON
/// can never carry a secret.
public struct Redacted: Sendable, Hashable, Codable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable
{
    /// The secret itself; read it only to write it where it belongs.
    public let bytes: Data
    public init(_ bytes: Data) { self.bytes = bytes }
    public var description: String { "<redacted, \(bytes.count) bytes>" }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: [:]) }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
    public init(from decoder: any Decoder) throws { bytes = Data() }
}

/// An Authentik user as the API returns it (`core_users_list`): the integer primary key and the username.
public struct IdPUser: Sendable, Hashable, Codable {
    public var pk: Int
    public var username: String
    public init(pk: Int, username: String) {
        self.pk = pk
        self.username = username
    }
}

/// What observe read from Authentik for the gate group.
public struct AuthentikObservation: Sendable, Hashable {
    /// The gate group's primary key (a UUID string); nil when the group could not be read.
    public var groupPK: String?
    /// Current members of the gate group.
    public var members: [IdPUser] = []
    /// Roster authentik_users found by exact username.
    public var users: [String: IdPUser] = [:]
    /// authentik_user -> why it could not be looked up (unknown user, 403, network...).
    public var userErrors: [String: String] = [:]
    /// A failure that affects everyone (the group lookup failed); every user's host side is held back.
    public var error: String?
    public init() {}
}

/// One entry of the live `k8s_users` map (the infrastructure's Terraform variable).
public struct K8sUserEntry: Sendable, Hashable, Codable {
    public var role: String
    public var namespaces: [String]
    public var email: String?
    /// Where the entry is in the file.
    public var location: SourceLocation
    public init(role: String, namespaces: [String], email: String? = nil, location: SourceLocation) {
        self.role = role
        self.namespaces = namespaces
        self.email = email
        self.location = location
    }
}

/// The `k8s_users` file as observed.
public struct K8sUsersObservation: Sendable, Hashable {
    /// The host path it was read from.
    public var file: String
    /// k8s_user -> entry; empty when the file could not be read.
    public var entries: [String: K8sUserEntry] = [:]
    /// Why the file could not be read or parsed (located); non-empty stops plan and apply.
    public var problems: [Diagnostic] = []
    public init(file: String) { self.file = file }

    /// Parses `{"alice": {"role": "power-user", "namespaces": [], "email": ...}}`, or the same map wrapped as
    /// Terraform prints an output (`{"sensitive": false, "type": ..., "value": {...}}`). JSON or YAML.
    /// Unknown keys inside an entry are ignored (the infrastructure may carry more).
    /// - Returns: the observation; problems are located in `file`.
    public static func parse(_ data: Data, file: String) -> K8sUsersObservation {
        var out = K8sUsersObservation(file: file)
        let diags = DiagnosticCollector()
        do {
            guard var doc = try loadYAML(data, file: file) else {
                out.problems = [
                    Diagnostic(
                        SourceLocation(file: file, line: 0, column: 0),
                        "the k8s_users file is empty; write the map (terraform output -json k8s_users)"
                    )
                ]
                return out
            }
            if let pairs = doc.mapping("k8s_users", DiagnosticCollector()),
                pairs.contains(where: { $0.key == "value" }),
                pairs.contains(where: { $0.key == "type" || $0.key == "sensitive" }),
                let v = pairs.first(where: { $0.key == "value" })
            {
                doc = v.value
            }
            for p in doc.mapping("k8s_users", diags) ?? [] {
                let ent = p.value
                guard let pairs = ent.mapping("k8s_users entry '\(p.key)'", diags) else { continue }
                var role: String?
                var namespaces: [String] = []
                var email: String?
                for q in pairs {
                    switch q.key {
                    case "role": role = q.value.string("role of '\(p.key)'", diags)
                    case "namespaces":
                        namespaces = q.value.stringList("namespaces of '\(p.key)'", diags)?.map(\.0) ?? []
                    case "email": email = q.value.isNull ? nil : q.value.string("email of '\(p.key)'", diags)
                    default: break
                    }
                }
                guard let role else {
                    diags.error(p.keyValue.location, "k8s_users entry '\(p.key)' has no role")
                    continue
                }
                out.entries[p.key] = K8sUserEntry(
                    role: role,
                    namespaces: namespaces,
                    email: email,
                    location: p.keyValue.location
                )
            }
        } catch let f as ValidationFailure {
            diags.error(
                f.diagnostics.first?.location ?? SourceLocation(file: file, line: 0, column: 0),
                f.diagnostics.first?.message ?? "cannot parse"
            )
        } catch {
            diags.error(SourceLocation(file: file, line: 0, column: 0), "cannot parse: \(error)")
        }
        out.problems = diags.diagnostics
        if !out.problems.isEmpty { out.entries = [:] }
        return out
    }
}

/// One secret read from Vault KV v2: the value or why it could not be read (never the value in the message).
public enum SecretRead: Sendable, Hashable {
    case value(Redacted)
    case failed(String)
}

/// What observe read from Vault.
public struct VaultObservation: Sendable, Hashable {
    /// Secret file name -> the read (only secrets some user still needs are read).
    public var secrets: [String: SecretRead] = [:]
    public init() {}
}

/// What observe read from the services outside the host. nil members: the service is not configured.
public struct RemoteSnapshot: Sendable, Hashable {
    public var authentik: AuthentikObservation?
    public var k8sUsers: K8sUsersObservation?
    /// The cluster CA (PEM bytes) from `kubernetes.ca_file`, for the kubeconfig.
    public var kubernetesCA: Data?
    /// Why the CA file could not be read.
    public var kubernetesCAProblem: String?
    public var vault: VaultObservation?
    public init() {}
}

import Foundation
import WorkstationCore
import WorkstationIntegrations

#if canImport(Glibc)
import Glibc
#endif

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
    /// the token file (a host path under `root`), trimmed (`token(_:root:environment:)`). TLS: the service's
    /// `ca_file` (under `root`) besides the system's CAs, and `SSL_CERT_FILE` in `environment` in place of the
    /// system's store. Nothing is contacted here.
    public static func live(settings: Settings, root: HostRoot, environment: [String: String]) -> IntegrationClients {
        var c = IntegrationClients()
        if let a = settings.authentik {
            let trust = TLSTrust.from(caFile: a.caFile.map(root.path), environment: environment)
            switch token(a.token, root: root, environment: environment) {
            case .success(let t) where trust.problem == nil:
                c.authentik = LiveAuthentikClient(
                    baseURL: a.url,
                    token: t,
                    pageSize: a.pageSize,
                    timeout: a.timeout,
                    trust: trust
                )
            case .success: c.problems["authentik"] = "authentik: \(trust.problem!)"
            case .failure(let why): c.problems["authentik"] = AuthentikError.noToken(why.description).description
            }
        }
        if let v = settings.vault {
            let trust = TLSTrust.from(caFile: v.caFile.map(root.path), environment: environment)
            switch token(v.token, root: root, environment: environment) {
            case .success(let t) where trust.problem == nil:
                c.vault = LiveVaultClient(
                    baseURL: v.url,
                    token: t,
                    namespace: v.namespace,
                    timeout: v.timeout,
                    trust: trust
                )
            case .success: c.problems["vault"] = "vault: \(trust.problem!)"
            case .failure(let why): c.problems["vault"] = VaultError.noToken(why.description).description
            }
        }
        return c
    }

    /// The token of one service: the environment variable when set and non-empty, else the file under `root`,
    /// trimmed of surrounding whitespace.
    ///
    /// The file is opened without following a symlink and must be a regular file owned by root with no group or
    /// other permission bits (as `ssh(1)` demands of a private key: "UNPROTECTED PRIVATE KEY FILE"), at most
    /// 64 KiB. A token with a line break, control character or space inside it is refused (it would split the
    /// request header it travels in).
    /// - Returns: the token, or why there is none (naming the variable or file and the fix; never the token).
    public static func token(
        _ source: TokenSource,
        root: HostRoot,
        environment: [String: String]
    ) -> Result<String, TokenMessage> {
        if let name = source.environment,
            let value = environment[name]?.trimmingCharacters(in: .whitespacesAndNewlines), !value.isEmpty
        {
            if let why = tokenTextProblem(value) {
                return .failure(TokenMessage("the value of \(name) \(why); set it to the token alone"))
            }
            return .success(value)
        }
        if let file = source.file {
            let path = root.path(file)
            let data: Data
            switch readPrivateFile(path) {
            case .success(let d): data = d
            case .failure(let why): return .failure(why)
            }
            let value = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard !value.isEmpty else { return .failure(TokenMessage("the token file \(path) is empty")) }
            if let why = tokenTextProblem(value) {
                return .failure(TokenMessage("the token file \(path) \(why); write the token alone on one line"))
            }
            return .success(value)
        }
        return .failure(
            TokenMessage("set \(source.environment ?? "the token variable") or token_file in workstation.yaml")
        )
    }

    /// Why a trimmed token cannot be sent in a header (RFC 9110 section 5.5: no CR, LF or NUL; a token has no
    /// spaces or controls either), or nil. Never quotes the token.
    static func tokenTextProblem(_ value: String) -> String? {
        if value.unicodeScalars.contains(where: { $0 == "\n" || $0 == "\r" }) {
            return "holds a line break inside the token"
        }
        if value.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            return "holds a control character"
        }
        if value.contains(where: \.isWhitespace) { return "holds a space inside the token" }
        if !value.unicodeScalars.allSatisfy(\.isASCII) { return "holds a non-ASCII character" }
        return nil
    }

    /// The bytes of a root-only file: opened with `O_NOFOLLOW`, then `fstat(2)` of what was opened.
    static func readPrivateFile(_ path: String) -> Result<Data, TokenMessage> {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            let err = errno
            if err == ELOOP {
                return .failure(
                    TokenMessage(
                        "the token file \(path) is a symlink; point token_file at the file itself (root-owned, mode 0600)"
                    )
                )
            }
            return .failure(
                TokenMessage(
                    "cannot read the token file \(path) (\(String(cString: strerror(err)))); create it (owned by root, mode 0600) or set the token variable"
                )
            )
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG else {
            return .failure(
                TokenMessage(
                    "the token file \(path) is not a regular file; write the token into a file (owned by root, mode 0600)"
                )
            )
        }
        if st.st_uid != 0 {
            return .failure(
                TokenMessage(
                    "the token file \(path) is owned by uid \(st.st_uid), not root: its owner could replace the token; chown root: \(path)"
                )
            )
        }
        if st.st_mode & 0o077 != 0 {
            return .failure(
                TokenMessage(
                    "the token file \(path) has mode \(String(st.st_mode & 0o7777, radix: 8)): permissions are too open, group or others can read or change it; chmod 600 \(path)"
                )
            )
        }
        guard st.st_size <= 64 << 10 else {
            return .failure(TokenMessage("the token file \(path) is over 64 KiB; it should hold the token alone"))
        }
        var out = Data()
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &buf, buf.count)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            out.append(contentsOf: buf[0..<n])
            if out.count > 64 << 10 { break }
        }
        return .success(out)
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
                    o.problems = [
                        Diagnostic(
                            SourceLocation(file: root.path(file), line: 0, column: 0),
                            "cannot read the k8s_users file; write it (terraform output -json k8s_users > \(file)) or unset kubernetes.k8s_users_file"
                        )
                    ]
                    r.k8sUsers = o
                }
            }
            if let ca = k.caFile {
                if let data = root.read(ca) {
                    r.kubernetesCA = data
                } else {
                    r.kubernetesCAProblem =
                        "kubernetes: cannot read the CA file \(root.path(ca)); fix kubernetes.ca_file (kubeconfigs were not written)"
                }
            }
        }
        if settings.vault != nil {
            var v = VaultObservation()
            for spec in Planner(settings: settings).secretsToRead(desired, snapshot) {
                guard let client = clients.vault else {
                    v.secrets[Planner.observationKey(spec)] = .failed(
                        clients.problems["vault"] ?? "vault has no client"
                    )
                    continue
                }
                do {
                    v.secrets[Planner.observationKey(spec)] = .value(
                        try client.readSecret(mount: spec.mount, path: spec.path, key: spec.key)
                    )
                } catch {
                    v.secrets[Planner.observationKey(spec)] = .failed("\(error)")
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

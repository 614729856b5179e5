import Foundation
import Testing
import WorkstationCore
import WorkstationHost
import WorkstationIntegrations
import WorkstationTestSupport

/// The secret values the fakes serve; no output channel may ever contain them.
enum Secrets {
    static let haToken = "SECRETHA-7f3k2m9q"
    static let haURL = "https://ha.example.org/api/mcp?token=\(haToken)"
    static let beads = "SECRETBEADS-p4ssw0rd-x8"
}

/// A seeded sandbox root with a roster, settings and the fakes wired in.
final class Sandbox {
    let temp: TempRoot
    var dir: String { temp.path }
    let root: HostRoot
    let authentik: FakeAuthentik
    let vault: FakeVault
    var roster: String
    var k8sUsers: String?
    var extraSettings = ""
    var authentikSection: String?
    var vaultSection: String?
    var kubernetesSection: String?

    static let defaultRoster = """
        users:
          carol: { authentik_user: carol, k8s_user: carol, tier: admin }
          alice: { authentik_user: alice.smith, k8s_user: alice, tier: power-user, email: alice@example.org, flags: [ha] }
          bob-dev: { authentik_user: bob, k8s_user: bob, tier: namespace-owner, namespaces: [team-bob], email: bob@example.org }

        """
    static let defaultK8sUsers = """
        {"sensitive": false, "type": ["map"], "value": {
          "carol": {"role": "admin", "namespaces": []},
          "alice": {"role": "power-user", "namespaces": [], "email": "alice@example.org"},
          "bob": {"role": "namespace-owner", "namespaces": ["team-bob"]}}}

        """

    init(
        authentikUsers: [String] = ["carol", "alice.smith", "bob", "mallory", "zed", "yann"],
        members: [String] = ["carol"]
    ) throws {
        temp = try TempRoot("integ")
        root = HostRoot(temp.path)
        authentik = try FakeAuthentik(users: authentikUsers, members: members)
        vault = try FakeVault()
        vault.secrets["secret/openclaw"] = [
            FakeVault.Version(data: ["ha_url": "old"]),
            FakeVault.Version(data: ["ha_url": Secrets.haURL, "other": "x"]),
        ]
        vault.secrets["secret/beads"] = [FakeVault.Version(data: ["password": Secrets.beads])]
        roster = Self.defaultRoster
        k8sUsers = Self.defaultK8sUsers
        authentikSection = """
            authentik:
              url: \(authentik.url)
              token_file: /etc/workstation/authentik.token
              gate_group: T3 Users
              page_size: 50
            """
        kubernetesSection = """
            kubernetes:
              k8s_users_file: /etc/workstation/k8s_users.json
              server: https://k8s.example.org:6443
              cluster_name: home
              oidc_issuer_url: https://auth.example.org/application/o/kubernetes/
              oidc_client_id: kubernetes
              ca_data: \(Data("-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----\n".utf8).base64EncodedString())
            """
        vaultSection = """
            vault:
              url: \(vault.url)
              token_file: /etc/workstation/vault.token
              oidc_roles: {power-user: ws-read, namespace-owner: ws-ns}
              secret_files:
                - name: ha-mcp
                  path: openclaw
                  key: ha_url
                  target: .claude.json
                  flags: [ha]
                  template: '{"mcpServers": {"ha": {"type": "http", "url": {{value_json}}}}}'
                - name: beads
                  path: beads
                  key: password
                  target: .local/share/beads/credential
                  tiers: [power-user, namespace-owner]
            """
        try SandboxRoot.seed(root, settings: Settings())
        try write("/etc/workstation/authentik.token", authentik.token + "\n")
        try write("/etc/workstation/vault.token", vault.token + "\n")
    }

    var rosterPath: String { root.path("/etc/workstation/roster.yaml") }
    var settingsPath: String { root.path("/etc/workstation/workstation.yaml") }

    func write(_ hostPath: String, _ content: String, mode: Int = 0o600) throws {
        try temp.write(hostPath, content, mode: mode)
    }

    /// Writes the roster, settings and k8s_users file for this run.
    func prepare() throws {
        try roster.write(toFile: rosterPath, atomically: true, encoding: .utf8)
        let settings =
            [authentikSection, kubernetesSection, vaultSection].compactMap { $0 }.joined(separator: "\n") + "\n"
            + extraSettings
        try settings.write(toFile: settingsPath, atomically: true, encoding: .utf8)
        if let k8sUsers {
            try write("/etc/workstation/k8s_users.json", k8sUsers, mode: 0o644)
        } else {
            try? FileManager.default.removeItem(atPath: root.path("/etc/workstation/k8s_users.json"))
        }
    }

    func inputs() throws -> Inputs {
        try prepare()
        return try Engine.load(InputPaths(roster: rosterPath, settings: settingsPath), root: root)
    }

    func plan() throws -> Plan { try Engine.plan(try inputs(), root: root, clients: nil).0 }

    func apply() throws -> ApplyOutcome {
        try Engine.apply(try inputs(), root: root, runner: ProcessRunner(), clients: nil)
    }

    func home(_ user: String) -> String { root.path("/home/\(user)") }

    func stat(_ hostPath: String) -> (mode: Int, uid: Int)? {
        guard let a = try? FileManager.default.attributesOfItem(atPath: root.path(hostPath)) else { return nil }
        return ((a[.posixPermissions] as? NSNumber)?.intValue ?? -1, (a[.ownerAccountID] as? NSNumber)?.intValue ?? -1)
    }

    func uid(_ user: String) -> Int? {
        AccountDatabase.passwd(root.read("/etc/passwd") ?? Data()).first { $0.name == user }?.uid
    }

    /// Every entry under the root with its mode, owner and bytes, for "nothing changed" checks.
    func snapshot() -> TreeSnapshot { temp.snapshot() }
}

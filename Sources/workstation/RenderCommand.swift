import ArgumentParser
import Foundation
import WorkstationCore
import WorkstationHost

/// `workstation render ...`: prints what workstation does not apply itself (cluster manifests, the k8s_users
/// entries, the edge policy branch) for an operator to review and apply. Reads the inputs only.
struct RenderCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "render",
        abstract:
            "Print the RBAC manifests, the k8s_users entries, the Authentik edge-policy branch or the Kubernetes workspaces for the roster.",
        subcommands: [RenderRBAC.self, RenderK8sUsers.self, RenderAuthentikPolicy.self, RenderWorkspaces.self]
    )
}

struct RenderRBAC: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rbac",
        abstract:
            "ClusterRole oidc-power-user-readonly (no Secrets) and the per-user bindings; pipe to kubectl apply -f -."
    )
    @OptionGroup var inputs: InputOptions
    @OptionGroup var rootOptions: RootOptions

    func run() throws {
        let root = rootOptions.hostRoot
        try printRendered(inputs, rootOptions) { loaded in
            let k = loaded.settings.kubernetes ?? KubernetesSettings()
            // People the infrastructure's k8s_users already binds get no second binding (one owner per object).
            var provisioned: Set<String> = []
            if let file = k.k8sUsersFile {
                guard let data = root.read(file) else {
                    throw RenderError([
                        "cannot read the k8s_users file \(root.path(file)); write it (terraform output -json k8s_users > \(file)) or unset kubernetes.k8s_users_file"
                    ])
                }
                let obs = K8sUsersObservation.parse(data, file: root.path(file))
                if !obs.problems.isEmpty { throw ValidationFailure(obs.problems) }
                provisioned = Set(obs.entries.keys)
            }
            return try KubernetesManifests.rbac(roster: loaded.roster, settings: k, provisioned: provisioned)
        }
    }
}

struct RenderK8sUsers: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "k8s-users",
        abstract: "The k8s_users entries (Terraform syntax) the roster implies; workstation never edits k8s_users."
    )
    @OptionGroup var inputs: InputOptions
    @OptionGroup var rootOptions: RootOptions

    func run() throws {
        try printRendered(inputs, rootOptions) { KubernetesManifests.k8sUsers(roster: $0.roster) }
    }
}

struct RenderAuthentikPolicy: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "authentik-policy",
        abstract: "The expression-policy branch that gates the web front door on the gate group."
    )
    @OptionGroup var inputs: InputOptions
    @OptionGroup var rootOptions: RootOptions

    func run() throws {
        try printRendered(inputs, rootOptions) { loaded in
            guard let a = loaded.settings.authentik else {
                printError(
                    "error: authentik is not configured; add authentik: {url: ..., gate_group: ..., gate_host: ...} to workstation.yaml"
                )
                throw ExitCode(1)
            }
            return KubernetesManifests.authentikPolicy(a)
        }
    }
}

/// Loads the inputs and prints what `render` makes of them (no trailing newline added); errors exit as every
/// command's do, an `ExitCode` thrown by `render` as it is.
private func printRendered(
    _ inputs: InputOptions,
    _ rootOptions: RootOptions,
    _ render: (Inputs) throws -> String
) throws {
    do {
        say(try render(Engine.load(inputs.paths, root: rootOptions.hostRoot)), terminator: "")
    } catch let e as ExitCode {
        throw e
    } catch {
        throw reportedExit(error)
    }
}

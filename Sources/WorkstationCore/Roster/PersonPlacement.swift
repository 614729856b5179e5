import Foundation

/// Where a person's workspace runs (docs/scale-out.md): on this host as a constrained account, or on Kubernetes as
/// rendered objects the operator's pipeline applies. Written `placement: host | kubernetes` in the roster, with the
/// default in `workstation.yaml` (`placement:`, itself defaulting to `host`).
public enum PersonPlacement: String, Sendable, Hashable, Codable, CaseIterable {
    /// An account, a home, per-user units and a memory budget on this host (everything before scale-out).
    case host
    /// A StatefulSet of one replica, a claim for the home, a Service and a NetworkPolicy in the cluster
    /// (`workstation render workspaces`); the dispatcher routes to the Service.
    case kubernetes

    /// The located message for a value that is neither.
    static func refusal(_ text: String, key: String) -> String {
        "\(key) must be host or kubernetes, got '\(printable(text))'"
    }
}

extension RosterEntry {
    /// Where this person's workspace runs: their roster `placement`, else the settings default. Admins are adopted on
    /// the host (the config base author) and are always `host`.
    public func placement(_ settings: Settings) -> PersonPlacement {
        isAdopted ? .host : (placement ?? settings.placement)
    }
}

extension Roster {
    /// The entries whose workspace runs on Kubernetes, in file order.
    public func kubernetesPlaced(_ settings: Settings) -> [RosterEntry] {
        entries.filter { $0.placement(settings) == .kubernetes }
    }
}

/// `workspace-<os_user>` with `_` as `-`: the name of the person's StatefulSet, Service, NetworkPolicy and
/// ServiceAccount (a DNS-1035 label, Kubernetes "Object Names and IDs"); nil when the os_user cannot make one
/// (it ends in `-` or `_`).
public func workspaceObjectName(_ osUser: String) -> String? {
    let name = "workspace-" + osUser.replacingOccurrences(of: "_", with: "-")
    guard name.utf8.count <= 63, let last = name.last, last.isASCII, last.isLowercase || last.isNumber else {
        return nil
    }
    return name
}

/// Roster checks of the placement of each person, reported into `diags` (`RosterValidator`): a kubernetes-placed
/// person needs the `workspaces:` section in the settings, a pinned uid (the home volume's files belong to it and
/// every render must give the same), and an os_user that names Kubernetes objects; two people must not make one
/// object name.
func checkPlacements(_ roster: Roster, settings: Settings, _ diags: DiagnosticCollector) {
    var objectNames: [String: RosterEntry] = [:]
    for e in roster.entries where e.placement(settings) == .kubernetes {
        let at = e.placement == nil ? e.location : e.location(of: "placement")
        let why = e.placement == nil ? " (the settings default placement: kubernetes)" : ""
        if settings.workspaces == nil {
            diags.error(
                at,
                "'\(e.osUser)' is placed on kubernetes\(why), but the settings have no workspaces: section (image, namespace...); add it (docs/scale-out.md) or write placement: host"
            )
        }
        if e.uid == nil {
            diags.error(
                at,
                "'\(e.osUser)' is placed on kubernetes\(why) without a pinned uid; pin one (uid: 1100): the workspace runs as it and the files of the home volume belong to it, so every render must give the same"
            )
        }
        if e.port != nil || !e.ports.isEmpty {
            diags.error(
                e.location(of: e.port != nil ? "port" : "ports"),
                "'\(e.osUser)' is placed on kubernetes: port and ports pin the ports of units on this host; remove them (the dispatcher reaches the workspace on its Service)"
            )
        }
        guard let name = workspaceObjectName(e.osUser) else {
            diags.error(
                at,
                "os_user '\(e.osUser)' cannot name Kubernetes objects (workspace-\(e.osUser) must end in a letter or digit); rename the account or place it on host"
            )
            continue
        }
        if let other = objectNames[name] {
            diags.error(
                at,
                "'\(e.osUser)' and '\(other.osUser)' (line \(other.location.line)) would both name the Kubernetes objects \(name) ('_' becomes '-'); rename one"
            )
        } else {
            objectNames[name] = e
        }
    }
}

import Foundation
import WorkstationCore
import WorkstationIntegrations
import Crypto

/// `sha256:<hex>` of `data` (FIPS 180-4, swift-crypto): what `state.written_digests` records for a file written.
public func contentDigest(_ data: Data) -> String {
    "sha256:" + SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
}

/// Applies the identity and secrets actions: Authentik gate membership (additive), and files written once under a
/// home (kubeconfig, Vault helper, secret files) through the safe home-writer, recorded in state.
extension Executor {
    func runIntegration(_ action: Action) throws {
        switch action {
        case .addIdPGroupMember(let group, let groupPK, _, let userPK):
            guard let client = clients.authentik else {
                throw IntegrationApplyError.noClient("authentik", clients.problems["authentik"], group)
            }
            try client.addMember(groupPK: groupPK, userPK: userPK)
        case .createHomeFile(let user, let path, let content, let mode):
            let rel = try createOnce(user, path, content, mode)
            touchedUsers.insert(user)
            var files = state.homeFiles ?? [:]
            if files[user]?.contains(rel) != true { files[user, default: []].append(rel) }
            state.homeFiles = files
        case .createSecretFile(let user, let path, let content, let mode):
            _ = try createOnce(user, path, content.bytes, mode)
            touchedUsers.insert(user)
            if state.secretFilesWritten[user]?.contains(path) != true { state.secretFilesWritten[user, default: []].append(path) }
            state.writtenDigests[user, default: [:]][path] = contentDigest(content.bytes)
            state.secretFilesPending[user]?.removeAll { $0 == path }
            if state.secretFilesPending[user]?.isEmpty == true { state.secretFilesPending[user] = nil }
        default:
            break
        }
    }

    /// `O_EXCL` create under the home, parents created 0700 and owned by the user; returns the home-relative path.
    private func createOnce(_ user: String, _ path: String, _ content: Data, _ mode: UInt32) throws -> String {
        let (home, rel) = try split(user, path)
        try HomeWriter(root: root).createFile(home: home, relative: rel, content: content, owner: try owner(user), mode: mode_t(mode), createParents: true)
        return rel
    }
}

/// A service action could not run.
public enum IntegrationApplyError: Error, CustomStringConvertible {
    case noClient(String, String?, String)
    public var description: String {
        switch self {
        case .noClient(let service, let why, let what): "\(service) is not usable (\(why ?? "not configured")); \(what) unchanged"
        }
    }
}

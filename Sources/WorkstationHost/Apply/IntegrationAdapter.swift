import Crypto
import Foundation
import WorkstationCore
import WorkstationIntegrations

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
            if state.secretFilesWritten[user]?.contains(path) != true {
                state.secretFilesWritten[user, default: []].append(path)
            }
            state.writtenDigests[user, default: [:]][path] = contentDigest(content.bytes)
            state.secretFilesPending[user]?.removeAll { $0 == path }
            if state.secretFilesPending[user]?.isEmpty == true { state.secretFilesPending[user] = nil }
        case .addMCPServer(let user, let path, let name, let entry):
            try addMCPServer(user, path, name, entry)
            touchedUsers.insert(user)
            var files = state.homeFiles ?? [:]
            let marker = ".claude.json#mcpServers.\(name)"
            if files[user]?.contains(marker) != true { files[user, default: []].append(marker) }
            state.homeFiles = files
        default:
            break
        }
    }

    /// Reads `~/.claude.json` afresh (never following a link), adds the entry where absent and replaces the file
    /// (temp file + `renameat(2)`, owner and mode kept); re-reads just before the rename and gives up when the
    /// file changed meanwhile (Claude Code rewrites it while sessions run): the next run tries again.
    /// - Throws: `HomeWriteError.refused` for a file that is not a JSON object, or that changed while edited.
    private func addMCPServer(_ user: String, _ path: String, _ name: String, _ entry: String) throws {
        let (home, rel) = try split(user, path)
        let who = try owner(user)
        let writer = HomeWriter(root: root)
        let limit = 64 << 20
        let before = try writer.inspect(home: home, relative: rel, owner: who, maxBytes: limit)
        if before.kind == .absent {
            guard case .write(let fresh) = ClaudeJSON.addMCPServer(nil, name: name, entry: entry) else { return }
            try writer.createFile(
                home: home,
                relative: rel,
                content: fresh,
                owner: who,
                mode: 0o600,
                createParents: false
            )
            return
        }
        guard before.kind == .file, let content = before.content else {
            throw HomeWriteError.refused(
                root.path(path),
                "it is not a regular file of at most \(limit >> 20) MiB; left alone"
            )
        }
        switch ClaudeJSON.addMCPServer(content, name: name, entry: entry) {
        case .present: return
        case .refused(let why):
            throw HomeWriteError.refused(root.path(path), "\(why); left alone, mcpServers.\(name) not added")
        case .write(let edited):
            let again = try writer.inspect(home: home, relative: rel, owner: who, maxBytes: limit)
            guard again.content == content else {
                throw HomeWriteError.refused(
                    root.path(path),
                    "it changed while being edited; left alone, the next run adds mcpServers.\(name)"
                )
            }
            try writer.replaceFile(home: home, relative: rel, content: edited, owner: who)
        }
    }

    /// `O_EXCL` create under the home, parents created 0700 and owned by the user; returns the home-relative path.
    private func createOnce(_ user: String, _ path: String, _ content: Data, _ mode: UInt32) throws -> String {
        let (home, rel) = try split(user, path)
        try HomeWriter(root: root).createFile(
            home: home,
            relative: rel,
            content: content,
            owner: try owner(user),
            mode: mode_t(mode),
            createParents: true
        )
        return rel
    }
}

/// A service action could not run.
public enum IntegrationApplyError: Error, CustomStringConvertible {
    case noClient(String, String?, String)
    public var description: String {
        switch self {
        case .noClient(let service, let why, let what):
            "\(service) is not usable (\(why ?? "not configured")); \(what) unchanged"
        }
    }
}

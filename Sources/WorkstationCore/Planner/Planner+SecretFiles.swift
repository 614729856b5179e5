import Foundation

// Secret-file hygiene: the modes and owners of each person's secret files, part of every apply (and of setup-host).
extension Planner {
    /// The secret files of `u` and each directory between them and the home, for `lstat` without following links.
    public func secretFileWatchedPaths(_ u: DesiredUser) -> [WatchedPath] {
        var out: [WatchedPath] = []
        // Each prefix of each relative path (split once, in `secretFileLayout`), joined as `secretFileChanges` joins
        // them to look them up.
        for file in secretFileLayout {
            for prefix in file.prefixes { out.append(WatchedPath(joinPath(u.home, prefix))) }
        }
        return out
    }

    /// `~/.claude/settings.json`, `~/.claude.json`, `~/.claude/.credentials.json`, `~/.vault-token`, `~/.kube/config`
    /// must be owned by the user and carry no group or other bits. Looser modes are tightened (tighten); a wrong owner,
    /// a link or a linked directory on the way is reported, never chowned or followed.
    public func secretFileChanges(_ u: DesiredUser, _ o: HostSnapshot) -> [Change] {
        guard u.accountExists else { return [] }
        var out: [Change] = []
        var reported = Set<String>()
        files: for (rel, prefixes) in secretFileLayout {
            for prefix in prefixes.dropLast() {
                let dir = joinPath(u.home, prefix)
                let st = o.path(dir)
                if st.kind == .absent { continue files }
                if st.kind == .directory { continue }
                if reported.insert(dir).inserted {
                    out.append(
                        Change(
                            id: .secret(dir),
                            user: u.osUser,
                            kind: .conflict,
                            safety: .tighten,
                            summary:
                                "refused: \(dir) is a \(st.kind == .symlink ? "symlink to \(st.linkTarget ?? "?")" : st.kind.rawValue); secret files under it are not checked",
                            reason:
                                "workstation never follows a link inside a home; make \(dir) a real directory owned by \(u.osUser)"
                        )
                    )
                }
                continue files
            }
            // The file by its last prefix: `.kube//config` is looked up as `.kube/config`, as it is watched.
            let path = joinPath(u.home, prefixes.last ?? rel)
            let st = o.path(path)
            switch st.kind {
            case .absent: continue
            case .file: break
            case .symlink:
                out.append(
                    Change(
                        id: .secret(path),
                        user: u.osUser,
                        kind: .conflict,
                        safety: .tighten,
                        summary:
                            "refused: \(path) is a symlink to \(st.linkTarget ?? "?"); not followed, not tightened",
                        reason:
                            "a secret file must be a regular file owned by \(u.osUser); replace the link with the file itself"
                    )
                )
                continue
            default:
                out.append(
                    Change(
                        id: .secret(path),
                        user: u.osUser,
                        kind: .conflict,
                        safety: .tighten,
                        summary: "refused: \(path) is a \(st.kind.rawValue), not a regular file",
                        reason: "fix it by hand"
                    )
                )
                continue
            }
            if st.linkCount > 1 {
                out.append(
                    Change(
                        id: .secret(path),
                        user: u.osUser,
                        kind: .conflict,
                        safety: .tighten,
                        summary: "refused: \(path) has \(st.linkCount) hard links; not tightened",
                        reason: "a hard link may be another file's name; replace it with a copy owned by \(u.osUser)"
                    )
                )
                continue
            }
            if st.uid != u.uid {
                out.append(
                    Change(
                        id: .secret(path),
                        user: u.osUser,
                        kind: .conflict,
                        safety: .tighten,
                        summary: "\(path) is owned by uid \(st.uid), not \(u.osUser) (uid \(u.uid))",
                        fields: [FieldChange("owner", "uid \(st.uid)", u.osUser)],
                        reason:
                            "workstation never chowns a secret file: check who wrote it, then chown \(u.osUser) \(path) and chmod 600"
                    )
                )
                continue
            }
            let mode = st.mode & 0o7777
            let tight = mode & 0o700
            if tight != mode {
                out.append(
                    Change(
                        id: .secret(path),
                        user: u.osUser,
                        kind: .update,
                        safety: .tighten,
                        summary: "tighten \(path) to \(octal(tight)): it holds credentials",
                        fields: [FieldChange("mode", octal(mode), octal(tight))],
                        action: .tightenHomeFile(user: u.osUser, path: path, mode: 0o700)
                    )
                )
            }
        }
        return out
    }
}

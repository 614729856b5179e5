import Foundation
import WorkstationCore

#if canImport(Glibc)
import Glibc
#endif

extension Observer {
    /// Located errors for the paths root writes to or trusts (`Settings.rootPaths`) and the config base, from
    /// `lstat(2)` of every directory on the way (below the root prefix):
    /// - a symlink on the way (or a directory setting that is itself a symlink): root never writes through a link,
    ///   whoever made it, since its target can be changed after the check;
    /// - a directory every account can write (mode `o+w`, sticky or not): anyone could create or swap the next
    ///   component first;
    /// - a directory owned by an account other than root (or the user running workstation, for a sandbox root):
    ///   its owner could do the same (not checked on the way to the config base, which an admin may own).
    /// Nothing is created or followed.
    public func settingsPathDiagnostics() -> [Diagnostic] {
        var out: [Diagnostic] = []
        let me = geteuid()
        var targets = settings.rootPaths.map {
            (key: $0.key, path: $0.path, includeSelf: $0.isDirectory, ownerMatters: true)
        }
        targets.append((key: "config_base", path: settings.configBase, includeSelf: true, ownerMatters: false))
        for t in targets {
            var components = t.path.split(separator: "/").map(String.init)
            if !t.includeSelf { _ = components.popLast() }
            var current = ""
            for c in components {
                current += "/" + c
                var st = stat()
                guard lstat(root.path(current), &st) == 0 else { break }
                let kind = st.st_mode & S_IFMT
                let at = settings.location(of: t.key)
                if kind == S_IFLNK {
                    out.append(
                        Diagnostic(
                            at,
                            "\(t.key) \(t.path): \(current) is a symlink; root never writes or trusts a path through a link, so name the real directory (readlink -f \(current))"
                        )
                    )
                    break
                }
                guard kind == S_IFDIR else { break }
                if st.st_mode & 0o002 != 0 {
                    out.append(
                        Diagnostic(
                            at,
                            "\(t.key) \(t.path): \(current) is writable by every account (mode \(String(st.st_mode & 0o7777, radix: 8))), so anyone could create or swap what is below it; chmod o-w \(current), or move the setting to a root-owned directory"
                        )
                    )
                    break
                }
                if t.ownerMatters && st.st_uid != 0 && st.st_uid != me {
                    out.append(
                        Diagnostic(
                            at,
                            "\(t.key) \(t.path): \(current) is owned by uid \(st.st_uid), who could swap what is below it; chown root: \(current), or move the setting to a root-owned directory"
                        )
                    )
                    break
                }
            }
        }
        return out
    }
}

import Foundation
import Synchronization
import WorkstationTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A git-crypt fixture: a work repository with `secret.txt` encrypted (`filter=git-crypt diff=git-crypt`) and
/// plain files, and a bare copy ready for dumb HTTP (`git update-server-info`) at `<dir>/srv/infra.git`.
final class InfraFixture {
    let temp: TempRoot
    var dir: String { temp.path }
    var work: String { dir + "/work" }
    var served: String { dir + "/srv" }
    static let readme = "# infra\nplain text everyone may read\n"

    init() throws {
        temp = try TempRoot("infra")
        let dir = temp.path
        let r = try TestProcess.shell(
            """
            set -e
            mkdir -p '\(dir)' && cd '\(dir)'
            git init -q -b main work && cd work
            git config user.email admin@example.org && git config user.name admin
            git-crypt init >/dev/null
            printf 'secret.txt filter=git-crypt diff=git-crypt\\n' > .gitattributes
            printf 'db_password = hunter2\\n' > secret.txt
            printf '%s' '\(Self.readme)' > README.md
            mkdir docs && printf 'notes\\n' > docs/notes.md
            git add -A && git commit -qm 'infra with one encrypted file'
            cd .. && mkdir srv && git clone -q --bare work srv/infra.git && git -C srv/infra.git update-server-info
            chmod -R a+rX '\(dir)'
            """
        )
        guard r.status == 0 else { throw FixtureError(message: "fixture: \(r.stderr)") }
    }
}

struct FixtureError: Error { var message: String }

/// A dumb-HTTP git server on 127.0.0.1 (the shared `TestHTTPServer`) serving the files of a directory: `GET` only,
/// one request per connection. It can require HTTP basic credentials, and can stall halfway through an object
/// (to kill a clone halfway).
final class LoopbackGitServer: @unchecked Sendable {
    private var server: TestHTTPServer!
    /// While true, an object's response stops after half its bytes and the connection is held open.
    let stallObjects = Atomic<Bool>(false)

    init(directory: String, user: String? = nil, password: String? = nil) throws {
        let required = user.flatMap { u in password.map { "Basic " + Data("\(u):\($0)".utf8).base64EncodedString() } }
        server = try TestHTTPServer { [unowned self] r in
            if let required, r.headers["authorization"] != required {
                return TestResponse(status: 401, headers: [("WWW-Authenticate", "Basic realm=\"git\"")], close: true)
            }
            guard !r.path.contains(".."), let body = FileManager.default.contents(atPath: directory + r.path) else {
                return TestResponse(status: 404, close: true)
            }
            let stall = self.stallObjects.load(ordering: .relaxed) && r.path.contains("/objects/")
            return TestResponse(
                headers: [("Content-Type", "application/octet-stream")],
                body: body,
                stallAfter: stall ? body.count / 2 : nil,
                close: true
            )
        }
    }

    var port: Int { server.port }
    /// The paths requested so far.
    var requests: [String] { server.requests.map(\.path) }
    /// True once a response stalled halfway (its first half is on the wire).
    var stalled: Bool { server.stalledResponses > 0 }

    func stop() { server.stop() }
}

/// `lstat(2)`.
func lstatOf(_ path: String) -> stat? {
    var st = stat()
    return lstat(path, &st) == 0 ? st : nil
}

/// The pid and its descendants, parents before children (from `/proc/PID/stat`).
func processTree(_ pid: Int32) -> [Int32] {
    var parent: [Int32: Int32] = [:]
    for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
        guard let p = Int32(name), let stat = try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { continue }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        if fields.count > 1, let pp = Int32(fields[1]) { parent[p] = pp }
    }
    var out = [pid]
    var i = 0
    while i < out.count {
        out += parent.filter { $0.value == out[i] }.map(\.key).sorted()
        i += 1
    }
    return out
}

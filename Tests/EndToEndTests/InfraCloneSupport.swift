import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Runs `/bin/sh -c script` and captures its output.
@discardableResult
func shell(_ script: String, env: [String: String] = [:]) throws -> CLIResult {
    var e = ["PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "LANG": "C.UTF-8", "HOME": "/nonexistent"]
    for (k, v) in env { e[k] = v }
    return try capture("/bin/sh", ["-c", script], environment: e)
}

/// A git-crypt fixture: a work repository with `secret.txt` encrypted (`filter=git-crypt diff=git-crypt`) and
/// plain files, and a bare copy ready for dumb HTTP (`git update-server-info`) at `<dir>/srv/infra.git`.
final class InfraFixture {
    let dir: String
    var work: String { dir + "/work" }
    var served: String { dir + "/srv" }
    static let readme = "# infra\nplain text everyone may read\n"

    init() throws {
        dir =
            FileManager.default.temporaryDirectory.appendingPathComponent("ws-infra-\(UUID().uuidString.prefix(8))")
            .path
        let r = try shell(
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

    deinit { try? FileManager.default.removeItem(atPath: dir) }
}

struct FixtureError: Error { var message: String }

/// A dumb-HTTP git server on 127.0.0.1 (an ephemeral port) serving files from a directory: `GET` only, one
/// request per connection. It can require HTTP basic credentials, and can stall mid-response on the first object
/// request (to kill a clone halfway).
final class LoopbackGitServer: @unchecked Sendable {
    let port: Int
    private let directory: String
    private let listener: Int32
    private let requiredAuthorization: String?
    let stallObjects = Atomic<Bool>(false)
    /// True once a response stalled halfway.
    let stalled = Atomic<Bool>(false)
    private let stopping = Atomic<Bool>(false)
    let requests = Mutex<[String]>([])

    init(directory: String, user: String? = nil, password: String? = nil) throws {
        self.directory = directory
        if let user, let password {
            requiredAuthorization = "Basic " + Data("\(user):\(password)".utf8).base64EncodedString()
        } else {
            requiredAuthorization = nil
        }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(fd, 16) == 0 else { throw FixtureError(message: "cannot listen on 127.0.0.1") }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        listener = fd
        port = Int(UInt16(bigEndian: addr.sin_port))
        let t = Thread { [self] in acceptLoop() }
        t.start()
    }

    func stop() {
        stopping.store(true, ordering: .relaxed)
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    deinit { if !stopping.load(ordering: .relaxed) { stop() } }

    private func acceptLoop() {
        while !stopping.load(ordering: .relaxed) {
            let conn = accept(listener, nil, nil)
            if conn < 0 { if stopping.load(ordering: .relaxed) { return } else { continue } }
            let t = Thread { [self] in handle(conn) }
            t.start()
        }
    }

    private func handle(_ conn: Int32) {
        defer { close(conn) }
        var request = Data()
        var buf = [UInt8](repeating: 0, count: 4096)
        while !request.contains(Data("\r\n\r\n".utf8)) {
            let n = recv(conn, &buf, buf.count, 0)
            if n <= 0 { return }
            request.append(contentsOf: buf[0..<n])
        }
        let text = String(decoding: request, as: UTF8.self)
        let lines = text.components(separatedBy: "\r\n")
        let parts = lines[0].split(separator: " ")
        guard parts.count >= 2 else { return }
        let path = String(parts[1].split(separator: "?", maxSplits: 1)[0])
        requests.withLock { $0.append(path) }
        if let required = requiredAuthorization {
            let given = lines.first { $0.lowercased().hasPrefix("authorization:") }.map {
                String($0.dropFirst("authorization:".count)).trimmingCharacters(in: .whitespaces)
            }
            if given != required {
                send(
                    conn,
                    "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
                return
            }
        }
        guard !path.contains(".."), let body = FileManager.default.contents(atPath: directory + path) else {
            send(conn, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        }
        send(
            conn,
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        )
        if stallObjects.load(ordering: .relaxed) && path.contains("/objects/") {
            _ = body.prefix(body.count / 2).withUnsafeBytes {
                Glibc.send(conn, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            stalled.store(true, ordering: .relaxed)
            while !stopping.load(ordering: .relaxed) && stallObjects.load(ordering: .relaxed) { usleep(50_000) }
            return
        }
        _ = body.withUnsafeBytes { Glibc.send(conn, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    private func send(_ conn: Int32, _ s: String) {
        _ = s.withCString { Glibc.send(conn, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
    }
}

/// Every entry under a directory with its kind, mode, owner and bytes: to prove "nothing changed".
func treeSnapshot(_ root: String) -> [String: String] {
    var out: [String: String] = [:]
    guard let e = FileManager.default.enumerator(atPath: root) else { return out }
    while let rel = e.nextObject() as? String {
        let full = root + "/" + rel
        var st = stat()
        guard lstat(full, &st) == 0 else { continue }
        var desc = "mode=\(st.st_mode) uid=\(st.st_uid) gid=\(st.st_gid)"
        if st.st_mode & S_IFMT == S_IFREG {
            desc += " bytes=\(FileManager.default.contents(atPath: full)?.base64EncodedString() ?? "?")"
        }
        if st.st_mode & S_IFMT == S_IFLNK {
            desc += " link=\((try? FileManager.default.destinationOfSymbolicLink(atPath: full)) ?? "?")"
        }
        out[rel] = desc
    }
    return out
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

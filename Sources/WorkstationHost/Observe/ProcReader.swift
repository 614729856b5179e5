import Foundation
import WorkstationCore

#if canImport(Glibc)
import Glibc
#endif

/// Reads the kernel's view of the host from files under the root: `/proc/meminfo`, `/proc/pressure/*`,
/// `/proc/<pid>/{status,stat}` (`proc(5)`) and unit cgroups under `/sys/fs/cgroup` (`cgroups(7)`, cgroup v2).
/// Reads only; spawns nothing. Tests point the root at a synthetic tree.
public struct ProcReader: Sendable {
    public let root: HostRoot

    public init(root: HostRoot) { self.root = root }

    /// `/proc/meminfo`; nil when absent or without `MemTotal` (capacity unknown).
    public func memory() -> MemoryInfo? {
        readPseudoFile(root.path("/proc/meminfo")).flatMap(MemoryInfo.parse)
    }

    /// `/proc/pressure/<resource>` (`memory`, `io`, `cpu`); nil where the kernel has no PSI (before 4.20, or
    /// booted with `psi=0`) or the file does not parse.
    public func pressure(_ resource: String) -> PressureStall? {
        readPseudoFile(root.path("/proc/pressure/\(resource)")).flatMap(PressureStall.parse)
    }

    /// Every process whose `status` could be read; a process that exits while being read is skipped.
    public func processes() -> [ProcessSample] {
        let dir = root.path("/proc")
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return [] }
        var out: [ProcessSample] = []
        for name in names {
            guard let pid = Int(name), pid > 0, let status = readPseudoFile("\(dir)/\(name)/status") else { continue }
            if let s = ProcessSample.parse(pid: pid, status: status, stat: readPseudoFile("\(dir)/\(name)/stat")) {
                out.append(s)
            }
        }
        return out.sorted { $0.pid < $1.pid }
    }

    /// The processes whose real, effective or saved uid is `uid` (the `Uid:` line of `/proc/<pid>/status`,
    /// `proc(5)`), sorted by pid. A zombie (`State: Z`/`X`) is left out only when every thread of it is dead too
    /// (`/proc/<pid>/task/*/status`): a process whose first thread exited reads as a zombie while its other threads
    /// run on. A process that exits while being read is skipped.
    public func processes(ownedBy uid: Int) -> [OwnedProcess] {
        let dir = root.path("/proc")
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return [] }
        var out: [OwnedProcess] = []
        for name in names {
            guard let pid = Int(name), pid > 0, let status = readPseudoFile("\(dir)/\(name)/status"),
                let p = OwnedProcess.parse(pid: pid, status: status), p.matches(uid), !isDead(p)
            else { continue }
            out.append(p)
        }
        return out.sorted { $0.pid < $1.pid }
    }

    /// True when `p` runs nothing: it is a zombie and so is every thread of it (`/proc/<pid>/task/<tid>/status`).
    public func isDead(_ p: OwnedProcess) -> Bool {
        guard p.isZombie else { return false }
        let tasks = root.path("/proc/\(p.pid)/task")
        guard let tids = try? FileManager.default.contentsOfDirectory(atPath: tasks) else { return true }
        for tid in tids {
            guard let status = readPseudoFile("\(tasks)/\(tid)/status"),
                let t = OwnedProcess.parse(pid: p.pid, status: status)
            else { continue }
            if !t.isZombie { return false }
        }
        return true
    }

    /// The listening TCP sockets of `/proc/net/tcp` and `/proc/net/tcp6` (`proc(5)`: state `0A` is LISTEN, the
    /// `uid` column is the socket's owner). nil when neither file is readable (no `/proc` under the root).
    public func tcpListeners() -> [TCPListener]? {
        let v4 = readPseudoFile(root.path("/proc/net/tcp"), limit: 64 << 20)
        let v6 = readPseudoFile(root.path("/proc/net/tcp6"), limit: 64 << 20)
        if v4 == nil && v6 == nil { return nil }
        return (v4.map { TCPListener.parse($0, v6: false) } ?? []) + (v6.map { TCPListener.parse($0, v6: true) } ?? [])
    }

    /// Whether a listening unix stream socket is bound at `path` now: a `/proc/net/unix` line (`proc(5)`) with that
    /// path and `__SO_ACCEPTCON` (0x10000) in its flags. A socket file left on disk by a stopped socket unit
    /// (`RemoveOnStop=no`) has no such line. nil when `/proc/net/unix` is unreadable under the root.
    public func unixSocketListening(_ path: String) -> Bool? {
        guard let data = readPseudoFile(root.path("/proc/net/unix"), limit: 64 << 20) else { return nil }
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n").dropFirst() {
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard f.count >= 8, f[7] == path, let flags = UInt32(f[3], radix: 16) else { continue }
            if flags & 0x10000 != 0 { return true }
        }
        return false
    }

    /// Whether a unit instance is running: its cgroup (in `user-<uid>.slice`, where workstation's drop-in puts it,
    /// or in `system.slice`) reports `populated 1` in `cgroup.events`. The cgroup v2 tree is looked for at
    /// `/sys/fs/cgroup` (unified) and `/sys/fs/cgroup/unified` (hybrid). nil when neither is mounted under the root
    /// (no `cgroup.controllers`), so the state is unknown.
    public func unitActive(_ instance: String, uid: Int) -> Bool? {
        let trees = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"].filter {
            FileManager.default.fileExists(atPath: root.path("\($0)/cgroup.controllers"))
        }
        guard !trees.isEmpty else { return nil }
        for tree in trees {
            for slice in ["user.slice/user-\(uid).slice", "system.slice"] {
                let events = root.path("\(tree)/\(slice)/\(instance)/cgroup.events")
                if let data = readPseudoFile(events),
                    String(decoding: data, as: UTF8.self).split(separator: "\n").contains("populated 1")
                {
                    return true
                }
            }
        }
        return false
    }
}

/// Per-user figures from the process table.
public struct UserUsage: Sendable, Hashable, Codable {
    /// Sum of `VmRSS` over the user's processes, bytes. Shared pages are counted once per process (an upper bound).
    public var residentBytes: UInt64 = 0
    public var processes = 0
    /// Tasks (processes and their threads, `Threads:`), what `TasksMax=` limits.
    public var tasks = 0
    /// Distinct sessions (`setsid(2)`) among the user's processes that have a controlling terminal: one per
    /// terminal, tmux pane or ssh login. The t3 daemon, which has no terminal, is not a session.
    public var sessions = 0

    public init() {}

    /// Groups samples by real uid.
    public static func byUid(_ samples: [ProcessSample]) -> [Int: UserUsage] {
        var out: [Int: UserUsage] = [:]
        var sessions: [Int: Set<Int>] = [:]
        for p in samples {
            out[p.uid, default: UserUsage()].residentBytes += p.residentBytes
            out[p.uid, default: UserUsage()].processes += 1
            out[p.uid, default: UserUsage()].tasks += p.threads
            if p.tty != 0, let s = p.session { sessions[p.uid, default: []].insert(s) }
        }
        for (uid, set) in sessions { out[uid, default: UserUsage()].sessions = set.count }
        return out
    }
}

/// Reads a file to its end with `read(2)`. Files under `/proc` and `/sys` report size 0 to `stat(2)`, so a
/// reader sized by `st_size` would return nothing. At most `limit` bytes. nil when it cannot be opened.
public func readPseudoFile(_ path: String, limit: Int = 1 << 20) -> Data? {
    let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var out = Data()
    var buf = [UInt8](repeating: 0, count: 65536)
    while out.count < limit {
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 { return out.isEmpty ? nil : out }
        if n == 0 { break }
        out.append(contentsOf: buf[0..<n])
    }
    return out
}

/// One process with the uids that decide whose it is (`proc(5)`, `/proc/<pid>/status`).
public struct OwnedProcess: Sendable, Hashable {
    public var pid: Int
    /// `Name:` (the command name, at most 15 bytes; user-controlled, so escape it before printing).
    public var name: String
    /// `Uid:` real, effective, saved set and file-system uid.
    public var uids: [Int]
    /// The first letter of `State:` (`R`, `S`, `D`, `T`, `Z`...); nil when absent.
    public var state: Character?

    public init(pid: Int, name: String, uids: [Int], state: Character? = nil) {
        self.pid = pid
        self.name = name
        self.uids = uids
        self.state = state
    }

    /// True when the real, effective or saved uid is `uid`.
    public func matches(_ uid: Int) -> Bool { uids.prefix(3).contains(uid) }
    public var isZombie: Bool { state == "Z" || state == "X" }

    /// Parses `status`; nil without a `Uid:` line of at least three numbers.
    public static func parse(pid: Int, status: Data) -> OwnedProcess? {
        var name = ""
        var uids: [Int] = []
        var state: Character?
        for line in String(decoding: status, as: UTF8.self).split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let rest = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            switch line[..<colon] {
            case "Name": name = rest
            case "State": state = rest.first
            case "Uid": uids = rest.split(whereSeparator: { $0 == " " || $0 == "\t" }).compactMap { Int($0) }
            default: break
            }
        }
        return uids.count >= 3 ? OwnedProcess(pid: pid, name: name, uids: uids, state: state) : nil
    }
}

/// One listening TCP socket from `/proc/net/tcp{,6}`.
public struct TCPListener: Sendable, Hashable {
    /// The local address as text (`127.0.0.1`, `::1`, `0.0.0.0`, `::`, ...).
    public var address: String
    public var port: Int
    /// The socket's owner (`uid` column).
    public var uid: Int
    /// True for 127.0.0.0/8, `::1` and IPv4-mapped 127.0.0.0/8.
    public var loopback: Bool

    public init(address: String, port: Int, uid: Int, loopback: Bool) {
        self.address = address
        self.port = port
        self.uid = uid
        self.loopback = loopback
    }

    /// The listening sockets (state `0A`) of one table (`ProcNetTCPRow.parse`); malformed lines are skipped.
    public static func parse(_ data: Data, v6: Bool) -> [TCPListener] {
        ProcNetTCPRow.parse(data, v6: v6).filter { $0.state == 0x0A }.map {
            Self(bytes: $0.localAddress, port: $0.localPort, uid: $0.uid)
        }
    }

    init(bytes b: [UInt8], port: Int, uid: Int) {
        self.port = port
        self.uid = uid
        if b.count == 4 {
            address = b.map(String.init).joined(separator: ".")
            loopback = b[0] == 127
        } else if b[0..<10].allSatisfy({ $0 == 0 }) && b[10] == 0xff && b[11] == 0xff {
            address = "::ffff:" + b[12...].map(String.init).joined(separator: ".")
            loopback = b[12] == 127
        } else {
            var text: [String] = []
            for i in stride(from: 0, to: 16, by: 2) {
                text.append(String(UInt16(b[i]) << 8 | UInt16(b[i + 1]), radix: 16))
            }
            address = text.joined(separator: ":")
            if b.allSatisfy({ $0 == 0 }) {
                address = "::"
            } else if b[0..<15].allSatisfy({ $0 == 0 }) && b[15] == 1 {
                address = "::1"
            }
            loopback = address == "::1"
        }
    }
}

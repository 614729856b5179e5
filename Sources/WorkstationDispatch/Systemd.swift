import Foundation
import Logging
import NIOCore
import WorkstationCore

/// The parts of systemd's service protocol the dispatcher speaks: inherited listening sockets (sd_listen_fds(3)),
/// readiness and watchdog notifications (sd_notify(3)). Without systemd (no `LISTEN_PID`, no `NOTIFY_SOCKET`) every
/// call is a no-op.
public enum Systemd {
    /// The first inherited descriptor (`SD_LISTEN_FDS_START`).
    static let listenFDsStart: Int32 = 3

    /// Descriptors passed by socket activation to this process: `LISTEN_FDS` of them from fd 3, only when
    /// `LISTEN_PID` is this process. The variables are removed so that children do not inherit them.
    public static func listenFDs() -> [Int32] {
        let env = ProcessInfo.processInfo.environment
        defer {
            unsetenv("LISTEN_PID")
            unsetenv("LISTEN_FDS")
            unsetenv("LISTEN_FDNAMES")
        }
        guard let pid = env["LISTEN_PID"].flatMap({ Int32($0) }), pid == getpid(),
            let count = env["LISTEN_FDS"].flatMap({ Int32($0) }), count > 0
        else { return [] }
        return (0..<count).map { listenFDsStart + $0 }
    }

    /// The address a listening socket is bound to (getsockname(2)): a unix path or an IP address and port, in the
    /// form settings write them; nil for anything else.
    public static func boundAddress(of fd: Int32) -> ListenAddress? {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        guard rc == 0 else { return nil }
        switch Int32(storage.ss_family) {
        case AF_UNIX:
            let path = withUnsafeBytes(of: storage) { raw -> String in
                let sunPath = raw.dropFirst(MemoryLayout<sa_family_t>.size).prefix(
                    Int(len) - MemoryLayout<sa_family_t>.size
                )
                return String(decoding: sunPath.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            return .unix(path: path)
        case AF_INET:
            let a = withUnsafeBytes(of: storage) { $0.load(as: sockaddr_in.self) }
            let address = SocketAddress(a, host: "")
            guard let ip = address.ipAddress, let port = address.port else { return nil }
            return .tcp(host: ip, port: port)
        case AF_INET6:
            let a = withUnsafeBytes(of: storage) { $0.load(as: sockaddr_in6.self) }
            let address = SocketAddress(a, host: "")
            guard let ip = address.ipAddress, let port = address.port else { return nil }
            return .tcp(host: ip, port: port)
        default:
            return nil
        }
    }

    /// Sends `state` (e.g. `READY=1`, `WATCHDOG=1`, `STOPPING=1`) to `NOTIFY_SOCKET` (an absolute path, or `@` for
    /// the abstract namespace). Returns false when there is no socket or the datagram could not be sent.
    @discardableResult
    public static func notify(_ state: String) -> Bool {
        guard let path = ProcessInfo.processInfo.environment["NOTIFY_SOCKET"], path.count > 1,
            path.hasPrefix("/") || path.hasPrefix("@")
        else { return false }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        var pathBytes = Array(path.utf8)
        if pathBytes[0] == UInt8(ascii: "@") { pathBytes[0] = 0 }
        guard pathBytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { return false }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in pathBytes.enumerated() { raw[i] = b }
        }
        let len = socklen_t(MemoryLayout<sa_family_t>.size + pathBytes.count)
        let message = Array(state.utf8)
        let sent = withUnsafePointer(to: &addr) { a in
            a.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                message.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), sa, len) }
            }
        }
        return sent == message.count
    }

    /// Half the watchdog interval systemd expects pings at (`WATCHDOG_USEC`, when `WATCHDOG_PID` is unset or this
    /// process), in nanoseconds; nil when no watchdog is set.
    public static func watchdogPingInterval() -> Int64? {
        let env = ProcessInfo.processInfo.environment
        if let pid = env["WATCHDOG_PID"].flatMap({ Int32($0) }), pid != getpid() { return nil }
        guard let usec = env["WATCHDOG_USEC"].flatMap({ Int64($0) }), usec > 0 else { return nil }
        return usec * 1000 / 2
    }
}

/// A swift-log handler for the journal: one line per message on standard error, prefixed with the syslog priority
/// as `<N>` (sd-daemon(3): systemd reads the prefix when `SyslogLevelPrefix=` is on, its default), then the message
/// and its metadata as `key=value`. Values are printed escaped, so no logged value can forge a line.
public struct JournalLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    private let label: String
    /// Print the `<N>` prefix (only when standard error is the journal, `JOURNAL_STREAM` set).
    private let prefix: Bool

    public init(label: String, prefix: Bool = ProcessInfo.processInfo.environment["JOURNAL_STREAM"] != nil) {
        self.label = label
        self.prefix = prefix
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// The syslog priority of a swift-log level (syslog(3): 2 critical, 3 error, 4 warning, 5 notice, 6 info, 7 debug).
    public static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .critical: 2
        case .error: 3
        case .warning: 4
        case .notice: 5
        case .info: 6
        case .debug, .trace: 7
        }
    }

    public func log(event: LogEvent) {
        var line = prefix ? "<\(Self.priority(event.level))>" : "\(event.level): "
        line += Self.escape("\(event.message)")
        let all = metadata.merging(event.metadata ?? [:]) { $1 }
        for key in all.keys.sorted() {
            line += " \(key)=\(Self.escape("\(all[key]!)"))"
        }
        line += "\n"
        FileHandle.standardError.write(Data(line.utf8))
    }

    /// Control characters shown as escapes (`printable`), so one message is one line and no value can drive the
    /// terminal of whoever reads the journal.
    static func escape(_ s: String) -> String { printable(s) }
}

import AsyncHTTPClient
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import WorkstationCore
import WorkstationTestSupport

@testable import WorkstationDispatch

#if canImport(Glibc)
import Glibc
#endif

extension TestHTTPServer {
    /// A loopback upstream standing in for a user's t3 instance. Answers every request with
    /// `name=<name> user=<X-authentik-username> path=<uri> bytes=<body length>` and the request's `x-authentik-*`
    /// header names in `x-seen-authentik` (their number in `x-seen-authentik-count`); echoes WebSocket frames.
    static func echoUpstream(name: String) throws -> TestHTTPServer {
        try TestHTTPServer(webSocketEcho: true) { r in
            let user = r.values(Gate.usernameHeader).joined(separator: ",")
            let seen = r.headerFields.map { $0.name.lowercased() }.filter { $0.hasPrefix("x-authentik-") }
            return .text(
                "name=\(name) user=\(user) path=\(r.uri) bytes=\(r.body.count)",
                headers: [
                    ("X-Seen-Authentik", seen.joined(separator: ",")), ("X-Seen-Authentik-Count", "\(seen.count)"),
                ]
            )
        }
    }

    /// An upstream that answers only the first request on each connection (keep-alive, 200 "one shot") and closes
    /// the connection without answering when a second request arrives on it: what a server whose keep-alive
    /// timeout fires just as a request comes in looks like to the proxy.
    static func oneShotUpstream() throws -> TestHTTPServer {
        try TestHTTPServer(oneRequestPerConnection: true) { _ in .text("one shot") }
    }
}

/// A scratch directory with dispatch.json written atomically (temp file + rename).
final class MapDir: Sendable {
    let temp: TempRoot
    var dir: String { temp.path }
    var path: String { dir + "/dispatch.json" }
    init() throws { temp = try TempRoot("dispatch") }
    func write(_ users: [String: Int]) throws {
        // The test upstreams run in this process, as root: root is the account that owns their listeners.
        let map = DispatchMap(
            users: users.mapValues { DispatchMap.User(osUser: "root", port: $0, ports: ["t3-serve@": $0]) }
        )
        try writeRaw(map.encoded())
    }
    func writeRaw(_ data: Data) throws {
        let tmp = dir + "/.dispatch.json.\(UUID().uuidString)"
        try data.write(to: URL(fileURLWithPath: tmp))
        guard rename(tmp, path) == 0 else { throw CocoaError(.fileWriteUnknown) }
    }
    /// Removes the directory now (it goes anyway with the value).
    func remove() { temp.remove("") }
}

/// Starts a dispatcher as deployed on a host with its front proxy: identity `peer`, a unix socket in the map's
/// scratch directory, the front proxy's account `root` (this test process), the metrics listener on an ephemeral
/// 127.0.0.1 port, and each upstream connection's acceptor checked against the routed account.
func startDispatcher(
    map: MapDir,
    maxActiveUsers: Int = 8,
    frontProxyUsers: [String] = ["root"],
    group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
    configure: (inout DispatchConfig) -> Void = { _ in }
) async throws -> DispatchServer {
    var config = DispatchConfig()
    config.listen = .unix(path: map.dir + "/dispatch.sock")
    config.metricsListen = .tcp(host: "127.0.0.1", port: 0)
    config.dispatchFile = map.path
    config.frontProxyUsers = frontProxyUsers
    config.maxActiveUsers = maxActiveUsers
    config.reloadIntervalSeconds = 3600  // tests drive reloads through requests, never the timer
    configure(&config)
    var logger = Logger(label: "test.dispatch")
    logger.logLevel = ProcessInfo.processInfo.environment["WORKSTATION_TEST_LOG"] != nil ? .debug : .critical
    return try await DispatchServer.start(config: config, group: group, logger: logger)
}

extension DispatchServer {
    /// The path of the proxy's unix socket.
    var socketPath: String {
        if case .unix(let path) = config.listen { return path }
        preconditionFailure("the test dispatcher listens on a unix socket")
    }
}

struct Reply {
    var status: Int
    var body: String
    var headers: HTTPHeaders
}

/// One request through the dispatcher with AsyncHTTPClient.
func send(
    _ client: HTTPClient,
    _ server: DispatchServer,
    path: String = "/",
    method: HTTPMethod = .GET,
    headers: [(String, String)],
    body: Data? = nil
) async throws -> Reply {
    let socket = server.socketPath.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? server.socketPath
    var req = HTTPClientRequest(url: "http+unix://\(socket)\(path)")
    req.method = method
    for (n, v) in headers { req.headers.add(name: n, value: v) }
    if let body { req.body = .bytes(ByteBuffer(bytes: body)) }
    let resp = try await client.execute(req, timeout: .seconds(30))
    let buf = try await resp.body.collect(upTo: 16 << 20)
    return Reply(status: Int(resp.status.code), body: String(buffer: buf), headers: resp.headers)
}

func identity(_ user: String, groups: String = "Staff|T3 Users") -> [(String, String)] {
    [(Gate.usernameHeader, user), (Gate.groupsHeader, groups)]
}

/// A blocking WebSocket client on a raw socket (RFC 6455): handshake, masked text frames, unmasked replies.
/// The socket has a 20 s receive timeout only so that a broken proxy fails the test instead of hanging it.
final class RawWebSocket {
    let fd: Int32
    private(set) var handshakeStatus = 0

    init(_ server: DispatchServer, headers: [(String, String)]) throws {
        fd = try connectDispatcher(server)
        var req = "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        req += "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        for (n, v) in headers { req += "\(n): \(v)\r\n" }
        req += "\r\n"
        try sendAll(Array(req.utf8))
        var head: [UInt8] = []
        while !head.suffix(4).elementsEqual([13, 10, 13, 10]) {
            guard let b = try readExactly(1) else { break }
            head += b
        }
        let text = String(decoding: head, as: UTF8.self)
        handshakeStatus = Int(text.split(separator: " ").dropFirst().first ?? "") ?? 0
    }

    deinit { close(fd) }

    func sendAll(_ bytes: [UInt8]) throws {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { throw CocoaError(.fileWriteUnknown) }
            off += n
        }
    }

    /// nil on end of stream.
    func readExactly(_ count: Int) throws -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = out[got...].withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n == 0 { return nil }
            guard n > 0 else { throw CocoaError(.fileReadUnknown) }
            got += n
        }
        return out
    }

    func sendText(_ s: String) throws {
        let payload = Array(s.utf8)
        precondition(payload.count < 126)
        let mask: [UInt8] = [1, 2, 3, 4]
        var frame: [UInt8] = [0x81, 0x80 | UInt8(payload.count)] + mask
        for (i, b) in payload.enumerated() { frame.append(b ^ mask[i % 4]) }
        try sendAll(frame)
    }

    /// The next text frame's payload, or nil when the connection ended.
    func readText() throws -> String? {
        guard let h = try readExactly(2) else { return nil }
        let len = Int(h[1] & 0x7F)
        precondition(len < 126)
        guard let p = try readExactly(len) else { return nil }
        return String(decoding: p, as: UTF8.self)
    }

    /// True when the peer closed: end of stream or a close frame.
    func waitForClose() throws -> Bool {
        while true {
            guard let h = try readExactly(2) else { return true }
            let len = Int(h[1] & 0x7F)
            if len > 0, try readExactly(len) == nil { return true }
            if h[0] & 0x0F == 0x8 { return true }
        }
    }
}

/// One HTTP/1.1 request on a new blocking loopback connection with `Connection: close`; reads to end of stream.
/// - Returns: the status code and the body (everything after the blank line).
func requestOnNewConnection(
    _ server: DispatchServer,
    method: String = "GET",
    headers: [(String, String)],
    body: String = ""
) throws -> (status: Int, body: String) {
    var req = "\(method) / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: \(body.utf8.count)\r\n"
    for (n, v) in headers { req += "\(n): \(v)\r\n" }
    req += "\r\n" + body
    let text = try rawExchange(server, Array(req.utf8))
    let status = Int(text.split(separator: " ").dropFirst().first ?? "") ?? 0
    let bodyText = text.range(of: "\r\n\r\n").map { String(text[$0.upperBound...]) } ?? ""
    return (status, bodyText)
}

/// A blocking TCP connection to `127.0.0.1:port` whose reads give up after 20 seconds; the caller closes it.
/// A blocking connection to the dispatcher's unix socket, with a 20 s receive timeout.
func connectDispatcher(_ server: DispatchServer) throws -> Int32 {
    try connectUnix(server.socketPath)
}

/// A blocking connection to the unix socket at `path`, with a 20 s receive timeout.
func connectUnix(_ path: String) throws -> Int32 {
    var addr = sockaddr_un()
    addr.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    withUnsafeMutableBytes(of: &addr.sun_path) { raw in
        for (i, b) in bytes.enumerated() where i < raw.count - 1 { raw[i] = b }
    }
    return try connectBlocking(AF_UNIX, &addr)
}

func connectLoopback(port: Int) throws -> Int32 {
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    return try connectBlocking(AF_INET, &addr)
}

/// A blocking stream socket of `family` connected to `address`, with a 20 s receive timeout.
private func connectBlocking<Address>(_ family: Int32, _ address: inout Address) throws -> Int32 {
    let fd = socket(family, Int32(SOCK_STREAM.rawValue), 0)
    var tv = timeval(tv_sec: 20, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    let rc = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<Address>.size)) }
    }
    guard rc == 0 else {
        close(fd)
        throw CocoaError(.fileReadUnknown)
    }
    return fd
}

/// Writes `bytes` in one go on a new blocking connection to the dispatcher and reads until the peer closes.
func rawExchange(_ server: DispatchServer, _ bytes: [UInt8]) throws -> String {
    try exchange(on: try connectDispatcher(server), bytes)
}

/// Writes `bytes` on the connection `fd`, reads until the peer closes it, and closes it.
func exchange(on fd: Int32, _ bytes: [UInt8]) throws -> String {
    defer { close(fd) }
    var off = 0
    while off < bytes.count {
        let n = bytes[off...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { throw CocoaError(.fileWriteUnknown) }
        off += n
    }
    var reply: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n == 0 { break }
        guard n > 0 else { throw CocoaError(.fileReadUnknown) }
        reply += chunk[0..<n]
    }
    return String(decoding: reply, as: UTF8.self)
}

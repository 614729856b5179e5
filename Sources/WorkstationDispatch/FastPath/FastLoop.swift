import CWorkstationLinux
import Logging
import NIOCore
import Synchronization
import WorkstationCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// epoll(7) event bits (uapi/linux/eventpoll.h).
enum Epoll {
    static let input: UInt32 = 0x001
    static let output: UInt32 = 0x004
    static let error: UInt32 = 0x008
    static let hangUp: UInt32 = 0x010
    static let readHangUp: UInt32 = 0x2000
    static let exclusive: UInt32 = 1 << 28
    static let edgeTriggered: UInt32 = 1 << 31
}

/// One thread of the fast path: an epoll instance with the shared listening socket (`EPOLLEXCLUSIVE`, so one
/// thread is woken per connection), the client and upstream connections accepted or opened on it, its pool of idle
/// upstream connections and its timers. Everything it holds is touched on its thread only; other threads reach it
/// through `stop()` (an eventfd).
///
/// Connections are registered once, edge-triggered for reading and writing (`EPOLLET`), and never modified: a read
/// that returns less than it asked for means the socket is drained (no extra `read` for `EAGAIN`), and holding
/// back reads costs no `epoll_ctl` (the edge is remembered in the connection's `readable`).
final class FastLoop: @unchecked Sendable {
    let intake: ConnectionIntake
    let shared: DispatchShared
    private let epfd: Int32
    private let wakeFD: Int32
    private let listenFD: Int32
    /// Connections by descriptor; each event's data carries the descriptor and the generation it was registered
    /// with, so an event for a descriptor closed and reused in the same batch is ignored.
    private var slots: [Slot?] = []
    private var nextGeneration: UInt32 = 1
    private var timers: [(deadline: NIODeadline, action: () -> Void)] = []
    /// Idle kept-alive upstream connections, by user and port (the fast path's `UpstreamPool`).
    private var idle: [PoolKey: [FastUpstream]] = [:] {
        didSet { idleCount.store(idle.values.reduce(0) { $0 + $1.count }, ordering: .relaxed) }
    }
    /// The number of idle upstream connections held, readable from any thread.
    let idleCount = Atomic<Int>(0)
    private let maxIdlePerUpstream = 16
    private let idleTimeout = TimeAmount.seconds(4)
    private var lastSweep = NIODeadline.now()
    /// Scratch buffer for upstream reads, reused while nothing else holds it.
    var readBuffer = ByteBufferAllocator().buffer(capacity: 16 * 1024)
    /// An inotify(7) instance watching dispatch.json's directory and the file in force, or -1 when none could be
    /// set up.
    private var mapWatch: Int32 = -1
    /// The watch descriptor of the directory.
    private var directoryWatch: Int32 = -1
    /// While the watch stands, every change to dispatch.json reaches this loop as an event (handled before the
    /// other events of its batch), so a request needs no `fstat` of the file: `RouteTable.lookupInForce`.
    /// Without a watch (or once the directory itself went), every lookup checks the file (`RouteTable.lookup`).
    private(set) var mapWatched = false
    private let stopping = Atomic<Bool>(false)
    /// Work posted from other threads (`post`), run on the loop's next turn.
    private let inbox = Mutex<[Posted]>([])
    /// The monotonic time (ns) of the loop's last turn, for the watchdog.
    let lastTurn = Atomic<UInt64>(0)

    /// A value that belongs to the loop's thread, carried through another thread untouched (`post`).
    struct Bound<Value>: @unchecked Sendable {
        let value: Value
    }
    typealias Posted = Bound<() -> Void>

    enum Slot {
        case client(FastClient)
        case upstream(FastUpstream)
    }

    struct PoolKey: Hashable {
        var user: String
        var port: Int
    }

    /// - Throws: `DispatchError.bindFailed` when epoll or the wake-up descriptor cannot be made.
    init(intake: ConnectionIntake, shared: DispatchShared, listenFD: Int32) throws {
        self.intake = intake
        self.shared = shared
        self.listenFD = listenFD
        epfd = epoll_create1(Int32(EPOLL_CLOEXEC))
        wakeFD = eventfd(0, Int32(EFD_NONBLOCK) | Int32(EFD_CLOEXEC))
        guard epfd >= 0, wakeFD >= 0 else {
            throw DispatchError.bindFailed(address: "epoll", underlying: String(cString: strerror(errno)))
        }
        try add(listenFD, Epoll.input | Epoll.exclusive, data: UInt64(UInt32(bitPattern: listenFD)))
        try add(wakeFD, Epoll.input, data: UInt64(UInt32(bitPattern: wakeFD)))
        watchMap()
    }

    /// Watches the directory of dispatch.json for anything that can replace or change the file (a rename over it,
    /// a write, a touch, a removal); any failure leaves the loop checking the file on every lookup.
    private func watchMap() {
        let path = shared.routes.path
        let dir = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        let fd = inotify_init1(Int32(IN_NONBLOCK) | Int32(IN_CLOEXEC))
        guard fd >= 0 else { return }
        let mask =
            UInt32(IN_CLOSE_WRITE) | UInt32(IN_MOVED_TO) | UInt32(IN_MOVED_FROM) | UInt32(IN_CREATE)
            | UInt32(IN_DELETE) | UInt32(IN_ATTRIB) | UInt32(IN_MODIFY) | UInt32(IN_DELETE_SELF)
            | UInt32(IN_MOVE_SELF)
        let wd = inotify_add_watch(fd, dir.isEmpty ? "/" : dir, mask)
        guard wd >= 0, (try? add(fd, Epoll.input, data: UInt64(UInt32(bitPattern: fd)))) != nil else {
            _ = Glibc.close(fd)
            return
        }
        mapWatch = fd
        directoryWatch = wd
        mapWatched = true
        watchFile()
    }

    /// Watches the file in force itself (by its inode), so that a change made through another name of it (a hard
    /// link elsewhere), or a second name given to it, is seen too: the directory's watch names only this path.
    private func watchFile() {
        let mask = UInt32(IN_MODIFY) | UInt32(IN_ATTRIB) | UInt32(IN_CLOSE_WRITE)
        _ = inotify_add_watch(mapWatch, shared.routes.path, mask)
    }

    /// Reads the watch's events and re-checks the file. The watch ends (and every lookup checks the file again)
    /// when the directory itself is removed or moved, or events were lost.
    private func mapChanged() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        var relevant = false
        let name = Array((shared.routes.path.split(separator: "/").last.map(String.init) ?? "").utf8)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(mapWatch, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            var at = 0
            // struct inotify_event: wd, mask, cookie, len, then len bytes of name (NUL-padded).
            while at + 16 <= n {
                let (wd, mask, length) = buffer.withUnsafeBytes {
                    (
                        $0.loadUnaligned(fromByteOffset: at, as: Int32.self),
                        $0.loadUnaligned(fromByteOffset: at + 4, as: UInt32.self),
                        Int($0.loadUnaligned(fromByteOffset: at + 12, as: UInt32.self))
                    )
                }
                let gone = UInt32(IN_DELETE_SELF) | UInt32(IN_MOVE_SELF) | UInt32(IN_IGNORED)
                if mask & UInt32(IN_Q_OVERFLOW) != 0 || (wd == directoryWatch && mask & gone != 0) {
                    mapWatched = false
                    relevant = true
                } else if wd != directoryWatch {
                    relevant = true  // the file in force itself
                } else if length > 0, at + 16 + length <= n {
                    // Another file of the directory (a temp file before its rename) changes nothing.
                    let named = buffer[(at + 16)..<(at + 16 + length)].prefix { $0 != 0 }
                    if named.elementsEqual(name) { relevant = true }
                }
                at += 16 + length
            }
        }
        guard relevant else { return }
        shared.routes.refresh()
        if mapWatched { watchFile() }
    }

    /// The routing map's entry for `user`: from the map in force while the watch stands, else after checking the
    /// file.
    func route(_ user: String) -> DispatchMap.User? {
        mapWatched ? shared.routes.lookupInForce(user) : shared.routes.lookup(user)
    }

    private func add(_ fd: Int32, _ events: UInt32, data: UInt64) throws {
        var ev = epoll_event()
        ev.events = events
        ev.data.u64 = data
        guard epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == 0 else {
            throw DispatchError.bindFailed(address: "epoll", underlying: String(cString: strerror(errno)))
        }
    }

    /// Asks the loop to end (from any thread); `run` then closes every connection it holds and returns.
    func stop() {
        stopping.store(true, ordering: .releasing)
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    /// Runs `action` on the loop's thread (from any thread).
    func post(_ action: @escaping () -> Void) {
        inbox.withLock { $0.append(Posted(value: action)) }
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    /// Serves until `stop()`.
    func run() {
        var events = [epoll_event](repeating: epoll_event(), count: 64)
        while !stopping.load(ordering: .acquiring) {
            let now = NIODeadline.now()
            lastTurn.store(now.uptimeNanoseconds, ordering: .relaxed)
            runTimers(now)
            if now - lastSweep > .nanoseconds(idleTimeout.nanoseconds / 2) { sweepIdle(now) }
            let timeout = timers.isEmpty ? 1000 : 1
            let n = events.withUnsafeMutableBufferPointer { epoll_wait(epfd, $0.baseAddress, 64, Int32(timeout)) }
            if n < 0 {
                if errno == EINTR { continue }
                shared.logger.critical("fast path: epoll_wait failed", metadata: ["errno": "\(errno)"])
                break
            }
            // A change to dispatch.json is in force before any request of the same batch is routed.
            if mapWatch >= 0 {
                for i in 0..<Int(n) where events[i].data.u64 == UInt64(UInt32(bitPattern: mapWatch)) {
                    mapChanged()
                }
            }
            for i in 0..<Int(n) {
                let ev = events[i]
                let data = ev.data.u64
                let fd = Int32(bitPattern: UInt32(truncatingIfNeeded: data))
                let generation = UInt32(truncatingIfNeeded: data >> 32)
                if generation == 0 {
                    if fd == listenFD {
                        acceptOne()
                    } else if fd == wakeFD {
                        drainWake()
                    }
                    continue
                }
                guard Int(fd) < slots.count, let slot = slots[Int(fd)] else { continue }
                switch slot {
                case .client(let c):
                    if c.generation == generation { c.handle(ev.events) }
                case .upstream(let u):
                    if u.generation == generation { u.handle(ev.events) }
                }
            }
        }
        closeEverything()
    }

    private func drainWake() {
        var value: UInt64 = 0
        _ = read(wakeFD, &value, 8)
        let posted = inbox.withLock { list in
            defer { list.removeAll() }
            return list
        }
        for p in posted { p.value() }
    }

    // MARK: connections

    /// Registers `fd` (edge-triggered, reading and writing) and returns the generation its events carry.
    func register(_ fd: Int32, _ slot: Slot) -> UInt32? {
        let generation = nextGeneration
        nextGeneration = nextGeneration == UInt32.max ? 1 : nextGeneration + 1
        var ev = epoll_event()
        ev.events = Epoll.input | Epoll.output | Epoll.readHangUp | Epoll.edgeTriggered
        ev.data.u64 = UInt64(UInt32(bitPattern: fd)) | UInt64(generation) << 32
        guard epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == 0 else { return nil }
        let index = Int(fd)
        if index >= slots.count { slots.append(contentsOf: repeatElement(nil, count: index + 64 - slots.count)) }
        slots[index] = slot
        return generation
    }

    /// Forgets `fd` and closes it (closing removes it from the epoll set).
    func close(_ fd: Int32) {
        forget(fd)
        _ = Glibc.close(fd)
    }

    /// Removes `fd` from the epoll set and the table without closing it (handed to the full path).
    func forget(_ fd: Int32) {
        var ev = epoll_event()
        _ = epoll_ctl(epfd, EPOLL_CTL_DEL, fd, &ev)
        if Int(fd) < slots.count { slots[Int(fd)] = nil }
    }

    /// Accepts one connection per wake-up, as nginx does without `multi_accept`: the listening socket is
    /// level-triggered, so another pending connection wakes one of the loops again, and a burst of new connections
    /// spreads over the loops instead of landing on the one that woke first.
    private func acceptOne() {
        while true {
            let fd = cws_accept4(listenFD, nil, nil, Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue))
            if fd >= 0 { return intake.accepted(fd, on: self) }
            if errno == EINTR || errno == ECONNABORTED { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { return }
            // Out of descriptors or memory: the socket stays readable, so waiting for it would spin. This loop
            // stops watching it for 100 ms (the connections wait in the backlog) and says so once per pause.
            shared.logger.error(
                "fast path: accept failed; pausing accepts for 100 ms",
                metadata: ["error": .string(String(cString: strerror(errno)))]
            )
            var ev = epoll_event()
            _ = epoll_ctl(epfd, EPOLL_CTL_DEL, listenFD, &ev)
            schedule(in: .milliseconds(100)) { [self] in
                try? add(listenFD, Epoll.input | Epoll.exclusive, data: UInt64(UInt32(bitPattern: listenFD)))
            }
            return
        }
    }

    // MARK: the pool of idle upstream connections

    /// The most recently parked live connection to `user`'s `port`, or nil.
    func takeIdle(user: String, port: Int) -> FastUpstream? {
        let key = PoolKey(user: user, port: port)
        let now = NIODeadline.now()
        while let up = idle[key]?.popLast() {
            if idle[key]?.isEmpty == true { idle[key] = nil }
            if !up.closed, now - up.idleSince < idleTimeout { return up }
            up.close()
        }
        return nil
    }

    /// Keeps `up` for a later client, or closes it when it is not reusable or the pool is full for its key.
    func park(_ up: FastUpstream) {
        let key = PoolKey(user: up.user, port: up.port)
        guard up.idleReusable, idle[key, default: []].count < maxIdlePerUpstream else {
            up.close()
            return
        }
        up.idleSince = .now()
        idle[key, default: []].append(up)
    }

    /// Drops a pooled connection that closed or spoke while idle.
    func unpark(_ up: FastUpstream) {
        let key = PoolKey(user: up.user, port: up.port)
        idle[key]?.removeAll { $0 === up }
        if idle[key]?.isEmpty == true { idle[key] = nil }
    }

    private func sweepIdle(_ now: NIODeadline) {
        lastSweep = now
        for (key, list) in idle {
            let fresh = list.filter { now - $0.idleSince < idleTimeout }
            for up in list where now - up.idleSince >= idleTimeout { up.close() }
            idle[key] = fresh.isEmpty ? nil : fresh
        }
    }

    // MARK: timers

    /// Runs `action` on this loop after `delay`.
    func schedule(in delay: TimeAmount, _ action: @escaping () -> Void) {
        timers.append((NIODeadline.now() + delay, action))
    }

    private func runTimers(_ now: NIODeadline) {
        guard !timers.isEmpty else { return }
        let due = timers.filter { $0.deadline <= now }
        guard !due.isEmpty else { return }
        timers.removeAll { $0.deadline <= now }
        for t in due { t.action() }
    }

    private func closeEverything() {
        for slot in slots {
            switch slot {
            case .client(let c): c.close()
            case .upstream(let u): u.close()
            case nil: break
            }
        }
        idle.removeAll()
        timers.removeAll()
        _ = Glibc.close(wakeFD)
        if mapWatch >= 0 { _ = Glibc.close(mapWatch) }
        _ = Glibc.close(epfd)
    }
}

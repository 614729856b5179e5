import NIOCore

/// Idle kept-alive upstream connections of one event loop, so that a client connection that closes does not
/// cost the next one a new upstream connection (the role of nginx's `keepalive` in an `upstream` block).
///
/// Confined to its event loop (no lock; `take` and `put` assert it); other threads reach it only through
/// `eventLoop.execute`/`submit`, hence `@unchecked Sendable`. Keyed by user and port; at most
/// `maxIdlePerUpstream` connections wait per key; one idle for `idleTimeout` (below Node.js's default 5 s
/// keep-alive timeout) is no longer handed out and is closed by the next sweep (within 1.5 `idleTimeout`); a
/// connection the upstream closes or writes to while idle is dropped.
final class UpstreamPool: @unchecked Sendable {
    private struct Key: Hashable {
        var user: String
        var port: Int
    }
    private var idle: [Key: [UpstreamHandler]] = [:]
    /// One sweep timer for the whole pool (a timer per parked connection would pile up under connection churn).
    private var sweepScheduled = false
    let eventLoop: EventLoop
    let maxIdlePerUpstream: Int
    let idleTimeout: TimeAmount

    init(eventLoop: EventLoop, maxIdlePerUpstream: Int = 16, idleTimeout: TimeAmount = .seconds(4)) {
        self.eventLoop = eventLoop
        self.maxIdlePerUpstream = maxIdlePerUpstream
        self.idleTimeout = idleTimeout
    }

    /// Number of idle connections held.
    var count: Int { idle.values.reduce(0) { $0 + $1.count } }

    /// The most recently parked live connection to `user`'s `port`, or nil.
    func take(user: String, port: Int) -> UpstreamHandler? {
        assert(eventLoop.inEventLoop)
        let key = Key(user: user, port: port)
        let now = NIODeadline.now()
        while let up = idle[key]?.popLast() {
            if idle[key]?.isEmpty == true { idle[key] = nil }
            if up.idleReusable, let since = up.idleSince, now - since < idleTimeout { return up }
            up.closeQuietly()
        }
        return nil
    }

    /// Keeps `up` for a later client, or closes it when it is not reusable or the pool is full for its key.
    func put(_ up: UpstreamHandler) {
        assert(eventLoop.inEventLoop)
        let key = Key(user: up.user, port: up.port)
        guard up.idleReusable, idle[key, default: []].count < maxIdlePerUpstream else {
            up.closeQuietly()
            return
        }
        up.park(in: self, since: .now())
        idle[key, default: []].append(up)
        scheduleSweep()
    }

    /// Closes, every half `idleTimeout` while the pool holds connections, those idle for `idleTimeout` or longer
    /// (`take` never hands those out either).
    private func scheduleSweep() {
        guard !sweepScheduled else { return }
        sweepScheduled = true
        eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(idleTimeout.nanoseconds / 2)) { [weak self] in
            guard let self else { return }
            self.sweepScheduled = false
            let now = NIODeadline.now()
            var expired: [UpstreamHandler] = []
            for (key, list) in self.idle {
                let fresh = list.filter { now - ($0.idleSince ?? now) < self.idleTimeout }
                if fresh.count == list.count { continue }
                expired += list.filter { up in !fresh.contains { $0 === up } }
                self.idle[key] = fresh.isEmpty ? nil : fresh
            }
            for up in expired { up.closeQuietly() }
            if !self.idle.isEmpty { self.scheduleSweep() }
        }
    }

    /// Forgets `up` (it closed while idle).
    func remove(_ up: UpstreamHandler) {
        let key = Key(user: up.user, port: up.port)
        idle[key]?.removeAll { $0 === up }
        if idle[key]?.isEmpty == true { idle[key] = nil }
    }

    /// Closes every idle connection (shutdown).
    func closeAll() {
        let all = idle.values.flatMap { $0 }
        idle = [:]
        for up in all { up.closeQuietly() }
    }
}

/// One `UpstreamPool` per event loop of the dispatcher's group, fixed at start.
final class UpstreamPools: @unchecked Sendable {
    // Immutable after init; each pool is touched only on its own event loop.
    private let pools: [ObjectIdentifier: UpstreamPool]

    init(group: EventLoopGroup) {
        var pools: [ObjectIdentifier: UpstreamPool] = [:]
        for loop in group.makeIterator() { pools[ObjectIdentifier(loop)] = UpstreamPool(eventLoop: loop) }
        self.pools = pools
    }

    /// The pool of `loop`; call on `loop`.
    func pool(for loop: EventLoop) -> UpstreamPool? {
        pools[ObjectIdentifier(loop)]
    }

    /// Closes the idle connections of every pool, each on its own loop.
    func closeAll() {
        for pool in pools.values {
            pool.eventLoop.execute { pool.closeAll() }
        }
    }

    /// Idle connections held by all pools; call from outside the loops (tests, metrics).
    func idleCount() async -> Int {
        var n = 0
        for pool in pools.values {
            n += (try? await pool.eventLoop.submit { pool.count }.get()) ?? 0
        }
        return n
    }
}

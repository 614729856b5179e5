import Foundation
import NIOCore
import NIOHTTP1
import Testing
import WorkstationCore

@testable import WorkstationDispatch

@Suite struct DispatchConfigTests {
    @Test func defaultsWithoutASection() throws {
        let c = try DispatchConfig.load(yaml: Data("config_base: /srv/x\n".utf8), file: "workstation.yaml")
        #expect(c == DispatchConfig())
        #expect(c.identity == .peer)
        #expect(c.listen == .unix(path: "/run/workstation-dispatch/dispatch.sock"))
        #expect(c.frontProxyUsers == ["www-data"])
        #expect(c.trustedProxies.isEmpty)
        #expect(c.gateGroup == "T3 Users")
        #expect(c.securityProblems(localAddresses: []).isEmpty)
    }

    @Test func readsEveryKey() throws {
        let yaml = """
            other: ignored
            dispatch:
              identity: jwt
              listen: 0.0.0.0:3773
              metrics_listen: "[::1]:9500"
              trusted_proxies: [10.0.0.5]
              jwt:
                jwks_file: /srv/jwks.json
                issuer: https://auth.example.org/application/o/t3/
                audience: t3
                username_claim: sub_name
              gate_group: Workstation People
              max_active_users: 3
              dispatch_file: /srv/dispatch.json
              ttyd_user_map: /srv/ttyd-map
              reload_interval_seconds: 5
            """
        let c = try DispatchConfig.load(yaml: Data(yaml.utf8), file: "workstation.yaml", localAddresses: ["10.0.0.9"])
        #expect(c.identity == .jwt)
        #expect(c.listen == .tcp(host: "0.0.0.0", port: 3773))
        #expect(c.metricsListen == .tcp(host: "::1", port: 9500))
        #expect(c.trustedProxies == ["10.0.0.5"])
        #expect(c.jwt?.jwksFile == "/srv/jwks.json")
        #expect(c.jwt?.issuer == "https://auth.example.org/application/o/t3/")
        #expect(c.jwt?.audience == "t3")
        #expect(c.jwt?.usernameClaim == "sub_name")
        #expect(c.jwt?.groupsClaim == "groups")
        #expect(c.gateGroup == "Workstation People")
        #expect(c.maxActiveUsers == 3)
        #expect(c.dispatchFile == "/srv/dispatch.json")
        #expect(c.ttydUserMap == "/srv/ttyd-map")
        #expect(c.reloadIntervalSeconds == 5)
    }

    @Test func reportsEveryProblemWithItsLocation() throws {
        let yaml = """
            dispatch:
              listne: 127.0.0.1:1
              listen: localhost:3773
              trusted_proxies: [proxy.example.org]
              max_active_users: 0
              gate_group: "a|b"
              dispatch_file: relative.json
            """
        do {
            _ = try DispatchConfig.load(yaml: Data(yaml.utf8), file: "workstation.yaml")
            Issue.record("expected a failure")
        } catch let failure as ValidationFailure {
            let text = failure.description
            #expect(
                text.contains("workstation.yaml:2:3: error: unknown key 'listne' in dispatch; did you mean 'listen'?")
            )
            #expect(
                text.contains(
                    "workstation.yaml:3:11: error: dispatch.listen: listen address 'localhost:3773' is invalid"
                )
            )
            #expect(text.contains("proxy.example.org' is not an IP address"))
            #expect(text.contains("max_active_users must be between 1 and 10000"))
            #expect(text.contains("gate_group must be a non-empty group name without '|'"))
            #expect(text.contains("dispatch_file must be an absolute path"))
            #expect(failure.diagnostics.count == 6)
        }
    }

    @Test func trustMatchesExactAddressesAndMappedIPv4() throws {
        var c = DispatchConfig()
        c.trustedProxies = ["127.0.0.1"]
        #expect(c.isTrusted(peer: try SocketAddress(ipAddress: "127.0.0.1", port: 5)))
        #expect(c.isTrusted(peer: try SocketAddress(ipAddress: "::ffff:127.0.0.1", port: 5)))
        #expect(!c.isTrusted(peer: try SocketAddress(ipAddress: "127.0.0.2", port: 5)))
        #expect(!c.isTrusted(peer: try SocketAddress(unixDomainSocketPath: "/tmp/x")))
        #expect(!c.isTrusted(peer: nil))
        c.trustedProxies = []
        #expect(
            c.isTrusted(peer: try SocketAddress(ipAddress: "192.0.2.7", port: 5)),
            "an empty list leaves the proof to the token"
        )
    }

    @Test func upstreamHeadersDropHopByHopAndForeignIdentity() {
        var h = HTTPHeaders()
        h.add(name: "Host", value: "t3.example.org")
        h.add(name: "Connection", value: "keep-alive, X-Secret")
        h.add(name: "X-Secret", value: "1")
        h.add(name: "Keep-Alive", value: "timeout=5")
        h.add(name: "X-authentik-username", value: "alice")
        h.add(name: "X-Authentik-Jwt", value: "t")
        h.add(name: "Content-Length", value: "3")
        let out = Gate.upstreamHeaders(h, user: "alice", upgrade: false)
        #expect(out["Host"] == ["t3.example.org"])
        #expect(out["Content-Length"] == ["3"])
        #expect(out["X-Secret"].isEmpty && out["Connection"].isEmpty && out["Keep-Alive"].isEmpty)
        #expect(out["X-authentik-jwt"].isEmpty)
        #expect(out[Gate.usernameHeader] == ["alice"])
    }

    @Test func webSocketUpgradeKeepsTheHandshakeFields() {
        let h: HTTPHeaders = ["Connection": "keep-alive, Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Key": "k"]
        #expect(Gate.isWebSocketUpgrade(h))
        let out = Gate.upstreamHeaders(h, user: "alice", upgrade: true)
        #expect(out["Connection"] == ["Upgrade"])
        #expect(out["Upgrade"] == ["websocket"])
        #expect(out["Sec-WebSocket-Key"] == ["k"])
        #expect(!Gate.isWebSocketUpgrade(["Upgrade": "websocket"]))
    }
}

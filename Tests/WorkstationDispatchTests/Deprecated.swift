import Foundation
import WorkstationTestSupport

// The old names of the upstreams now made by WorkstationTestSupport's TestHTTPServer: kept so that tests written
// against them still compile (each says what replaced it). Delete this file once no call site is left.

@available(*, deprecated, message: "use TestHTTPServer.echoUpstream(name:)")
typealias EchoUpstream = TestHTTPServer

@available(*, deprecated, message: "use TestHTTPServer.oneShotUpstream()")
typealias OneShotUpstream = TestHTTPServer

@available(*, deprecated, message: "use TestHTTPServer.rawReplies(_:closeAfter:streamAfter:)")
typealias ScriptedUpstream = TestHTTPServer

extension TestHTTPServer {
    @available(*, deprecated, message: "use TestHTTPServer.echoUpstream(name:)")
    static func start(name: String) async throws -> TestHTTPServer { try echoUpstream(name: name) }

    @available(*, deprecated, message: "use TestHTTPServer.oneShotUpstream()")
    static func start() async throws -> TestHTTPServer { try oneShotUpstream() }

    @available(*, deprecated, message: "use TestHTTPServer.rawReplies(_:closeAfter:streamAfter:)")
    static func start(
        reply: String,
        closeAfter: Bool = false,
        streamAfter: Bool = false
    ) async throws
        -> TestHTTPServer
    {
        try rawReplies(reply, closeAfter: closeAfter, streamAfter: streamAfter)
    }

    @available(*, deprecated, renamed: "requestHeads")
    var headsReceived: Int { requestHeads }

    @available(*, deprecated, renamed: "bytesReceived")
    var bytes: Int { bytesReceived }
}

@available(*, deprecated, message: "use TestHTTPServer.byteSink()")
enum ByteSink {
    static func start() async throws -> TestHTTPServer { try TestHTTPServer.byteSink() }
}

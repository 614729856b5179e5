import Foundation
import Testing
import WorkstationTestSupport

@testable import WorkstationDispatch

/// The start-up's pages handed back: the process's file-backed resident set shrinks, and the code dropped from
/// the page tables still runs (it is mapped again from the page cache on first use).
@Suite struct ProcessMemoryTests {
    /// `RssFile` of this process, in KiB (proc(5)).
    func residentFileKiB() throws -> Int {
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("RssFile:") })
        return try #require(Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]))
    }

    @Test func releasingTheStartupPagesShrinksTheResidentSetAndEverythingStillRuns() throws {
        #if os(Linux)
        let before = try residentFileKiB()
        #expect(ProcessMemory.releaseStartupPages() > 0)
        let after = try residentFileKiB()
        #expect(after < before, "RssFile \(before) KiB before, \(after) KiB after")
        // Code and read-only data used again come back.
        #expect(HTTPField.isHopByHop(UnsafeRawBufferPointer(start: nil, count: 0)) == false)
        #expect(
            try ResponseFramer.parseHead(.init(string: "HTTP/1.1 204 No Content\r\n\r\n"), noBody: false).status == 204
        )
        #endif
    }
}

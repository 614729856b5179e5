import Foundation
import Testing
import WorkstationTestSupport

@testable import WorkstationCore

/// setup-host's tool manifest (the packages it installs).
@Suite struct ToolManifestTests {
    /// The default tool manifest installs from Debian 12's main archive: kubectl (only in the Kubernetes apt
    /// repository) is not in it. Where this machine's apt lists are Debian 12's, each default has a candidate.
    @Test func defaultToolManifestInstallsOnDebian12() throws {
        let packages = Settings().setupHost.packages
        #expect(!packages.contains("kubectl") && !packages.contains("kubernetes-client"))
        #expect(packages == ["acl", "git", "git-crypt"])
        let release = (try? String(contentsOfFile: "/etc/os-release", encoding: .utf8)) ?? ""
        guard release.contains("VERSION_CODENAME=bookworm"),
            FileManager.default.isExecutableFile(atPath: "/usr/bin/apt-cache")
        else { return }
        let out = try TestProcess.run("/usr/bin/apt-cache", ["policy"] + packages).stdout
        for name in packages {
            let section =
                out.components(separatedBy: "\n\(name):").dropFirst().first ?? out.components(separatedBy: "\(name):")
                .dropFirst().first ?? ""
            #expect(
                section.contains("Candidate:") && !section.prefix(200).contains("Candidate: (none)"),
                "\(name): \(section.prefix(200))"
            )
        }
    }
}

import Foundation
import Testing

@testable import WorkstationCore

@Suite struct LifecycleSettingsTests {
    @Test func defaultsWithoutTheSections() throws {
        let s = try Settings.parse(Data("config_base: /srv/base\n".utf8), file: "workstation.yaml")
        #expect(s.offboard.backupDirectory == "/var/backups/workstation")
        #expect(s.cutover.launchers == ["start-claude.sh"] && s.cutover.sharedCodeGroup == "code-shared")
        #expect(s.cutover.effectiveLeadTree == "/home/lead/code")
        #expect(s.idle.processNames == ["claude", "tmux", "t3"])
    }

    @Test func readsTheSections() throws {
        let yaml = """
            offboard: { backup_directory: /srv/backups }
            cutover: { launchers: [bin/start.sh], lead_home: /home/carol, lead_tree: /home/carol/src, shared_code_group: shared }
            idle: { process_names: [claude] }
            """
        let s = try Settings.parse(Data(yaml.utf8), file: "w.yaml")
        #expect(s.offboard.backupDirectory == "/srv/backups")
        #expect(
            s.cutover.launchers == ["bin/start.sh"] && s.cutover.effectiveLeadTree == "/home/carol/src"
                && s.cutover.sharedCodeGroup == "shared"
        )
        #expect(s.idle.processNames == ["claude"])
    }

    @Test(arguments: [
        ("cutover: { launchers: [../x] }\n", "w.yaml:1:24: error: launcher '../x' must be a path relative to the home"),
        (
            "cutover: { lead_hom: /home/carol }\n",
            "w.yaml:1:12: error: unknown key 'lead_hom' in cutover; did you mean 'lead_home'?"
        ),
        (
            "offboard: { backup_directory: backups }\n",
            "w.yaml:1:31: error: offboard.backup_directory must be an absolute path"
        ),
        (
            "idle: { process_names: [a-very-long-process-name] }\n",
            "w.yaml:1:25: error: process name 'a-very-long-process-name' must be"
        ),
    ])
    func badSettingsAreLocated(yaml: String, expected: String) {
        do {
            _ = try Settings.parse(Data(yaml.utf8), file: "w.yaml")
            Issue.record("accepted: \(yaml)")
        } catch {
            #expect("\(error)".contains(expected), "\(error)")
        }
    }
}

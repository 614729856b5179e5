import Foundation
import Testing
import WorkstationCore
import WorkstationHost
import WorkstationIntegrations
import WorkstationTestSupport

@Suite struct TokenSourceTests {
    func settings(_ yaml: String) throws -> Settings { try Settings.parse(Data(yaml.utf8), file: "w.yaml") }

    @Test func environmentWinsOverTheFileAndTheFileIsTrimmed() throws {
        let s = try Sandbox()
        try s.write("/etc/ws/vault.token", "  hvs.from-file \n")
        let st = try settings(
            "vault: {url: http://127.0.0.1:1, token_file: /etc/ws/vault.token}\nauthentik: {url: http://127.0.0.1:1, token_env: AK_TEST_TOKEN, token_file: /etc/ws/none}\n"
        )
        let fromEnv = IntegrationClients.live(
            settings: st,
            root: s.root,
            environment: ["VAULT_TOKEN": "hvs.from-env", "AK_TEST_TOKEN": "ak"]
        )
        #expect(fromEnv.vault != nil && fromEnv.authentik != nil && fromEnv.problems.isEmpty)
        #expect(
            IntegrationClients.token(st.vault!.token, root: s.root, environment: ["VAULT_TOKEN": "hvs.from-env"])
                == .success("hvs.from-env")
        )
        #expect(
            IntegrationClients.token(st.vault!.token, root: s.root, environment: ["VAULT_TOKEN": "  "])
                == .success("hvs.from-file")
        )
        #expect(IntegrationClients.token(st.vault!.token, root: s.root, environment: [:]) == .success("hvs.from-file"))
    }

    @Test func aMissingTokenIsAProblemNamingWhatToSet() throws {
        let s = try Sandbox()
        let st = try settings(
            "vault: {url: http://127.0.0.1:1}\nauthentik: {url: http://127.0.0.1:1, token_file: /etc/ws/absent}\n"
        )
        let c = IntegrationClients.live(settings: st, root: s.root, environment: [:])
        #expect(c.vault == nil && c.authentik == nil)
        #expect(c.problems["vault"]?.contains("set VAULT_TOKEN or token_file") == true)
        #expect(c.problems["authentik"]?.contains("cannot read the token file") == true)
    }
}

extension Result: @retroactive Equatable where Success: Equatable, Failure == TokenMessage {
    public static func == (a: Self, b: Self) -> Bool {
        switch (a, b) {
        case (.success(let x), .success(let y)): x == y
        case (.failure(let x), .failure(let y)): x.description == y.description
        default: false
        }
    }
}

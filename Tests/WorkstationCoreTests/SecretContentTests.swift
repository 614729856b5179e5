import Foundation
import Testing

@testable import WorkstationCore

/// The bytes a secret file gets from the value Vault holds.
@Suite struct SecretContentTests {
    /// Content is made from bytes: base64 decoded exactly; `{{value_shell}}` quotes any byte but NUL.
    @Test(arguments: [
        (
            SecretEncoding.base64, nil as String?, Data([0, 0xFF, 0x0A, 0x27]).base64EncodedString(),
            Result<Data, SecretContentError>.success(Data([0, 0xFF, 0x0A, 0x27]))
        ),
        (.base64, nil, " \(Data([1, 2, 3]).base64EncodedString())\n", .success(Data([1, 2, 3]))),
        (.base64, nil, "no base64!", .failure(.notBase64)),
        (.base64, "export X={{value_shell}}", Data([0x61, 0]).base64EncodedString(), .failure(.nulInShell)),
        (
            .base64, "export X={{value_shell}}", Data([0x61, 0x27, 0xFF]).base64EncodedString(),
            .success(
                Data([
                    0x65, 0x78, 0x70, 0x6F, 0x72, 0x74, 0x20, 0x58, 0x3D, 0x27, 0x61, 0x27, 0x5C, 0x27, 0x27, 0xFF,
                    0x27, 0x0A,
                ])
            )
        ),
        (.base64, "{{value_json}}", Data([0xFF]).base64EncodedString(), .failure(.notUTF8)),
        (.none, "t={{value}}", "v", .success(Data("t=v\n".utf8))),
        (.none, nil, "a\nb", .success(Data("a\nb".utf8))),
    ])
    func secretContentFromBytes(
        _ enc: SecretEncoding,
        _ template: String?,
        _ value: String,
        _ expected: Result<Data, SecretContentError>
    ) {
        var spec = SecretFileSpec(name: "x", path: "p", key: "k", target: ".config/x")
        spec.encoding = enc
        spec.template = template
        let got = Planner.secretContent(spec, Redacted(Data(value.utf8))).map(\.bytes)
        #expect(got == expected)
    }
}

@testable import ContinuumHTTP
import Foundation
import Testing

/// The event route's hand-written paths give what the Foundation calls they stand in for gave.
@Suite("HTTP hand paths")
struct HandPathTests {
    @Test("a control character is exactly general category Cc, over every scalar")
    func controlCharacters() {
        var mismatches: [UInt32] = []
        for value in UInt32(0)...0x10FFFF {
            guard let scalar = Unicode.Scalar(value) else { continue }
            if isControl(scalar) != (scalar.properties.generalCategory == .control) { mismatches.append(value) }
        }
        #expect(mismatches.isEmpty)
    }
}

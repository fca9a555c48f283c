import Crypto
public import Foundation
import Synchronization

/// The bearer tokens the API accepts, kept only as SHA-256 digests and compared in constant time.
public struct BearerTokens: Sendable {
    /// The digests' bytes (`SHA256.Digest` is not `Sendable`).
    private let digests: [[UInt8]]

    /// Hashes `tokens`; the tokens themselves are not kept.
    public init(_ tokens: [String]) {
        digests = tokens.map { Array(SHA256.hash(data: Data($0.utf8))) }
    }

    /// Whether no token is configured (then the API needs none).
    public var isEmpty: Bool { digests.isEmpty }

    /// Whether `token` is one of them. Every digest is compared, each in constant time
    /// (swift-crypto's `Digest` equality), so the time taken does not tell how much of a token
    /// matched or which one.
    public func accepts(_ token: some StringProtocol) -> Bool {
        let presented = SHA256.hash(data: Data(token.utf8))
        var matched = false
        for digest in digests { matched = (presented == digest) || matched }
        return matched
    }
}

/// Verifies webhook signatures in the Standard Webhooks format (standardwebhooks.com):
/// `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature` (space-separated
/// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`), within a window around now. Several
/// secrets may be configured at once, so a secret can be rotated without downtime.
public struct WebhookVerifier: Sendable {
    /// Why a signature was refused.
    public enum Failure: Error, Sendable, Equatable, CustomStringConvertible {
        case missingHeaders
        case badTimestamp
        case staleTimestamp
        case noMatchingSignature

        public var description: String {
            switch self {
            case .missingHeaders: "the webhook-id, webhook-timestamp and webhook-signature headers are required"
            case .badTimestamp: "webhook-timestamp is not a Unix time in seconds"
            case .staleTimestamp: "webhook-timestamp is outside the accepted window around the server's time; check the sender's clock, and do not replay old deliveries"
            case .noMatchingSignature: "no signature in webhook-signature matches the body with any configured secret"
            }
        }
    }

    /// The secrets' key bytes (`SymmetricKey` is not `Sendable`).
    private let keys: [[UInt8]]
    /// How far the timestamp may be from now, either way.
    public let tolerance: Duration

    /// - Parameters:
    ///   - secrets: Secrets as Standard Webhooks writes them (`whsec_` + base64); a secret
    ///     without the prefix, or not valid base64, is used as raw UTF-8 bytes.
    ///   - tolerance: How far the timestamp may be from now (default five minutes).
    public init(secrets: [String], tolerance: Duration = .seconds(300)) {
        keys = secrets.map(Self.keyBytes)
        self.tolerance = tolerance
    }

    /// Whether no secret is configured.
    public var isEmpty: Bool { keys.isEmpty }

    /// Checks a delivery's signature against every secret, before anything parses its body.
    ///
    /// - Returns: The signed timestamp, in Unix seconds.
    @discardableResult
    public func verify(id: String?, timestamp: String?, signatures: String?, body: some DataProtocol, now: Date = Date()) throws(Failure) -> Int64 {
        guard let id, let timestamp, let signatures else { throw .missingHeaders }
        guard let seconds = Int64(timestamp) else { throw .badTimestamp }
        let skew = Double(tolerance.components.seconds)
        guard abs(now.timeIntervalSince1970 - Double(seconds)) <= skew else { throw .staleTimestamp }
        let signed = Self.signedContent(id: id, timestamp: timestamp, body: body)
        let presented = signatures.split(separator: " ").compactMap { entry -> Data? in
            let parts = entry.split(separator: ",", maxSplits: 1)
            guard parts.count == 2, parts[0] == "v1" else { return nil }
            return Data(base64Encoded: String(parts[1]))
        }
        // Every secret against every signature, each compared in constant time.
        var matched = false
        for key in keys {
            let key = SymmetricKey(data: key)
            for signature in presented {
                matched = HMAC<SHA256>.isValidAuthenticationCode(signature, authenticating: signed, using: key) || matched
            }
        }
        guard matched else { throw .noMatchingSignature }
        return seconds
    }

    /// The `webhook-signature` value for a delivery, as a sender computes it (for tests and
    /// for `continuum send --sign`).
    public static func signature(secret: String, id: String, timestamp: Int64, body: some DataProtocol) -> String {
        let signed = signedContent(id: id, timestamp: String(timestamp), body: body)
        return "v1," + Data(HMAC<SHA256>.authenticationCode(for: signed, using: SymmetricKey(data: keyBytes(secret)))).base64EncodedString()
    }

    /// What Standard Webhooks signs: `id.timestamp.body`.
    private static func signedContent(id: String, timestamp: String, body: some DataProtocol) -> Data {
        var signed = Data("\(id).\(timestamp).".utf8)
        signed.append(contentsOf: body)
        return signed
    }
}

extension WebhookVerifier {
    /// A secret's key: the base64 after `whsec_`, or else the secret's UTF-8 bytes.
    static func keyBytes(_ secret: String) -> [UInt8] {
        if secret.hasPrefix("whsec_"), let bytes = Data(base64Encoded: String(secret.dropFirst(6))) { return Array(bytes) }
        return Array(secret.utf8)
    }
}

/// Remembers where each signed `webhook-id` was delivered while its timestamp is inside the
/// accepted window, so a captured delivery cannot be replayed to another workflow or event
/// name: Standard Webhooks signs the id, the timestamp and the body, not the request path.
/// A redelivery to the same target passes (the event's dedup key then returns the first receipt).
///
/// It holds at most `capacity` ids. When full it forgets the expired ones (at most once a
/// second), and if every id is still inside its window it refuses new ones rather than forget
/// one whose replay would then pass. It lives in memory: a replay to another target after a
/// restart, inside the window, is not caught.
final class WebhookReplayGuard: Sendable {
    struct Target: Hashable, Sendable {
        var workflowID: String
        var event: String
    }

    enum Verdict {
        case admitted
        /// The id went to another target.
        case replayed
        /// Every remembered id is still inside its window.
        case full
    }

    private struct State {
        var targets: [String: (target: Target, expires: Int64)] = [:]
        var lastSweep: Int64 = .min
    }

    private let state = Mutex(State())
    let capacity: Int

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    /// Records `id` for `target` until `expires` (Unix seconds, like `now`).
    func admit(id: String, target: Target, expires: Int64, now: Int64) -> Verdict {
        state.withLock { state in
            if let seen = state.targets[id], seen.expires >= now {
                return seen.target == target ? .admitted : .replayed
            }
            if state.targets.count >= capacity, state.lastSweep < now {
                state.lastSweep = now
                state.targets = state.targets.filter { $0.value.expires >= now }
            }
            guard state.targets.count < capacity || state.targets[id] != nil else { return .full }
            state.targets[id] = (target, expires)
            return .admitted
        }
    }
}

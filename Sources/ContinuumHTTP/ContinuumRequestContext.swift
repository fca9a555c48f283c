public import Foundation
public import Hummingbird
public import HummingbirdAuth

/// Who a request to Continuum's routes comes from, as the authenticators found: the identity
/// an ``ContinuumRequestContext`` (or any `AuthRequestContext<ContinuumCaller>`) carries.
///
/// With no tokens and no webhook secrets configured, nobody is identified and every request is
/// let through (bind to loopback then).
public enum ContinuumCaller: Sendable, Hashable {
    /// The request carried an accepted bearer token: in its `Authorization` header, or in the
    /// cookie the dashboard's login form sets.
    case tokenHolder
    /// An event delivery carried a valid Standard Webhooks signature; `id` is its signed
    /// `webhook-id`, which then deduplicates the delivery.
    case webhook(id: String)

    /// The name history records for a way out (resume, reset, fork) this caller asks for
    /// without saying who it is, when the caller is known by name: a bearer token names
    /// nobody, so it is `nil` and the API records `http`.
    var actionName: String? {
        switch self {
        case .tokenHolder: nil
        case .webhook(let id): "webhook \(id)"
        }
    }
}

/// The request context Continuum's routes run with when ``ContinuumAPI/register(on:atPath:)``
/// mounts them: made from the router's own context, plus the ``ContinuumCaller`` the
/// authenticators found.
///
/// To mount a collection yourself, on a router whose context is `BasicRequestContext`:
///
/// ```swift
/// router.group("/ops", context: ContinuumRequestContext<BasicRequestContext>.self)
///     .addRoutes(api.workflowRoutes())
/// ```
public struct ContinuumRequestContext<Parent: RequestContext>: ChildRequestContext, AuthRequestContext {
    public typealias ParentContext = Parent

    public var coreContext: CoreRequestContextStorage
    /// Who is asking, once an authenticator accepted them.
    public var identity: ContinuumCaller?

    public init(context: Parent) {
        self.coreContext = context.coreContext
        self.identity = nil
    }

    /// JSON with sorted keys and unescaped slashes: the same bytes for the same answer.
    public var responseEncoder: JSONEncoder { APIJSON.encoder }
}

/// The JSON coding the API's own answers use.
enum APIJSON {
    /// Sorted keys and unescaped slashes (a new encoder each time: `JSONEncoder` is a class).
    static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }
}

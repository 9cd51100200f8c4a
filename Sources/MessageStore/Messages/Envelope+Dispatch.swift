#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

extension Envelope {
    /// Why a delivered body cannot go to a handler.
    enum DispatchFailure: Error {
        /// Not JSON, no string `type`, or `data` not an object.
        case malformedEnvelope(String)
        /// The envelope is fine but `data` does not decode as the handler's type.
        case undecodableData(type: String, detail: String)
    }

    /// An envelope decoded in one pass: the type is read first, then `data` is decoded straight
    /// into the payload type of the handler registered for it.
    struct Dispatched: Decodable {
        var type: String
        var metadata: MessageMetadata?
        /// The typed data, or nil when no handler takes this type.
        var payload: (any MessagePayload)?

        private enum CodingKeys: String, CodingKey {
            case type, data, metadata
        }

        static let handlersKey = CodingUserInfoKey(rawValue: "message-store.handlers")!

        /// Carried through `userInfo` to `init(from:)`.
        struct Table: Sendable {
            var payloadTypes: [String: any MessagePayload.Type]
        }

        struct DataFailure: Error {
            var type: String
            var underlying: any Error
        }

        init(type: String, metadata: MessageMetadata?, payload: (any MessagePayload)?) {
            self.type = type
            self.metadata = metadata
            self.payload = payload
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            type = try container.decode(String.self, forKey: .type)
            metadata = try container.decodeIfPresent(MessageMetadata.self, forKey: .metadata)
            let table = decoder.userInfo[Self.handlersKey] as? Table
            if let payloadType = table?.payloadTypes[type] {
                do {
                    payload = try container.decode(payloadType, forKey: .data)
                } catch {
                    // A `data` that is missing or not an object is a malformed envelope; only an
                    // object of the wrong shape is undecodable data. Checked only on failure:
                    // probing first would index the object's keys twice on every message.
                    _ = try container.nestedContainer(keyedBy: AnyKey.self, forKey: .data)
                    throw DataFailure(type: type, underlying: error)
                }
            } else {
                _ = try container.nestedContainer(keyedBy: AnyKey.self, forKey: .data)
                payload = nil
            }
        }
    }

    /// A decoder that dispatches `data` to the payload types of `handlers`.
    static func makeDispatchDecoder(for handlers: MessageHandlers, coding: BodyCoding = .fast) -> BodyDecoder {
        makeDispatchDecoder(payloadTypes: handlers.table.mapValues(\.payloadType), coding: coding)
    }

    /// A decoder that decodes `data` as the payload type registered for the envelope's type.
    static func makeDispatchDecoder(
        payloadTypes: [String: any MessagePayload.Type],
        coding: BodyCoding = .fast
    ) -> BodyDecoder {
        var decoder = BodyDecoder(
            userInfo: [Dispatched.handlersKey: Dispatched.Table(payloadTypes: payloadTypes)],
            coding: coding
        )
        decoder.payloadTypes = payloadTypes
        return decoder
    }

    static func decodeForDispatch(_ body: [UInt8], using decoder: BodyDecoder) throws(DispatchFailure) -> Dispatched {
        if let payloadTypes = decoder.payloadTypes,
            let envelope = decoder.fast?.decodeEnvelope(body, payloadTypes: payloadTypes)
        {
            return envelope
        }
        do {
            return try decoder.decode(Dispatched.self, from: body)
        } catch let failure as Dispatched.DataFailure {
            throw .undecodableData(type: failure.type, detail: describe(failure.underlying))
        } catch {
            throw .malformedEnvelope(describe(error))
        }
    }
}

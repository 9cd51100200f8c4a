/// The JetStream API error codes (`err_code`) the library acts on, named as nats-server names
/// them (`JS…Err` in its errors.json). Every mapping of a JetStream refusal goes through here.
enum JetStreamErrorCode: Int, Sendable, CaseIterable {
    /// 10008, `JSClusterNotAvailErr`: JetStream system temporarily unavailable (an election).
    case clusterNotAvailable = 10008
    /// 10009, `JSClusterNotLeaderErr`: the cluster cannot handle the request (no leader).
    case clusterNotLeader = 10009
    /// 10014, `JSConsumerNotFoundErr`.
    case consumerNotFound = 10014
    /// 10037, `JSNoMessageFoundErr`.
    case noMessageFound = 10037
    /// 10054, `JSStreamMessageExceedsMaximumErr`.
    case messageExceedsMaximum = 10054
    /// 10058, `JSStreamNameExistErr`: a stream of that name exists with another configuration.
    case streamNameInUse = 10058
    /// 10059, `JSStreamNotFoundErr`.
    case streamNotFound = 10059
    /// 10071, `JSStreamWrongLastSequenceErr`: `Nats-Expected-Last-Subject-Sequence` did not hold.
    case wrongLastSequence = 10071

    init?(_ code: Int?) {
        guard let code else { return nil }
        self.init(rawValue: code)
    }

    /// The library's error code for a refusal with this code, where it has one of its own.
    var errorCode: MessageStoreError.Code? {
        switch self {
        case .streamNotFound: .streamNotFound
        case .messageExceedsMaximum: .messageTooLarge
        case .wrongLastSequence: .wrongExpectedSequence
        case .clusterNotAvailable, .clusterNotLeader, .consumerNotFound, .noMessageFound, .streamNameInUse: nil
        }
    }

    /// Whether the code means "not now" rather than "no": the cluster is electing a leader.
    var meansUnavailable: Bool {
        self == .clusterNotAvailable || self == .clusterNotLeader
    }
}

extension MessageStoreError {
    /// The JetStream error code of this error, when it is one the library acts on.
    var jetStreamError: JetStreamErrorCode? {
        JetStreamErrorCode(jetStreamErrorCode)
    }
}

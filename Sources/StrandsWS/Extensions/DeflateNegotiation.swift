/// What the two sides of a connection agreed for permessage-deflate, from this side's point of view.
struct DeflateAgreement: Equatable {
    /// This side's compressor keeps its history from message to message.
    var sendTakeover: Bool
    /// The window this side deflates with, 9 to 15 (an agreed 8 is deflated with 9).
    var sendWindowBits: Int
    /// The peer's messages may refer to earlier ones: this side keeps an inflate window for them.
    var receiveTakeover: Bool
    /// The window the peer compresses with, 8 to 15: the inflate window this side needs.
    var receiveWindowBits: Int

    /// Both directions reset per message: the loop's shared streams serve the connection.
    var isStateless: Bool { !self.sendTakeover && !self.receiveTakeover }
}

/// The parameters of one permessage-deflate offer or answer (RFC 7692 §7.1).
struct DeflateParameters: Equatable {
    var serverNoContextTakeover = false
    var clientNoContextTakeover = false
    var serverMaxWindowBits: Int?
    /// Present in an offer, with or without a value (a bare one means "I can use a smaller window").
    var clientMaxWindowBitsOffered = false
    var clientMaxWindowBits: Int?

    static let name = "permessage-deflate"

    /// The parameters, or why the element is malformed: an unknown parameter, one given twice, a
    /// value where none belongs, or a window size that is not a plain decimal 8 to 15 (§7.1). In an
    /// answer, `client_max_window_bits` must carry a value (§7.1.2.2).
    static func parse(_ element: ExtensionOffer, isAnswer: Bool) -> Result<DeflateParameters, ExtensionNegotiationError> {
        var parameters = DeflateParameters()
        var seen = Set<String>()
        for parameter in element.parameters {
            let name = parameter.name.lowercased()
            guard seen.insert(name).inserted else {
                return .failure(ExtensionNegotiationError("permessage-deflate: \(name) given twice"))
            }
            switch name {
            case "server_no_context_takeover", "client_no_context_takeover":
                guard parameter.value == nil else {
                    return .failure(ExtensionNegotiationError("permessage-deflate: \(name) takes no value"))
                }
                if name == "server_no_context_takeover" {
                    parameters.serverNoContextTakeover = true
                } else {
                    parameters.clientNoContextTakeover = true
                }
            case "server_max_window_bits":
                guard let bits = windowBits(parameter.value) else {
                    return .failure(ExtensionNegotiationError("permessage-deflate: bad server_max_window_bits"))
                }
                parameters.serverMaxWindowBits = bits
            case "client_max_window_bits":
                if let value = parameter.value {
                    guard let bits = windowBits(value) else {
                        return .failure(ExtensionNegotiationError("permessage-deflate: bad client_max_window_bits"))
                    }
                    parameters.clientMaxWindowBits = bits
                } else if isAnswer {
                    return .failure(ExtensionNegotiationError("permessage-deflate: client_max_window_bits without a value"))
                }
                parameters.clientMaxWindowBitsOffered = true
            default:
                return .failure(ExtensionNegotiationError("permessage-deflate: unknown parameter \(name)"))
            }
        }
        return .success(parameters)
    }

    /// `1*DIGIT` without leading zeros, 8 to 15 (§7.1.2.1).
    private static func windowBits(_ value: String?) -> Int? {
        guard let value, let first = value.utf8.first, first != UInt8(ascii: "0"),
              value.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }), value.utf8.count <= 2,
              let bits = Int(value), (8...15).contains(bits)
        else { return nil }
        return bits
    }

    /// The header element for these parameters.
    var element: ExtensionOffer {
        var element = ExtensionOffer(name: Self.name)
        if self.serverNoContextTakeover { element.parameters.append(.init(name: "server_no_context_takeover")) }
        if self.clientNoContextTakeover { element.parameters.append(.init(name: "client_no_context_takeover")) }
        if let bits = self.serverMaxWindowBits {
            element.parameters.append(.init(name: "server_max_window_bits", value: String(bits)))
        }
        if let bits = self.clientMaxWindowBits {
            element.parameters.append(.init(name: "client_max_window_bits", value: String(bits)))
        } else if self.clientMaxWindowBitsOffered {
            element.parameters.append(.init(name: "client_max_window_bits"))
        }
        return element
    }
}

extension WebSocketCompression {
    /// Server: the answer to the first acceptable of a client's permessage-deflate offers, in its order,
    /// and what it means for this side; `nil` when every offer is declined. A malformed offer is
    /// declined and the next one considered (§7.1: "A server MUST decline an extension negotiation
    /// offer" with unknown, repeated or invalid parameters), it does not fail the handshake.
    func answer(_ offers: [ExtensionOffer]) -> (answer: ExtensionOffer, agreement: DeflateAgreement)? {
        for offer in offers where offer.name.caseInsensitiveEquals(DeflateParameters.name) {
            guard case .success(let offered) = DeflateParameters.parse(offer, isAnswer: false) else { continue }
            var answer = DeflateParameters()
            var agreement = DeflateAgreement(sendTakeover: false, sendWindowBits: 15, receiveTakeover: false,
                                             receiveWindowBits: 15)
            // Our compressor: a smaller window than the client allows is always fine (the receiver's
            // window only has to be as large as the sender's), so it is announced only when asked.
            var sendBits = self.windowBits
            if let limit = offered.serverMaxWindowBits {
                sendBits = min(sendBits, limit)
                answer.serverMaxWindowBits = sendBits
            }
            agreement.sendWindowBits = Self.deflateWindow(sendBits)
            if self.mode == .shared || offered.serverNoContextTakeover {
                answer.serverNoContextTakeover = true
            } else {
                agreement.sendTakeover = true
            }
            // The client's compressor.
            if self.mode == .shared || offered.clientNoContextTakeover {
                // Shared inflate needs messages that stand alone; a server may ask for that (§7.1.1.2).
                answer.clientNoContextTakeover = true
            } else {
                agreement.receiveTakeover = true
                if offered.clientMaxWindowBitsOffered {
                    let bits = min(self.windowBits, offered.clientMaxWindowBits ?? 15)
                    answer.clientMaxWindowBits = bits
                    agreement.receiveWindowBits = bits
                }
            }
            return (answer.element, agreement)
        }
        return nil
    }

    /// Client: the offers, in order of preference.
    /// - shared: ask for no context takeover both ways; then a plain offer for servers that refuse that.
    /// - dedicated: ask for context takeover with the server's window at ``windowBits`` (always named, so
    ///   an answer to this offer carries `server_max_window_bits` and tells itself apart from one to the
    ///   next); then one that promises no takeover from this side (`client_no_context_takeover`, which
    ///   servers with a shared inflater look for).
    func offers() -> [ExtensionOffer] {
        var first = DeflateParameters()
        first.clientMaxWindowBitsOffered = true
        var second = DeflateParameters()
        second.clientMaxWindowBitsOffered = true
        if self.mode == .shared {
            first.serverNoContextTakeover = true
            first.clientNoContextTakeover = true
        } else {
            first.serverMaxWindowBits = self.windowBits
            second.clientNoContextTakeover = true
        }
        return [first.element, second.element]
    }

    /// Client: what a server's answer means for this side, or why it cannot be accepted.
    func accept(_ answer: ExtensionOffer) -> Result<DeflateAgreement, ExtensionNegotiationError> {
        let agreed: DeflateParameters
        switch DeflateParameters.parse(answer, isAnswer: true) {
        case .success(let parameters): agreed = parameters
        case .failure(let error): return .failure(error)
        }
        let sendBits = min(self.windowBits, agreed.clientMaxWindowBits ?? 15)
        // Dedicated: only an answer to the first offer (it names the server's window) lets this side keep
        // its history; the second promised not to.
        return .success(DeflateAgreement(
            sendTakeover: self.mode == .dedicated && !agreed.clientNoContextTakeover && agreed.serverMaxWindowBits != nil,
            sendWindowBits: Self.deflateWindow(sendBits),
            receiveTakeover: !agreed.serverNoContextTakeover,
            receiveWindowBits: agreed.serverMaxWindowBits ?? 15))
    }
}

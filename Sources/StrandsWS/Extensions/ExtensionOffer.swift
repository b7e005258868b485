/// One element of a `Sec-WebSocket-Extensions` header: an extension name and its parameters, as a
/// client offers it or a server answers it (RFC 6455 §9.1).
///
/// `permessage-deflate; client_max_window_bits; server_max_window_bits=10` is the name
/// `permessage-deflate` with two parameters, the first without a value.
public struct ExtensionOffer: Sendable, Equatable, CustomStringConvertible {
    public struct Parameter: Sendable, Equatable {
        public var name: String
        /// The value with quotes removed, or `nil` for a bare parameter.
        public var value: String?
        public init(name: String, value: String? = nil) {
            self.name = name
            self.value = value
        }
    }

    public var name: String
    public var parameters: [Parameter]

    public init(name: String, parameters: [Parameter] = []) {
        self.name = name
        self.parameters = parameters
    }

    /// The header form: `name; a; b=1`.
    public var description: String {
        ([self.name] + self.parameters.map { parameter in
            parameter.value.map { "\(parameter.name)=\($0)" } ?? parameter.name
        }).joined(separator: "; ")
    }

    /// The elements of every `Sec-WebSocket-Extensions` value, in order. `nil` when a value does not
    /// follow the grammar (RFC 6455 §9.1: `extension-list = 1#extension`, `extension = token *( ";"
    /// param )`, `param = token [ "=" (token | quoted-string) ]`), which a server answers with 400 and
    /// a client treats as a failed handshake.
    public static func parse(_ values: [String]) -> [ExtensionOffer]? {
        var offers: [ExtensionOffer] = []
        for value in values {
            var scanner = Scanner(Array(value.utf8))
            while true {
                scanner.skipSpace()
                if scanner.atEnd { break }
                if scanner.peek == UInt8(ascii: ",") {  // Empty list elements are allowed (RFC 9110 §5.6.1).
                    scanner.index += 1
                    continue
                }
                guard let name = scanner.token() else { return nil }
                var offer = ExtensionOffer(name: name)
                scanner.skipSpace()
                while scanner.peek == UInt8(ascii: ";") {
                    scanner.index += 1
                    scanner.skipSpace()
                    guard let parameter = scanner.token() else { return nil }
                    scanner.skipSpace()
                    var parameterValue: String?
                    if scanner.peek == UInt8(ascii: "=") {
                        scanner.index += 1
                        scanner.skipSpace()
                        guard let v = scanner.peek == UInt8(ascii: "\"") ? scanner.quoted() : scanner.token() else {
                            return nil
                        }
                        parameterValue = v
                        scanner.skipSpace()
                    }
                    offer.parameters.append(Parameter(name: parameter, value: parameterValue))
                }
                offers.append(offer)
                if scanner.atEnd { break }
                guard scanner.peek == UInt8(ascii: ",") else { return nil }
                scanner.index += 1
            }
        }
        return offers
    }

    private struct Scanner {
        let bytes: [UInt8]
        var index = 0
        init(_ bytes: [UInt8]) { self.bytes = bytes }
        var atEnd: Bool { self.index >= self.bytes.count }
        var peek: UInt8? { self.atEnd ? nil : self.bytes[self.index] }

        mutating func skipSpace() {
            while let c = self.peek, c == UInt8(ascii: " ") || c == UInt8(ascii: "\t") { self.index += 1 }
        }

        mutating func token() -> String? {
            let start = self.index
            while let c = self.peek, HTTPHeadReader.isTokenCharacter(c) { self.index += 1 }
            return self.index > start ? String(decoding: self.bytes[start..<self.index], as: UTF8.self) : nil
        }

        /// A quoted-string (RFC 9110 §5.6.4); RFC 6455 §9.1 wants its content to be a token too.
        mutating func quoted() -> String? {
            self.index += 1
            var content: [UInt8] = []
            while let c = self.peek {
                self.index += 1
                if c == UInt8(ascii: "\"") {
                    guard !content.isEmpty, content.allSatisfy(HTTPHeadReader.isTokenCharacter) else { return nil }
                    return String(decoding: content, as: UTF8.self)
                }
                if c == UInt8(ascii: "\\") {
                    guard let escaped = self.peek else { return nil }
                    self.index += 1
                    content.append(escaped)
                } else {
                    content.append(c)
                }
            }
            return nil  // Unterminated.
        }
    }
}

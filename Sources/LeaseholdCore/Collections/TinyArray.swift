/// A collection that keeps a single element inline and only allocates for zero or two
/// and more: most pins have one range and one extent, and an array would cost one heap
/// allocation each, per pin.
public enum TinyArray<Element: Hashable & Sendable>: Hashable, Sendable, RandomAccessCollection, ExpressibleByArrayLiteral {
    case one(Element)
    /// Zero elements, or two and more.
    case many([Element])

    public init<S: Sequence>(_ elements: S) where S.Element == Element {
        let array = Array(elements)
        self = array.count == 1 ? .one(array[0]) : .many(array)
    }

    public init(arrayLiteral elements: Element...) {
        self.init(elements)
    }

    public var startIndex: Int { 0 }

    public var endIndex: Int {
        switch self {
        case .one: 1
        case .many(let array): array.count
        }
    }

    public subscript(position: Int) -> Element {
        switch self {
        case .one(let element):
            precondition(position == 0, "TinyArray index \(position) out of range")
            return element
        case .many(let array):
            return array[position]
        }
    }

    /// Appends an element.
    public mutating func append(_ element: Element) {
        switch self {
        case .many(let array) where array.isEmpty: self = .one(element)
        case .one(let first): self = .many([first, element])
        case .many(var array):
            self = .many([])
            array.append(element)
            self = .many(array)
        }
    }

    /// The elements as an array.
    public var array: [Element] {
        switch self {
        case .one(let element): [element]
        case .many(let array): array
        }
    }
}

extension TinyArray: Codable where Element: Codable {
    public init(from decoder: any Decoder) throws {
        self.init(try [Element](from: decoder))
    }

    public func encode(to encoder: any Encoder) throws {
        try self.array.encode(to: encoder)
    }
}

// Fuzz target: the GGUF reader (Sources/GGUF) on arbitrary files, and what a model load reads from the
// metadata before any weight: the typed model config, the tokenizer vocabulary and tokenizer, the chat
// template's parser.
//
// The input is the file. Checks: the reader throws only GGUFError; an accepted file's directory is
// consistent (keys, alignment, every tensor's shape, size and data inside the file, no overlaps) and
// every tensor's first and last byte can be read.
//
// DS_FUZZ_WRITE_SEEDS=DIR: write the seed files (reduced copies of the fixture models, one file with every
// value and tensor type) to DIR and exit.

import ChatTemplate
import Engine
import FuzzSupport
import GGUF
import Models
import Tokenizers

#if canImport(Glibc)
import Glibc
#endif

let scratch = Fuzz.scratchPath("input.gguf")

@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
    if let dir = Fuzz.environment("DS_FUZZ_WRITE_SEEDS") {
        do { try GGUFSeeds.write(to: dir) } catch {
            Fuzz.note("seed generation failed: \(error)")
            exit(1)
        }
        exit(0)
    }
    atexit { unlink(scratch); unlink(scratchCopy) }
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzGGUF(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Fuzz.bytes(data, size)
    Fuzz.check(Fuzz.writeFile(bytes, to: scratch), "cannot write \(scratch)")
    let file: GGUFFile
    do {
        file = try GGUFFile(path: scratch)
    } catch let error as GGUFError {
        _ = error.description
        return 0
    } catch {
        Fuzz.check(false, "GGUFFile threw something other than GGUFError: \(error)")
        return 0
    }
    checkDirectory(file, size: bytes.count)
    checkRoundTrip(file)
    readMetadata(file)
    return 0
}

let scratchCopy = Fuzz.scratchPath("copy.gguf")

/// What the reader accepted, written back with GGUFWriter, reads back to the same metadata, tensors and
/// bytes (serializing that gives the same file again).
func checkRoundTrip(_ file: GGUFFile) {
    func copy(_ g: GGUFFile) -> GGUFWriter {
        var w = GGUFWriter(alignment: g.alignment)
        for key in g.metadataKeys { w.set(key, g[key]!) }
        for t in g.tensors {
            do {
                try w.addTensor(name: t.name, dims: t.dims, type: t.type,
                                data: Array(UnsafeRawBufferPointer(start: g.data(of: t), count: t.byteCount)))
            } catch {
                Fuzz.check(false, "GGUFWriter refused tensor \(t.name) the reader accepted: \(error)")
            }
        }
        return w
    }
    let first = copy(file).serialize()
    Fuzz.check(Fuzz.writeFile(first, to: scratchCopy), "cannot write \(scratchCopy)")
    let again: GGUFFile
    do { again = try GGUFFile(path: scratchCopy) } catch {
        Fuzz.check(false, "the reader refuses what GGUFWriter wrote from an accepted file: \(error)")
        return
    }
    Fuzz.check(again.metadataKeys == file.metadataKeys, "metadata keys differ after a round trip")
    Fuzz.check(again.tensors.map(\.name) == file.tensors.map(\.name), "tensor names differ after a round trip")
    Fuzz.check(again.tensors.map(\.dims) == file.tensors.map(\.dims), "tensor shapes differ after a round trip")
    Fuzz.check(copy(again).serialize() == first, "serializing a round-tripped file gives other bytes")
}

/// The directory of an accepted file is consistent and every tensor lies inside the file.
func checkDirectory(_ file: GGUFFile, size: Int) {
    Fuzz.check(file.version == 2 || file.version == 3, "version \(file.version) accepted")
    Fuzz.check(file.fileSize == size, "fileSize \(file.fileSize) for \(size) bytes")
    Fuzz.check(file.metadataKeys.count == file.metadata.count, "\(file.metadataKeys.count) keys, \(file.metadata.count) values")
    Fuzz.check(file.metadataKeys.allSatisfy { file.metadata[$0] != nil }, "a key without a value")
    Fuzz.check(file.alignment > 0 && file.alignment & (file.alignment - 1) == 0, "alignment \(file.alignment)")
    Fuzz.check(file.dataOffset % file.alignment == 0, "data offset \(file.dataOffset) not aligned to \(file.alignment)")
    Fuzz.check(file.tensorIndex.count == file.tensors.count, "tensor index has \(file.tensorIndex.count) of \(file.tensors.count)")
    var ranges: [Range<Int>] = []
    for tensor in file.tensors {
        let name = tensor.name
        Fuzz.check(file.tensor(name)?.offset == tensor.offset, "tensor \(name) not found by name")
        Fuzz.check((1...GGUFFile.maxDims).contains(tensor.dims.count), "tensor \(name): \(tensor.dims.count) dims")
        var elements = 1
        for d in tensor.dims {
            Fuzz.check(d >= 0, "tensor \(name): negative dimension")
            let (p, o) = elements.multipliedReportingOverflow(by: d)
            Fuzz.check(!o, "tensor \(name): element count overflows")
            elements = p
        }
        Fuzz.check(elements == tensor.elementCount, "tensor \(name): \(tensor.elementCount) elements for dims \(tensor.dims)")
        Fuzz.check(tensor.type.byteCount(elements: elements) == tensor.byteCount, "tensor \(name): byte count \(tensor.byteCount)")
        Fuzz.check(tensor.offset >= 0 && tensor.offset % file.alignment == 0, "tensor \(name): offset \(tensor.offset)")
        let start = file.dataOffset + tensor.offset
        Fuzz.check(start + tensor.byteCount <= size, "tensor \(name): data [\(start), \(start + tensor.byteCount)) outside \(size) bytes")
        _ = tensor.rowLength + tensor.rowCount + tensor.rowBytes
        if tensor.byteCount > 0 {
            let p = file.data(of: tensor)
            let first = p.load(as: UInt8.self), last = p.load(fromByteOffset: tensor.byteCount - 1, as: UInt8.self)
            Fuzz.check(first == bytesAt(file, start) && last == bytesAt(file, start + tensor.byteCount - 1), "tensor \(name): data pointer")
            ranges.append(start..<(start + tensor.byteCount))
        }
    }
    ranges.sort { $0.lowerBound < $1.lowerBound }
    for i in ranges.indices.dropFirst() {
        Fuzz.check(ranges[i].lowerBound >= ranges[i - 1].upperBound, "tensor data overlaps: \(ranges[i - 1]) and \(ranges[i])")
    }
}

func bytesAt(_ file: GGUFFile, _ offset: Int) -> UInt8 { file.base.load(fromByteOffset: offset, as: UInt8.self) }

/// Reads the metadata the way loading a model does.
func readMetadata(_ file: GGUFFile) {
    for key in file.metadataKeys {
        guard let value = file[key] else { continue }
        _ = value.summary()
        _ = (value.int, value.double, value.bool, value.string, value.stringArray?.count, value.intArray?.count, value.floatArray?.count)
    }
    _ = file.architecture
    if let architecture = file.architecture {
        _ = try? ModelConfig(gguf: file, architecture: architecture)
    }
    if let source = file["tokenizer.chat_template"]?.string {
        _ = try? ChatTemplate(source)
    }
    guard let vocabulary = try? LoadedModel.vocabulary(from: file), let tokenizer = try? Tokenizer(vocabulary) else { return }
    let sample = "Hello, world! <|im_start|>user\n  über 123 日本語 🙂\t<s></s>"
    for parseSpecial in [true, false] {
        let ids = tokenizer.encode(sample, addSpecial: true, parseSpecial: parseSpecial)
        Fuzz.check(ids.allSatisfy { $0 >= 0 && Int($0) < tokenizer.vocabularySize }, "encode gave an id outside the vocabulary")
        var stream = StreamingDetokenizer(tokenizer: tokenizer)
        let streamed = ids.map { stream.push($0) }.joined() + stream.flush()
        Fuzz.check(streamed == tokenizer.decode(ids), "streamed text differs from decode")
    }
    let someIds = (0..<Int32(min(tokenizer.vocabularySize, 64))).map { $0 }
    _ = tokenizer.decode(someIds, skipSpecial: true)
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif
import Testing

import ChatTemplate

/// Goldens produced by `Scripts/make-template-goldens.py` with transformers' own renderer.
enum Goldens {
    static let fixturesDirectory: String = {
        var path = #filePath
        while let last = path.last, last != "/" { path.removeLast() }
        return path + "Fixtures/"
    }()

    static func readFile(_ relativePath: String) throws -> String {
        let path = fixturesDirectory + relativePath
        guard let file = fopen(path, "rb") else {
            throw ChatTemplateError(.runtime, "cannot open fixture \(path)")
        }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = fread(&buffer, 1, buffer.count, file)
            if count <= 0 { break }
            bytes.append(contentsOf: buffer[0..<count])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The parsed fixture (parsed once; shared by all tests).
    static let fixture: TemplateObject = {
        do {
            guard case .object(let object) = try TemplateValue.parseJSON(try readFile("template-goldens.json")) else {
                fatalError("golden fixture is not a JSON object")
            }
            return object
        } catch {
            fatalError("cannot load golden fixture: \(error)")
        }
    }()

    /// 2025-01-15T10:30:00Z, the clock the goldens were rendered with.
    static let frozenNow = 1_736_937_000

    static var templateNames: [String] {
        guard case .object(let tokens)? = fixture["template_tokens"] else { return [] }
        return tokens.keys.sorted()
    }

    static func template(_ name: String) throws -> ChatTemplate {
        try ChatTemplate(try readFile("templates/\(name).jinja"), fixedTime: frozenNow)
    }
}

@Suite("Real chat templates against transformers goldens")
struct GoldenTests {
    @Test("every fixture template has goldens")
    func fixtureCoversTemplates() throws {
        let names = Goldens.templateNames
        #expect(names.count >= 15)
        for required in ["smollm2", "qwen2.5", "qwen3", "llama3.1", "llama3.2", "llama4", "deepseek-v3", "deepseek-v3.1",
            "glm-4.5", "gemma3"]
        {
            #expect(names.contains(required), "missing template \(required)")
        }
    }

    @Test("renders exactly like transformers", arguments: Goldens.templateNames)
    func template(_ name: String) throws {
        let template = try Goldens.template(name)
        guard case .array(let cases)? = Goldens.fixture["cases"],
            case .object(let conversations)? = Goldens.fixture["conversations"],
            case .object(let tokens)? = Goldens.fixture["template_tokens"]?[name]
        else {
            Issue.record("malformed fixture")
            return
        }
        let bos = tokens["bos_token"]?.stringValue ?? ""
        let eos = tokens["eos_token"]?.stringValue ?? ""
        var checked = 0
        for entry in cases {
            guard case .object(let testCase) = entry, testCase["template"]?.stringValue == name else { continue }
            let conversationName = testCase["conversation"]!.stringValue!
            guard case .object(let conversation)? = conversations[conversationName],
                case .array(let rawMessages)? = conversation["messages"],
                case .array(let templateMessages)? = conversation["template_messages"],
                case .object(let kwargs)? = conversation["kwargs"],
                case .bool(let addGenerationPrompt)? = testCase["add_generation_prompt"]
            else {
                Issue.record("malformed case for \(conversationName)")
                continue
            }
            let label = "\(name) / \(conversationName) / add_generation_prompt=\(addGenerationPrompt)"
            let tools = conversation["tools"] ?? .null

            // 1. The exact template variables transformers passed to render().
            var context: [String: TemplateValue] = [
                "messages": .array(templateMessages), "tools": tools, "documents": .null,
                "add_generation_prompt": .bool(addGenerationPrompt), "bos_token": .string(bos), "eos_token": .string(eos),
            ]
            for (key, value) in kwargs.entries { context[key] = value }
            // 2. The convenience API starting from the raw messages.
            var extra = kwargs.entries.reduce(into: [String: TemplateValue]()) { $0[$1.key] = $1.value }
            if tools != .null { extra["tools"] = tools }
            #expect(try ChatTemplate.normalizeMessages(rawMessages) == templateMessages, "\(label): normalization")

            if let expected = testCase["expected"]?.stringValue {
                do {
                    let rendered = try template.render(context)
                    #expect(rendered == expected, "\(label)\n--- got ---\n\(rendered)\n--- expected ---\n\(expected)")
                    let convenience = try template.render(
                        messages: rawMessages, addGenerationPrompt: addGenerationPrompt, bosToken: bos, eosToken: eos,
                        extra: extra)
                    #expect(convenience == expected, "\(label): convenience API differs")
                } catch {
                    Issue.record("\(label): unexpected error \(error)")
                }
            } else {
                let expectedMessage = testCase["error"]?.stringValue ?? ""
                let raised = testCase["error_kind"]?.stringValue == "raise_exception"
                do {
                    let rendered = try template.render(context)
                    Issue.record("\(label): expected an error (\(expectedMessage)) but rendered:\n\(rendered)")
                } catch let error as ChatTemplateError {
                    if raised {
                        #expect(error.kind == .raised && error.message == expectedMessage, "\(label): \(error)")
                    } else {
                        #expect(error.kind != .raised, "\(label): \(error)")
                    }
                }
            }
            checked += 1
        }
        #expect(checked >= 20, "only \(checked) cases for \(name)")
    }
}

@Suite("Jinja features against jinja2 goldens")
struct FeatureGoldenTests {
    static var featureNames: [String] {
        guard case .array(let features)? = Goldens.fixture["features"] else { return [] }
        return features.compactMap { $0["name"]?.stringValue }
    }

    static func feature(_ name: String) -> TemplateObject? {
        guard case .array(let features)? = Goldens.fixture["features"] else { return nil }
        return features.first { $0["name"]?.stringValue == name }?.objectValue
    }

    @Test("feature", arguments: featureNames)
    func feature(_ name: String) throws {
        let feature = try #require(Self.feature(name))
        let source = try #require(feature["template"]?.stringValue)
        let context = feature["context"]?.objectValue?.entries.reduce(into: [String: TemplateValue]()) {
            $0[$1.key] = $1.value
        } ?? [:]
        if let expected = feature["expected"]?.stringValue {
            let rendered = try ChatTemplate(source, fixedTime: Goldens.frozenNow).render(context)
            #expect(rendered == expected, "\(name)\n--- got ---\n\(rendered)\n--- expected ---\n\(expected)")
            return
        }
        let expectedMessage = feature["error"]?.stringValue ?? ""
        let phase = feature["phase"]?.stringValue
        let kind = feature["error_kind"]?.stringValue
        let template: ChatTemplate
        do {
            template = try ChatTemplate(source, fixedTime: Goldens.frozenNow)
        } catch let error as ChatTemplateError {
            #expect(phase == "compile", "\(name): parse failed but jinja2 failed at render: \(error)")
            #expect(error.kind == .syntax && error.line != nil, "\(name): \(error)")
            return
        }
        #expect(phase == "render", "\(name): parsed, but jinja2 rejects it at compile time: \(expectedMessage)")
        do {
            let rendered = try template.render(context)
            Issue.record("\(name): expected error '\(expectedMessage)' but rendered \(rendered)")
        } catch let error as ChatTemplateError {
            if kind == "raise_exception" {
                #expect(error.kind == .raised && error.message == expectedMessage, "\(name): \(error)")
            } else {
                #expect(error.message == expectedMessage, "\(name): message differs from jinja2's")
            }
        }
    }
}

@Suite("Randomized templates against jinja2 goldens")
struct FuzzGoldenTests {
    @Test("random expressions, statements and whitespace layouts render like jinja2")
    func randomized() throws {
        guard case .array(let cases)? = Goldens.fixture["fuzz"],
            case .object(let contexts)? = Goldens.fixture["fuzz_contexts"]
        else {
            Issue.record("fixture has no fuzz cases")
            return
        }
        #expect(cases.count > 1000)
        var failures = 0
        for entry in cases {
            let source = try #require(entry["template"]?.stringValue)
            let contextName = try #require(entry["context"]?.stringValue)
            let context = contexts[contextName]?.objectValue?.entries.reduce(into: [String: TemplateValue]()) {
                $0[$1.key] = $1.value
            } ?? [:]
            let expected: String
            if let output = entry["expected"]?.stringValue {
                expected = "rendered: " + output
            } else {
                expected = "error: " + (entry["error"]?.stringValue ?? "")
            }
            let actual: String
            do {
                actual = "rendered: " + (try ChatTemplate(source).render(context))
            } catch let error as ChatTemplateError {
                actual = "error: " + error.message
            }
            if actual != expected {
                failures += 1
                if failures <= 20 {
                    Issue.record("\(source)\n--- got ---\n\(actual)\n--- expected ---\n\(expected)")
                }
            }
        }
        #expect(failures == 0, "\(failures) of \(cases.count) randomized templates differ from jinja2")
    }
}

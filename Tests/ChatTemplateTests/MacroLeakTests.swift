#if os(Linux)
    import Foundation
    import Testing

    import ChatTemplate

    /// A macro is stored in the scope it captures; that cycle used to keep every render's scopes (and the
    /// context in them) alive forever, so a server rendering a template with macros grew with each
    /// request (found by the fuzzing harness's leak checker).
    @Suite("Macro scopes")
    struct MacroLeakTests {
        /// Resident bytes of this process (/proc/self/statm).
        static func residentBytes() -> Int {
            let fields = (try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8))?.split(separator: " ") ?? []
            return (fields.count > 1 ? Int(fields[1]) ?? 0 : 0) * Int(sysconf(Int32(_SC_PAGESIZE)))
        }

        @Test("renders with macros do not keep their scopes")
        func macroScopesAreFreed() throws {
            let template = try ChatTemplate(
                "{% macro show(m) %}[{{ m['role'] }}]{% endmacro %}{% for message in messages %}{{ show(message) }}{% endfor %}{{ big|length }}")
            // A fresh 1 MiB string for each render, held by its root scope.
            func render() throws -> String {
                let big = String(repeating: "x", count: 1 << 20 - 1) + "y"
                return try template.render(messages: [["role": "user", "content": "hi"]], addGenerationPrompt: false,
                                           bosToken: "", eosToken: "", extra: ["big": .string(big)])
            }
            #expect(try render() == "[user]1048576")
            for _ in 0..<5 { _ = try render() }   // warm-up
            let before = Self.residentBytes()
            for _ in 0..<100 { _ = try render() }
            let grown = Self.residentBytes() - before
            // Leaking, 100 renders keep 100 MiB; freed, a few MiB of allocator noise at most.
            #expect(grown < 40 << 20, "resident memory grew by \(grown >> 20) MiB over 100 renders")
        }
    }
#endif

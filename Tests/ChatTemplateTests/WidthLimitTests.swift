import Foundation
import Testing

import ChatTemplate

/// A template from a model file is untrusted: padding widths (center, ljust, rjust, zfill, indent,
/// format's width and precision, tojson's indent), batch fills, slice counts and repetition are bounded,
/// and so are the strings concatenation, join, replace and the rendered output build. Past a bound the
/// render throws a clear template error at once (never a crash or a huge allocation); within them the
/// results are Python's.
@Suite("Width and size limits")
struct WidthLimitTests {
    func render(_ source: String) throws -> String { try ChatTemplate(source).render([:]) }

    /// Renders `source`, expecting a ChatTemplateError whose message contains `message`, within a few
    /// seconds (debug builds).
    func expectRefused(_ source: String, _ message: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let start = Date()
        do {
            let out = try render(source)
            Issue.record("rendered \(out.utf8.count) bytes: \(source)", sourceLocation: sourceLocation)
        } catch let error as ChatTemplateError {
            #expect(error.message.contains(message), "\(source): \(error)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("\(source): not a template error: \(error)", sourceLocation: sourceLocation)
        }
        #expect(Date().timeIntervalSince(start) < 10, "\(source) took too long", sourceLocation: sourceLocation)
    }

    @Test("padding widths past the limit are refused; within it they pad like Python")
    func paddingWidths() throws {
        let huge = 1_000_000_000
        expectRefused("{{ 'x'|center(\(huge)) }}", "center width \(huge) is larger than the limit of 100000")
        for method in ["center", "ljust", "rjust", "zfill"] {
            expectRefused("{{ 'x'.\(method)(\(huge)) }}", "\(method) width \(huge) is larger than the limit")
        }
        expectRefused("{{ 'a\\nb'|indent(\(huge)) }}", "indent width \(huge) is larger than the limit")
        expectRefused("{{ {'a': 1}|tojson(indent=\(huge)) }}", "tojson indent width \(huge) is larger than the limit")
        #expect(try render("{{ 'ab'|center(6) }}|{{ 'ab'.ljust(4, '.') }}|{{ 'ab'.rjust(4) }}|{{ '7'.zfill(3) }}") == "  ab  |ab..|  ab|007")
        #expect(try render("{{ 'a\\nb'|indent(3) }}") == "a\n   b")
        #expect(try render("{{ 'x'|center(100000)|length }}") == "100000")
    }

    @Test("format widths and precisions are bounded")
    func formatWidths() throws {
        expectRefused("{{ '%1000000000d'|format(5) }}", "Too many decimal digits")
        expectRefused("{{ '%.1000000000f'|format(5) }}", "Too many decimal digits")
        expectRefused("{{ '%*d'|format(1000000000, 5) }}", "Too many decimal digits")
        expectRefused("{{ '{:1000000000}'.format(5) }}", "Too many decimal digits")
        expectRefused("{{ '{:>1000000000}'.format('x') }}", "Too many decimal digits")
        #expect(try render("{{ '%5d|%-4s|'|format(42, 'ab') }}{{ '{:>4}'.format('x') }}") == "   42|ab  |   x")
    }

    @Test("repetition, batch fills and slice counts are bounded")
    func repetitionAndCounts() throws {
        expectRefused("{{ 'x' * 1000000000 }}", "repetition result is too large")
        expectRefused("{{ 'ab' * 6000000 }}", "repetition result is too large")
        expectRefused("{{ [1] * 1000000000 }}", "repetition result is too large")
        expectRefused("{{ [1, 2]|batch(1000000000, 0)|list }}", "batch width 1000000000 is larger than the limit")
        expectRefused("{{ [1]|slice(1000000000)|list }}", "slice width 1000000000 is larger than the limit")
        #expect(try render("{{ 'ab' * 3 }}|{{ [1, 2, 3]|batch(2, 0)|list }}|{{ [1, 2, 3]|slice(2)|list }}") == "ababab|[[1, 2], [3, 0]]|[[1, 2], [3]]")
    }

    @Test("strings built from pieces are bounded: indent, join, replace, concatenation, the output")
    func builtStrings() throws {
        expectRefused("{{ ('x\\n' * 100000)|indent('y' * 1000) }}", "indent would make a string of")
        expectRefused("{{ (['a'] * 100000)|join('z' * 1000000) }}", "join would make a string of")
        expectRefused("{{ (['a'] * 100000)|join('z' * 1000000) }}", "more than the limit of 67108864")
        expectRefused("{{ ', '.join(['a'] * 100000) ~ ('z' * 1000000).join(['a'] * 100000) }}", "join would make a string of")
        expectRefused("{{ ('x' * 2000000).replace('', 'yyyyy') }}", "replace would make a string of more than")
        expectRefused("{{ ('x' * 2000000)|replace('x', 'yyyyyy') }}", "replace would make a string of more than")
        expectRefused("{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
                      "concatenation would make a string of")
        expectRefused("{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}",
                      "concatenation would make a string of")
        expectRefused("{% set big = 'x' * 1000000 %}{% for i in range(100) %}{{ big }}{% endfor %}", "the rendered template would make a string of")
        expectRefused("{% for i in range(100) %}" + String(repeating: "x", count: 1_000_000) + "{% endfor %}", "the rendered template would make a string of")
        #expect(try render("{{ ['a', 'b']|join('-') }}|{{ 'abc'.replace('', '.') }}|{{ 'x' ~ 'y' + 'z' }}") == "a-b|.a.b.c.|xyz")
    }
}

#if canImport(Glibc)
    import Glibc
    import Testing

    import ChatTemplate

    /// The nesting limits must keep parsing and rendering inside a small thread stack (macOS gives
    /// secondary threads 512 KiB), even for hostile templates at the limits.
    @Suite("Stack depth")
    struct StackDepthTests {
        final class Work {
            let body: () -> Void
            init(_ body: @escaping () -> Void) { self.body = body }
        }

        /// Runs `body` on a fresh thread with a `stackSize`-byte stack and waits for it.
        static func onSmallStack(_ stackSize: Int, _ body: @escaping () -> Void) {
            var attributes = pthread_attr_t()
            pthread_attr_init(&attributes)
            defer { pthread_attr_destroy(&attributes) }
            pthread_attr_setstacksize(&attributes, stackSize)
            let work = Unmanaged.passRetained(Work(body))
            var thread = pthread_t()
            let created = pthread_create(
                &thread, &attributes,
                { context in
                    let work = Unmanaged<Work>.fromOpaque(context!).takeRetainedValue()
                    work.body()
                    return nil
                }, work.toOpaque())
            precondition(created == 0, "pthread_create failed")
            pthread_join(thread, nil)
        }

        static let worstCases: [String] = {
            let depth = ChatTemplate.maximumNesting - 8
            return [
                "{{ " + String(repeating: "(", count: depth / 5) + "1" + String(repeating: ")", count: depth / 5) + " }}",
                "{{ 1" + String(repeating: " + 1", count: depth) + " }}",
                "{{ x" + String(repeating: "|trim", count: depth / 2) + " }}",
                "{{ " + String(repeating: "[", count: depth / 5) + String(repeating: "]", count: depth / 5) + " }}",
                "{{ x" + String(repeating: "|replace('a', 'b'|trim", count: depth / 6) + String(repeating: ")", count: depth / 6) + " }}",
                "{{ " + String(repeating: "not ", count: depth) + "x }}",
                String(repeating: "{% if true %}", count: depth / 2) + "deep" + String(repeating: "{% endif %}", count: depth / 2),
                String(repeating: "{% for i in [1] %}", count: depth / 2) + "{{ i }}"
                    + String(repeating: "{% endfor %}", count: depth / 2),
                "{% macro r(n) %}" + String(repeating: "{% if true %}", count: 20) + "{% if n > 0 %}{{ r(n - 1) }}{% endif %}"
                    + String(repeating: "{% endif %}", count: 20) + "{% endmacro %}{{ r(1000) }}",
            ]
        }()

        @Test("worst-case nesting parses and renders (or fails cleanly) within 512 KiB")
        func smallStack() {
            nonisolated(unsafe) var outcomes: [String] = []
            Self.onSmallStack(512 * 1024) {
                for source in Self.worstCases {
                    do {
                        let rendered = try ChatTemplate(source).render(["x": " v "])
                        outcomes.append("ok:\(rendered.count)")
                    } catch {
                        outcomes.append("error:\(error)")
                    }
                }
            }
            #expect(outcomes.count == Self.worstCases.count)
            #expect(outcomes.dropLast().allSatisfy { $0.hasPrefix("ok") }, "\(outcomes)")
            #expect(outcomes.last?.contains("recursion") == true, "\(outcomes)")
        }
    }
#endif

// The mix rules against llama-quantize's documented choices on a dense model.
import Testing
import Quantization

@Suite struct MixRulesTests {
    @Test func namesAndAliases() {
        #expect(FileType.named("q4_k_m")?.id == 15)
        #expect(FileType.named("Q4_K")?.name == "Q4_K_M")
        #expect(FileType.named("15")?.name == "Q4_K_M")
        #expect(FileType.named("IQ2_M")?.base == .iq2_s)
        #expect(FileType.named("nope") == nil)
    }

    @Test func fallbackTable() {
        #expect(MixRules.fallback(.q4_K, rowLength: 576) == .q5_0)
        #expect(MixRules.fallback(.q6_K, rowLength: 576) == .q8_0)
        #expect(MixRules.fallback(.q2_K, rowLength: 576) == .q4_0)
        #expect(MixRules.fallback(.iq3_xxs, rowLength: 576) == .iq4_nl)
        #expect(MixRules.fallback(.q4_K, rowLength: 512) == .q4_K)
        #expect(MixRules.fallback(.q4_K, rowLength: 48) == .f16)
    }

    @Test func useMoreBits() {
        // 32 layers: the first and last 4, then every third from layer 6.
        let picked = (0..<32).filter { MixRules.useMoreBits($0, 32) }
        #expect(picked == [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31])
    }

    @Test func tensorTypeParsing() throws {
        let p = try MixOptions.parseTensorType("ATTN_V=Q8_0")
        #expect(p.pattern == "attn_v" && p.type == .q8_0)
        #expect(throws: QuantizeError.self) { try MixOptions.parseTensorType("attn_v") }
        #expect(throws: QuantizeError.self) { try MixOptions.parseTensorType("attn_v=Q9_9") }
    }
}

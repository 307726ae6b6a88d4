// Prometheus metrics (text format at GET /metrics): requests, tokens, queue depth, active sequences,
// KV pages, side-state checkpoints, time-to-first-token and per-step token latency histograms.

import Engine
import Foundation
import Prometheus

final class ServerMetrics: BatchEngineObserver, @unchecked Sendable {
    let registry = PrometheusCollectorRegistry()
    let requests: Counter
    let requestErrors: Counter
    let promptTokens: Counter
    let cachedPromptTokens: Counter
    let generatedTokens: Counter
    let cancelled: Counter
    let active: Gauge
    let queued: Gauge
    let kvPagesUsed: Gauge
    let kvPagesCached: Gauge
    let kvPagesTotal: Gauge
    let timeToFirstToken: ValueHistogram
    let tokenLatency: ValueHistogram
    let stepPromptTokens: Counter
    let stateCheckpoints: Gauge
    let stateCheckpointBytes: Gauge
    let stateRestores: Counter
    let stateReplayed: Counter
    let draftedTokens: Counter
    let acceptedTokens: Counter
    /// Engine totals already added to the counters above (render may run on several threads).
    private var reported = (restores: 0, replayed: 0)
    private let lock = NSLock()

    /// A descriptor whose composed name is `full` (the last "_" part is the unit).
    static func name(_ full: String, help: String) -> MetricNameDescriptor {
        let cut = full.lastIndex(of: "_")!
        return MetricNameDescriptor(metricName: String(full[..<cut]), unitName: String(full[full.index(after: cut)...]), helpText: help)
    }

    init() {
        requests = registry.makeCounter(descriptor: ServerMetrics.name("dwarfstar_requests_total", help: "Generation requests received"))
        requestErrors = registry.makeCounter(descriptor: ServerMetrics.name("dwarfstar_request_errors_total", help: "Requests answered with an error status"))
        promptTokens = registry.makeCounter(descriptor: ServerMetrics.name("dwarfstar_prompt_tokens_total", help: "Prompt tokens of finished requests"))
        cachedPromptTokens = registry.makeCounter(descriptor: ServerMetrics.name("dwarfstar_prompt_tokens_cached_total", help: "Prompt tokens whose KV came from the prefix cache"))
        generatedTokens = registry.makeCounter(descriptor: ServerMetrics.name("dwarfstar_generated_tokens_total", help: "Tokens generated"))
        draftedTokens = registry.makeCounter(descriptor: ServerMetrics.name("dwarfstar_speculative_drafted_total", help: "Tokens drafted by speculative decoding (serve --spec)"))
        acceptedTokens = registry.makeCounter(descriptor: ServerMetrics.name("dwarfstar_speculative_accepted_total", help: "Drafted tokens the model agreed with"))
        cancelled = registry.makeCounter(descriptor: ServerMetrics.name("dwarfstar_requests_cancelled_total", help: "Requests cancelled (client gone)"))
        stepPromptTokens = registry.makeCounter(descriptor: ServerMetrics.name("dwarfstar_prompt_tokens_evaluated_total", help: "Prompt tokens evaluated"))
        active = registry.makeGauge(descriptor: ServerMetrics.name("dwarfstar_requests_active", help: "Sequences in the batch"))
        queued = registry.makeGauge(descriptor: ServerMetrics.name("dwarfstar_queue_depth", help: "Requests waiting for a batch slot"))
        kvPagesUsed = registry.makeGauge(descriptor: ServerMetrics.name("dwarfstar_kv_pages_used", help: "KV pages held by live sequences"))
        kvPagesCached = registry.makeGauge(descriptor: ServerMetrics.name("dwarfstar_kv_pages_cached", help: "KV pages kept only as prefix cache"))
        stateCheckpoints = registry.makeGauge(descriptor: ServerMetrics.name("dwarfstar_state_checkpoints_count", help: "Snapshots held of the per-sequence state (recurrent or compressed) that some architectures keep beside the KV cache"))
        stateCheckpointBytes = registry.makeGauge(descriptor: ServerMetrics.name("dwarfstar_state_checkpoints_bytes", help: "Bytes of those snapshots"))
        stateRestores = registry.makeCounter(descriptor: ServerMetrics.name("dwarfstar_state_checkpoint_restores_total", help: "Sequences whose side state was restored from a snapshot"))
        stateReplayed = registry.makeCounter(descriptor: ServerMetrics.name("dwarfstar_state_replayed_positions_total", help: "Positions evaluated again to rebuild side state"))
        kvPagesTotal = registry.makeGauge(descriptor: ServerMetrics.name("dwarfstar_kv_pages_total", help: "KV pages in the pool"))
        timeToFirstToken = registry.makeValueHistogram(descriptor: ServerMetrics.name("dwarfstar_time_to_first_token_seconds", help: "Seconds from request to first generated token"), buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60])
        tokenLatency = registry.makeValueHistogram(descriptor: ServerMetrics.name("dwarfstar_token_latency_seconds", help: "Seconds of each engine step that decoded tokens (the time between two tokens of a stream)"), buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1])
    }

    func engineStep(decodeTokens: Int, promptTokens: Int, seconds: Double) {
        if decodeTokens > 0 { tokenLatency.record(seconds) }
        if promptTokens > 0 { stepPromptTokens.increment(by: Int64(promptTokens)) }
    }

    func requestFinished(_ f: EngineFinish) {
        promptTokens.increment(by: Int64(f.promptTokens))
        cachedPromptTokens.increment(by: Int64(f.cachedPromptTokens))
        generatedTokens.increment(by: Int64(f.completionTokens))
        draftedTokens.increment(by: Int64(f.draftedTokens))
        acceptedTokens.increment(by: Int64(f.acceptedTokens))
        if let t = f.timeToFirstToken { timeToFirstToken.record(t) }
        if f.stopReason == .cancelled { cancelled.increment() }
    }

    /// Prometheus text with the live gauges refreshed from the engine.
    func render(_ s: BatchEngine.Snapshot) -> String {
        active.set(Double(s.active))
        queued.set(Double(s.queued))
        kvPagesTotal.set(Double(s.kvPagesTotal))
        kvPagesCached.set(Double(s.kvPagesCached))
        kvPagesUsed.set(Double(s.kvPagesTotal - s.kvPagesFree - s.kvPagesCached))
        stateCheckpoints.set(Double(s.stateCheckpoints))
        stateCheckpointBytes.set(Double(s.stateCheckpointBytes))
        lock.lock()
        stateRestores.increment(by: Int64(max(0, s.stateCheckpointRestores - reported.restores)))
        stateReplayed.increment(by: Int64(max(0, s.stateReplayedPositions - reported.replayed)))
        reported = (max(reported.restores, s.stateCheckpointRestores), max(reported.replayed, s.stateReplayedPositions))
        lock.unlock()
        return registry.emitToString()
    }
}

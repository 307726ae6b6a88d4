// --pipeline: under mpirun, the model's layers split across the ranks. Rank 0 runs the command (tokenizer,
// sampler, output); every other rank runs its layers for each chunk rank 0 announces, then exits with it.
// --experts-parallel: every rank runs every layer for each chunk rank 0 announces, and a MoE model's routed
// experts are shared out among them (each rank holds and runs its share; their outputs are exchanged).

import ArgumentParser
import DistributedRuns
import Foundation
import Engine
import Models

struct PipelineOptions: ParsableArguments {
    @Flag(help: "Under mpirun: split the model's layers across the ranks (pipeline parallel). Rank 0 runs the command and prints; each other rank runs its layers and keeps their KV cache.")
    var pipeline = false

    @Flag(name: .customLong("experts-parallel"), help: "Under mpirun: share a MoE model's routed experts out across the ranks (by popularity), each holding its share in RAM; every rank runs the other layers, and the experts' outputs are exchanged instead of streaming cold experts from disk.")
    var expertsParallel = false

    @Option(name: .customLong("layers"), help: ArgumentHelp("With --pipeline: this rank's layers A:B (layers A ..< B; give each rank its own with mpirun's `-np 1 dwarfstar … --layers 0:12 : -np 1 dwarfstar … --layers 12:24`). Default: split by the bytes each layer reads per token.", valueName: "A:B"))
    var layers: String?

    @Option(name: .customLong("micro-batch"), help: "With --pipeline: prompt rows rank 0 sends on at a time, so the ranks work at the same time (at most --batch).")
    var microBatch: Int = 64

    /// Test hooks: the ranks after the first stop answering, or end, after this many steps.
    @Option(name: .customLong("stall-after-steps"), help: .hidden)
    var stallAfterSteps: Int?
    @Option(name: .customLong("exit-after-steps"), help: .hidden)
    var exitAfterSteps: Int?

    @Option(name: .customLong("rank-timeout"), help: "With --pipeline or --experts-parallel: seconds to wait for another rank's data before the job is ended as failed (a server answers 503 from then on).")
    var rankTimeout: Double = 120

    func validate() throws {
        if layers != nil && !pipeline { throw ValidationError("--layers needs --pipeline") }
        if let layers { _ = try PipelineSplit.parse(layers) }
        if pipeline && expertsParallel { throw ValidationError("--pipeline and --experts-parallel are two ways to split a model: give one") }
        if expertsParallel && !MPIWorld.launched {
            throw ValidationError("--experts-parallel runs under an MPI launcher: mpirun -np 2 dwarfstar … --experts-parallel")
        }
        if !(rankTimeout > 0) { throw ValidationError("--rank-timeout must be positive") }
        if microBatch < 1 { throw ValidationError("--micro-batch must be at least 1") }
        if pipeline && !MPIWorld.launched {
            throw ValidationError("--pipeline runs under an MPI launcher: mpirun -np 2 dwarfstar … --pipeline")
        }
    }

    /// Without --pipeline: body(). With it: the ranks agree on the stages; rank 0 runs body with its state's
    /// pipeline set and then tells the others to stop; the others serve their layers until then and exit
    /// here. An error on any rank ends every rank of the job with its line.
    func run(model: TransformerModel, state: InferenceState, _ body: () throws -> Void) throws {
        try run(model: model, followerState: { state }) { link in
            state.pipeline = link
            try body()
        }
    }

    /// The same for a command that makes its states as it goes (bench): body(link) on rank 0 (nil without
    /// --pipeline) sets the link on each state it makes; the other ranks serve through `followerState()`,
    /// which holds what rank 0's largest state holds.
    func run(model: TransformerModel, followerState: () -> InferenceState, _ body: (PipelineLink?) throws -> Void) throws {
        guard pipeline || expertsParallel else { return try body(nil) }
        let world = try join()
        do {
            let link: MPIPipelineLink
            if expertsParallel {
                if model.expertShard == nil { try shareExperts(model, statistics: []) }
                link = MPIPipelineLink(world: world, replicating: 0..<model.config.layerCount)
            } else {
                if model.pipelineStages == nil { try agreeStages(model) }
                link = MPIPipelineLink(world: world, stages: model.pipelineStages!.all, microBatch: microBatch)
            }
            guard world.rank == 0 else {
                try PipelineFollower.serve(model, state: followerState(), link: link, stallAfter: stallAfterSteps, exitAfter: exitAfterSteps)
                report(model, link)
                world.finalize()
                throw ExitCode.success
            }
            if expertsParallel {
                printErr("experts parallel: \(world.size) ranks, each running every layer and its share of the routed experts")
            } else {
                let stages = link.stages.enumerated().map { "rank \($0): \($1.lowerBound)..<\($1.upperBound)" }.joined(separator: ", ")
                printErr("pipeline: \(world.size) ranks, layers \(stages); prompts in micro-batches of \(microBatch)")
            }
            try body(link)
            // A server keeps answering (503) after a link failed; the job then can only be ended.
            if world.broken { world.abort("the link to the other ranks failed earlier; ending every rank") }
            try link.finish()
            report(model, link)
            world.finalize()
        } catch let exit as ExitCode {
            throw exit
        } catch {
            world.abort("\(error)")
        }
    }

    private func join() throws -> MPIWorld {
        do { return try MPIWorld.join(timeout: rankTimeout) } catch { throw ValidationError("\(error)") }
    }

    /// Before the model's memory is placed: joins the job and agrees on the split, so that a --ram-budget
    /// and the read-in count only what this rank runs. --pipeline: the stages (the model gets them);
    /// --experts-parallel: which rank runs which experts (rank 0's popularity `statistics` decide; the model
    /// gets this rank's share). An error ends every rank.
    func prepare(_ model: TransformerModel, statistics: [(layer: Int, expert: Int, count: Int)]) throws {
        guard pipeline || expertsParallel else { return }
        let world = try join()
        do {
            if expertsParallel { try shareExperts(model, statistics: statistics) } else { try agreeStages(model) }
        } catch { world.abort("\(error)") }
    }

    private func agreeStages(_ model: TransformerModel) throws {
        let world = try join()
        let stages = try PipelineSetup.agree(world, model: model, given: try layers.map(PipelineSplit.parse))
        model.pipelineStages = PipelineStages(all: stages, rank: world.rank)
    }

    private func shareExperts(_ model: TransformerModel, statistics: [(layer: Int, expert: Int, count: Int)]) throws {
        let shard = try ExpertParallelSetup.agree(try join(), model: model, statistics: statistics)
        model.expertShard = shard
        let held = model.heldExpertBytes
        printErr(String(format: "rank %d: runs %d routed experts (%.1f MiB)", shard.rank, held.count, Double(held.bytes) / 1048576))
    }

    /// Each rank's line at the end of an expert-parallel run: its peak memory and what it sent.
    private func report(_ model: TransformerModel, _ link: MPIPipelineLink) {
        guard let shard = model.expertShard as? MPIExpertShard else { return }
        let rows = max(1, link.rowsRun), peak = LoadedModel.peakResidentBytes() ?? 0
        printErr(String(format: "rank %d: peak RSS %.0f MiB; sent %.2f MiB of expert outputs for %d rows (%.1f KiB a row) in %d exchanges, %.2f s in them",
                        shard.rank, Double(peak) / 1048576, Double(shard.bytesSent) / 1048576, link.rowsRun,
                        Double(shard.bytesSent) / 1024 / Double(rows), shard.exchanges, shard.exchangeSeconds))
    }
}

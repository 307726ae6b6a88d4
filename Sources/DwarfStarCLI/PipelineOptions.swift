// --pipeline: under mpirun, the model's layers split across the ranks. Rank 0 runs the command (tokenizer,
// sampler, output); every other rank runs its layers for each chunk rank 0 announces, then exits with it.

import ArgumentParser
import DistributedRuns
import Foundation
import Models

struct PipelineOptions: ParsableArguments {
    @Flag(help: "Under mpirun: split the model's layers across the ranks (pipeline parallel). Rank 0 runs the command and prints; each other rank runs its layers and keeps their KV cache.")
    var pipeline = false

    @Option(name: .customLong("layers"), help: ArgumentHelp("With --pipeline: this rank's layers A:B (layers A ..< B; give each rank its own with mpirun's `-np 1 dwarfstar … --layers 0:12 : -np 1 dwarfstar … --layers 12:24`). Default: split by the bytes each layer reads per token.", valueName: "A:B"))
    var layers: String?

    @Option(name: .customLong("micro-batch"), help: "With --pipeline: prompt rows rank 0 sends on at a time, so the ranks work at the same time (at most --batch).")
    var microBatch: Int = 64

    @Option(name: .customLong("rank-timeout"), help: "With --pipeline: seconds to wait for another rank's data before the job is ended as failed.")
    var rankTimeout: Double = 120

    func validate() throws {
        if layers != nil && !pipeline { throw ValidationError("--layers needs --pipeline") }
        if let layers { _ = try PipelineSplit.parse(layers) }
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
        guard pipeline else { return try body(nil) }
        let world: MPIWorld
        do { world = try MPIWorld.join(timeout: rankTimeout) } catch { throw ValidationError("\(error)") }
        do {
            let link = try PipelineSetup.agree(world, model: model, given: try layers.map(PipelineSplit.parse))
            link.microBatch = microBatch
            guard world.rank == 0 else {
                try PipelineFollower.serve(model, state: followerState(), link: link)
                world.finalize()
                throw ExitCode.success
            }
            let stages = link.stages.enumerated().map { "rank \($0): \($1.lowerBound)..<\($1.upperBound)" }.joined(separator: ", ")
            printErr("pipeline: \(world.size) ranks, layers \(stages); prompts in micro-batches of \(microBatch)")
            try body(link)
            try link.finish()
            world.finalize()
        } catch let exit as ExitCode {
            throw exit
        } catch {
            world.abort("\(error)")
        }
    }
}

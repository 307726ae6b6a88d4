// Drafting with a smaller model of the same vocabulary (`--draft-model`): the draft model keeps its own
// KV sequence of the conversation (its session shares the target's worker threads; the two never run at
// once), catches up on the tokens the target emitted since the last draft (reusing the longest common
// prefix, so a rejected draft costs a rollback, not a re-prefill), then decodes the draft one token at a
// time. Greedy targets get the draft model's argmax; sampling targets get tokens drawn from the draft
// model's own distribution q, which the speculative-sampling rule needs beside each token.

import Foundation
import Models
import Sampling
import Tokenizers

final class DraftModelDrafter: Drafter {
    let session: Session
    let sampler: Sampler
    /// The target's vocabulary size: a drafted id past it ends the draft (vocabularies may differ by
    /// padding).
    let targetVocabulary: Int

    init(session: Session, sampler parameters: SamplerParameters, targetVocabulary: Int) {
        self.session = session
        sampler = Sampler.drafting(parameters)
        self.targetVocabulary = targetVocabulary
    }

    /// Why `draft` cannot draft for `target` (nil: it can): the vocabularies must spell every shared id
    /// alike, and the draft model must roll back by truncating its KV (no side state).
    static func compatibilityProblem(target: LoadedModel, draft: LoadedModel) -> String? {
        if let problem = draft.tokenizer.compatibilityProblem(with: target.tokenizer) {
            return "the draft model's vocabulary does not match the model's: \(problem)"
        }
        if draft.model.body.keepsSideState {
            return "the draft model (\(draft.model.config.architecture)) keeps recurrent or compressed state beside its KV cache; "
                + "drafts need one that rolls back by truncating its KV"
        }
        return nil
    }

    func draft(after history: [Int32], limit: Int) throws -> Draft {
        let vocabulary = session.model.vocabularySize
        guard limit > 0, history.count + limit <= session.contextLength,
              !history.contains(where: { Int($0) >= vocabulary }) else { return Draft() }
        var draft = Draft(for: sampler)
        var logits = try session.evaluate(history).logits
        var seen = history
        while draft.tokens.count < limit {
            let (token, q) = Draft.choose(after: logits, sampler: sampler, history: seen)
            guard Int(token) < targetVocabulary else { break }
            draft.append(token, drawnFrom: q)
            seen.append(token)
            guard draft.tokens.count < limit else { break }
            logits = try session.model.forward([token], startPosition: session.state.cache.count, state: session.state, logits: .last)
        }
        return draft
    }
}

extension Session {
    /// A drafter over `options.draftModel`, in a draft session kept for the next generate call.
    func draftModelDrafter(_ options: SpeculationOptions, sampler: SamplerParameters) throws -> DraftModelDrafter {
        guard let draftModel = options.draftModel else { throw SpeculationError.noDraftModel }
        if let problem = DraftModelDrafter.compatibilityProblem(target: loaded, draft: draftModel) {
            throw SpeculationError.incompatibleDraftModel(problem)
        }
        if draftSession?.loaded !== draftModel {
            draftSession = Session(draftModel, contextLength: contextLength, threads: state.pool.threads, batch: state.maxBatch,
                                   workers: state.pool)
        }
        return DraftModelDrafter(session: draftSession!, sampler: sampler, targetVocabulary: model.vocabularySize)
    }
}

extension SpeculationOptions {
    /// Why these options cannot speculate for `target` (nil: they can).
    public func problem(for target: LoadedModel) -> String? {
        if mode == .mtp {
            do { return try target.model.nextNHead() == nil ? SpeculationError.noNextNLayer(target.name).description : nil } catch {
                return "\(error)"
            }
        }
        guard mode == .draft else { return nil }
        guard let draftModel else { return SpeculationError.noDraftModel.description }
        return DraftModelDrafter.compatibilityProblem(target: target, draft: draftModel)
    }
}

public enum SpeculationError: Error, CustomStringConvertible {
    case noDraftModel
    case incompatibleDraftModel(String)
    case noNextNLayer(String)
    public var description: String {
        switch self {
        case .noNextNLayer(let name): return "\(name) has no MTP / next-n layer (nextn_predict_layers); use --spec ngram or --draft-model"
        case .noDraftModel: return "--spec draft needs --draft-model FILE"
        case .incompatibleDraftModel(let why): return why
        }
    }
}

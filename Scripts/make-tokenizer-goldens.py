#!/usr/bin/env python3
"""Build the tokenizer test corpus and the reference token ids for DwarfStar's `Tokenizers` tests.

Two steps, both deterministic:

  make-tokenizer-goldens.py corpus    # (re)build Fixtures/corpus.txt from texts on a Debian 12 machine
  make-tokenizer-goldens.py goldens   # reference ids for Fixtures/corpus.txt (needs the two real GGUFs)
  make-tokenizer-goldens.py all

Corpus (about 1.2 MB of UTF-8): the first part of Pride and Prejudice (shared/data, as shipped in
Debian's r-cran-janeaustenr), translated program messages from the Debian packages' gettext catalogues
under /usr/share/locale (coreutils, git, glib, gtk, libc, apt, ... in German, French, Spanish, Russian,
Chinese, Japanese, Korean, Arabic, Hindi, Greek and a little Thai, Hebrew, Vietnamese, Turkish,
Ukrainian, Polish), Python's CJK codec test texts, Python and C source (indentation, tabs), tab-separated
number tables (zone1970.tab, /etc/services), emoji (ZWJ sequences, flags, skin tones, keycaps) with
their Unicode names, and a block of whitespace runs. The sources and their sha256 go to
Fixtures/corpus-sources.json. The corpus is committed, so the goldens step only needs it.

Units: the corpus is cut into units right after a "\n" that is followed by a character other than
space, tab, "\n" or "\r" (so a unit is one line plus any indented continuation lines and blank lines
after it). Each unit is encoded on its own, so a failure points at one unit. The Swift tests cut the
same way.

References (goldens step):
  * SmolLM2-135M-Instruct (byte-level BPE, pre "smollm"): the Hugging Face tokenizer rebuilt from the GGUF
    by transformers' GGUF converter (what shared/tools/make_tiny_models.py `extract_tokenizer` gets from
    AutoTokenizer.from_pretrained(..., gguf_file=); called directly because transformers' GGUF file reader
    needs torch), with SmolLM2's own pre-tokenizer put back (Digits(individual) + ByteLevel): the rebuilt
    one loses the Digits step (291 corpus units differ without the fix).
  * Gemma 3 270M (SentencePiece BPE, byte fallback): the `sentencepiece` library itself, on a model proto
    rebuilt from the GGUF (pieces, scores, types; user-defined whitespace pieces spelled with U+2581 again,
    as in Gemma's tokenizer.model; identity normaliser, no dummy prefix, whitespace kept). transformers'
    own GGUF conversion (merges re-derived from the vocabulary) is compared and the disagreements counted
    in Fixtures/goldens-summary.json; it is not the reference: it drops Gemma's user-defined whitespace
    pieces ("  " ... 31 spaces) from the added tokens and lets BPE merges split long space runs (35 spaces
    → 16 + 19), where SentencePiece and llama.cpp take the longest piece first (31 + 4). 33 units differ,
    all of them runs of 32 or more spaces; everything else agrees.
  * Pre-tokenizer splits for gpt2 / smollm / llama3 / qwen2 / deepseek-v3 from `tokenizers`' own Split
    pre-tokenizers (Oniguruma regexes), for every 4th unit, as "count:fnv1a32(lengths)" per unit.

Files written to Tests/TokenizersTests/Fixtures/: corpus.txt, corpus-sources.json, smollm2.ids,
gemma3.ids (one line of space-separated ids per unit, BOS included when the model's flags add it),
special-cases.json, pretokenizer-splits.json, goldens-summary.json.

Models: $DWARFSTAR_MODELS or ~/.dwarfstar/models: smollm2-135m-instruct-q4_1.gguf, gemma-3-270m-q4_k_m.gguf.
Python: gguf, tokenizers, transformers, sentencepiece, protobuf (e.g. the DwarfStar reference venv).
"""

import hashlib
import json
import os
import struct
import sys
import tempfile
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "Tests" / "TokenizersTests" / "Fixtures"
MODELS = Path(os.environ.get("DWARFSTAR_MODELS", Path.home() / ".dwarfstar" / "models"))
SMOLLM2_GGUF = MODELS / "smollm2-135m-instruct-q4_1.gguf"
GEMMA3_GGUF = MODELS / "gemma-3-270m-q4_k_m.gguf"
PRIDE = Path(os.environ.get("PRIDE_AND_PREJUDICE", ROOT.parent.parent / "shared" / "data" / "pride-and-prejudice.txt"))
if not PRIDE.is_file():
    PRIDE = Path("/work/shared/data/pride-and-prejudice.txt")

# ---------------------------------------------------------------------------------------------
# corpus


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_mo(path: Path) -> list[str]:
    """msgstr texts of a GNU .mo catalogue in file order (first plural form), header skipped."""
    data = path.read_bytes()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic == 0x950412DE else ">"
    _, count, orig_off, trans_off = struct.unpack(endian + "4I", data[4:20])
    out = []
    for i in range(count):
        olen, ooff = struct.unpack(endian + "2I", data[orig_off + 8 * i: orig_off + 8 * i + 8])
        tlen, toff = struct.unpack(endian + "2I", data[trans_off + 8 * i: trans_off + 8 * i + 8])
        if olen == 0:
            continue  # header entry
        text = data[toff: toff + tlen].split(b"\0")[0].decode("utf-8", errors="strict")
        if text:
            out.append(text)
    return out


MO_DOMAINS = ["coreutils", "git", "glib20", "gtk20", "libc", "bash", "grep", "apt", "dpkg", "findutils",
              "diffutils", "gettext-tools", "PackageKit", "appstream", "xkeyboard-config", "iso_639-3",
              "iso_3166-1", "Linux-PAM", "at-spi2-core", "gdk-pixbuf", "shared-mime-info",
              "software-properties", "xdg-user-dirs", "gtk20-properties", "gsettings-desktop-schemas"]
LANGUAGE_BUDGET = {"de": 80_000, "fr": 80_000, "es": 80_000, "ru": 80_000, "zh_CN": 80_000, "ja": 80_000,
                   "ko": 80_000, "ar": 70_000, "hi": 70_000, "el": 70_000,
                   "th": 10_000, "he": 10_000, "vi": 10_000, "tr": 10_000, "uk": 10_000, "pl": 10_000}
PER_DOMAIN_CAP = 16_000


def messages_for(lang: str, budget: int, sources: list) -> str:
    seen, parts, total = set(), [], 0
    for domain in MO_DOMAINS:
        path = Path("/usr/share/locale") / lang / "LC_MESSAGES" / f"{domain}.mo"
        if not path.is_file():
            continue
        taken = 0
        for text in read_mo(path):
            if text in seen or "\x00" in text or "\r" in text:
                continue
            seen.add(text)
            if not text.endswith("\n"):
                text += "\n"
            size = len(text.encode())
            if taken + size > PER_DOMAIN_CAP or total + size > budget:
                break
            parts.append(text)
            taken += size
            total += size
        sources.append({"path": str(path), "sha256": sha256(path), "bytes_taken": taken})
        if total >= budget - 200:
            break
    return "".join(parts)


def pride_excerpt(limit: int, sources: list) -> str:
    text = PRIDE.read_text(encoding="utf-8")
    cut = text.rfind("\n\n", 0, limit) + 2
    sources.append({"path": "shared/data/pride-and-prejudice.txt", "sha256": sha256(PRIDE), "bytes_taken": cut})
    return text[:cut]


def file_excerpt(path: Path, limit: int, sources: list) -> str:
    text = path.read_text(encoding="utf-8")
    if len(text.encode()) > limit:
        text = text[: text.rfind("\n", 0, limit) + 1]
    if not text.endswith("\n"):
        text += "\n"
    sources.append({"path": str(path), "sha256": sha256(path), "bytes_taken": len(text.encode())})
    return text


def emoji_block() -> str:
    lines = []
    ranges = [(0x1F600, 0x1F64F), (0x1F300, 0x1F3FF, 3), (0x1F680, 0x1F6C5), (0x1F900, 0x1F9FF, 2),
              (0x2600, 0x26FF, 4), (0x2700, 0x27BF, 4)]
    for r in ranges:
        lo, hi = r[0], r[1]
        step = r[2] if len(r) > 2 else 1
        for cp in range(lo, hi + 1, step):
            try:
                name = unicodedata.name(chr(cp))
            except ValueError:
                continue
            lines.append(f"{chr(cp)} {name.lower()}: “{chr(cp)}{chr(cp)}” U+{cp:04X}\n")
    zwj = ["👨‍👩‍👧‍👦", "👩‍💻", "🧑🏽‍🚀", "🏳️‍🌈", "👁️‍🗨️", "❤️‍🔥", "🐻‍❄️", "👨🏿‍🦰", "🧔‍♀️"]
    flags = ["🇩🇪", "🇫🇷", "🇪🇸", "🇷🇺", "🇨🇳", "🇯🇵", "🇰🇷", "🇸🇦", "🇮🇳", "🇬🇷", "🇺🇸", "🇬🇧", "🏴󠁧󠁢󠁳󠁣󠁴󠁿"]
    tones = [chr(0x1F44D) + chr(t) for t in range(0x1F3FB, 0x1F400)] + [chr(0x270B) + chr(0x1F3FD)]
    keycaps = [f"{d}\ufe0f\u20e3" for d in "0123456789#*"]
    for group, items in (("zwj", zwj), ("flags", flags), ("skin tones", tones), ("keycaps", keycaps)):
        lines.append(f"{group}: " + " ".join(items) + " | " + "".join(items) + "\n")
    lines.append("Mixed: Ich liebe 🍕 und ☕! J'adore les 🥐… ¡Me encanta el 🌮! Я люблю 🍣. 我爱🍜。私は🍙が好き。나는 🍚를 좋아해. "
                 "أحب 🍉. मुझे 🥭 पसंद है। Μου αρέσει το 🫒.\n")
    return "".join(lines)


def whitespace_block() -> str:
    lines = []
    for n in list(range(1, 41)) + [63, 64, 65, 100]:
        lines.append(f"spaces {n}:" + " " * n + "|end\n")
        lines.append(" " * n + f"leading {n}\n")
        lines.append(f"trailing {n}" + " " * n + "\n")
    for n in list(range(1, 34)) + [40]:
        lines.append(f"tabs {n}:" + "\t" * n + "|end\n")
        lines.append("\t" * n + f"indented by {n} tabs\n")
    for n in range(1, 36):
        lines.append(f"newlines {n}:" + "\n" * n)
    for mix in [" \t", "\t ", " \t \t ", "  \t\t  ", "\t\n\t", " \n ", "\u00a0", "\u00a0\u00a0 ", "\u3000", "\u2003\u2009",
                " \u200b ", "\u2028", "\u0085", "\x0b\x0c", "\r\n", "\r\n\r\n", "\r"]:
        lines.append(f"mix[{mix!r}]:a{mix}b{mix}{mix}c {mix}\n")
    lines.append("end of whitespace block" + " " * 40 + "\n" + "\n" * 40)
    lines.append("numbers: 0 1 12 123 1234 12345 123456 1234567890 3.14159 -42 +7 1,000,000 1.000.000,50 "
                 "१२३४ ١٢٣٤ ۱۲۳۴ 一二三 ½ ¾ ² ³ Ⅻ ⑩ 2024-06-01T12:34:56Z 0x1F600 1e-9 255.255.255.0\n")
    lines.append("contractions: it's I'm you're we've they'll he'd IT'S I'M YOU'RE WE'VE THEY'LL HE'D 's 't 'x '' ' ''s\n")
    lines.append("combining: e\u0301 a\u0308 n\u0303 o\u0302\u0323 \u1100\u1161\u11a8 \u0915\u094d\u0937 \u05e9\u05c1 "
                 "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a\u032f\u031e\u0320\u034d\n")
    return "".join(lines)


def build_corpus() -> None:
    sources: list = []
    parts = [pride_excerpt(220_000, sources)]
    for lang, budget in LANGUAGE_BUDGET.items():
        parts.append(messages_for(lang, budget, sources))
    cjk = Path(sys.base_prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "test" / "cjkencodings"
    for name in ["gb2312-utf8.txt", "big5-utf8.txt", "euc_jp-utf8.txt", "euc_kr-utf8.txt"]:
        if (cjk / name).is_file():
            parts.append(file_excerpt(cjk / name, 20_000, sources))
    pylib = Path(sys.base_prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    for name in ["textwrap.py", "json/encoder.py", "heapq.py"]:
        parts.append(file_excerpt(pylib / name, 20_000, sources))
    for name in ["/usr/include/linux/a.out.h", "/usr/include/linux/acct.h", "/usr/include/linux/tcp.h"]:
        if Path(name).is_file():
            parts.append(file_excerpt(Path(name), 12_000, sources))
    for name in ["/usr/share/zoneinfo/zone1970.tab", "/etc/services"]:
        parts.append(file_excerpt(Path(name), 14_000, sources))
    parts.append(emoji_block())
    parts.append(whitespace_block())
    text = "".join(parts)
    FIXTURES.mkdir(parents=True, exist_ok=True)
    (FIXTURES / "corpus.txt").write_bytes(text.encode("utf-8"))
    (FIXTURES / "corpus-sources.json").write_text(json.dumps(
        {"python": sys.version.split()[0], "bytes": len(text.encode()), "units": len(split_units(text)),
         "sources": sources}, indent=1, ensure_ascii=False) + "\n")
    print(f"corpus.txt: {len(text.encode())} bytes, {len(split_units(text))} units")


def split_units(text: str) -> list[str]:
    """Cut after every "\\n" whose next character is not space, tab, "\\n" or "\\r"."""
    units, start = [], 0
    for i in range(1, len(text)):
        if text[i - 1] == "\n" and text[i] not in " \t\n\r":
            units.append(text[start:i])
            start = i
    if start < len(text):
        units.append(text[start:])
    return units

# ---------------------------------------------------------------------------------------------
# references


def gguf_vocab(path: Path) -> dict:
    import gguf
    reader = gguf.GGUFReader(str(path))
    f = reader.fields

    def strings(key):
        field = f[key]
        return [bytes(field.parts[i]).decode("utf-8") for i in field.data]

    def scalars(key):
        field = f[key]
        return [field.parts[i][0].item() for i in field.data]

    out = {"tokens": strings("tokenizer.ggml.tokens"), "types": scalars("tokenizer.ggml.token_type")}
    if "tokenizer.ggml.scores" in f:
        out["scores"] = scalars("tokenizer.ggml.scores")
    for key in ["bos_token_id", "eos_token_id", "unknown_token_id", "padding_token_id", "add_bos_token", "add_eos_token"]:
        if f"tokenizer.ggml.{key}" in f:
            out[key] = f[f"tokenizer.ggml.{key}"].contents()
    return out


def transformers_gguf_tokenizer(path: Path):
    """The `tokenizers` backend transformers builds from a GGUF (AutoTokenizer.from_pretrained(..., gguf_file=)).

    transformers' own GGUF reader imports torch; the tokenizer part does not need it, so the metadata is read
    with `gguf` and handed to the same converter (`convert_gguf_tokenizer`) under the same key names.
    """
    import gguf
    from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_TOKENIZER_MAPPING, convert_gguf_tokenizer
    reader = gguf.GGUFReader(str(path))
    metadata = {key: field.contents() for key, field in reader.fields.items()
                if key.startswith("tokenizer.") or key == "general.architecture"}
    renames = GGUF_TOKENIZER_MAPPING["tokenizer"]
    tokenizer_dict = {name: metadata[f"tokenizer.{key}"] for key, name in renames.items() if f"tokenizer.{key}" in metadata}
    backend, _ = convert_gguf_tokenizer(metadata["general.architecture"], tokenizer_dict)
    return backend


def smollm2_tokenizer():
    """HF tokenizer rebuilt from the GGUF (as make_tiny_models.extract_tokenizer), SmolLM2 pre-tokenizer restored."""
    from tokenizers import Tokenizer
    converted = transformers_gguf_tokenizer(SMOLLM2_GGUF)
    spec = json.loads(converted.to_str())
    lost_digits = "Digits" not in json.dumps(spec["pre_tokenizer"])
    spec["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]}
    spec["post_processor"] = None  # BOS/EOS are added by this script from the GGUF flags
    return Tokenizer.from_str(json.dumps(spec)), converted, lost_digits


def gemma3_sentencepiece(vocab: dict, workdir: Path):
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb
    proto = pb.ModelProto()
    unk = vocab.get("unknown_token_id", 3)
    for i, (text, score, kind) in enumerate(zip(vocab["tokens"], vocab["scores"], vocab["types"])):
        piece = proto.pieces.add()
        if kind == 4 and text and not text.strip(" "):
            text = "\u2581" * len(text)  # llama.cpp's converter spelled Gemma's "▁▁" pieces with spaces
        piece.piece = text
        piece.score = score
        piece.type = 2 if i == unk else kind  # sentencepiece wants the unk piece typed UNKNOWN
    proto.trainer_spec.model_type = pb.TrainerSpec.BPE
    proto.trainer_spec.vocab_size = len(vocab["tokens"])
    proto.trainer_spec.byte_fallback = True
    proto.trainer_spec.unk_id = unk
    proto.trainer_spec.bos_id = vocab["bos_token_id"]
    proto.trainer_spec.eos_id = vocab["eos_token_id"]
    proto.trainer_spec.pad_id = vocab.get("padding_token_id", 0)
    proto.trainer_spec.unk_piece = vocab["tokens"][unk]
    proto.trainer_spec.bos_piece = vocab["tokens"][vocab["bos_token_id"]]
    proto.trainer_spec.eos_piece = vocab["tokens"][vocab["eos_token_id"]]
    proto.trainer_spec.pad_piece = vocab["tokens"][vocab.get("padding_token_id", 0)]
    proto.normalizer_spec.name = "identity"
    proto.normalizer_spec.add_dummy_prefix = False
    proto.normalizer_spec.remove_extra_whitespaces = False
    proto.normalizer_spec.escape_whitespaces = True
    path = workdir / "gemma3.model"
    path.write_bytes(proto.SerializeToString())
    return spm.SentencePieceProcessor(model_file=str(path))


def partition_control(text: str, controls: dict[str, int]) -> list:
    """Split text at literal control tokens, longest first (llama.cpp's tokenizer_st_partition)."""
    parts = [text]
    for token in sorted(controls, key=lambda t: (-len(t.encode()), controls[t])):
        out = []
        for part in parts:
            if not isinstance(part, str):
                out.append(part)
                continue
            pieces = part.split(token)
            for k, piece in enumerate(pieces):
                if k:
                    out.append(controls[token])
                if piece:
                    out.append(piece)
        parts = out
    return parts


GPT2_SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")
DEEPSEEK3_SPLITS = [r"\p{N}{1,3}", r"[一-龥぀-ゟ゠-ヿ]+",
                    r"[!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+"
                    r"| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"]


def fnv1a32(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def pretokenizer_goldens(units: list[str]) -> dict:
    from tokenizers import Regex, pre_tokenizers as pt
    splits = {
        "gpt2": pt.Sequence([pt.Split(Regex(GPT2_SPLIT), "isolated")]),
        "smollm": pt.Sequence([pt.Digits(individual_digits=True), pt.Split(Regex(GPT2_SPLIT), "isolated")]),
        "llama3": pt.Sequence([pt.Split(Regex(LLAMA3_SPLIT), "isolated")]),
        "qwen2": pt.Sequence([pt.Split(Regex(QWEN2_SPLIT), "isolated")]),
        "deepseek-v3": pt.Sequence([pt.Split(Regex(r), "isolated") for r in DEEPSEEK3_SPLITS]),
    }
    stride = 4
    out = {"stride": stride, "format": "per unit k*stride: '<piece count>:<fnv1a32 hex of the piece lengths in "
                                       "Unicode scalars joined by commas>'", "splits": {}}
    for name, pre in splits.items():
        rows = []
        for unit in units[::stride]:
            pieces = [p for p, _ in pre.pre_tokenize_str(unit)]
            assert "".join(pieces) == unit
            lengths = ",".join(str(len(p)) for p in pieces)
            rows.append(f"{len(pieces)}:{fnv1a32(lengths.encode()):08x}")
        out["splits"][name] = rows
    return out


SMOLLM2_SPECIAL_TEXTS = [
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\nWhat is 2+2? Answer in German, bitte. Café 🙂<|im_end|>\n<|im_start|>assistant\n",
    "<|im_end|><|im_start|><|endoftext|>",
    "text before<|endoftext|>text after <|im_start|> spaced <|im_end|>\n\n",
    "<|im_start|>user\n<repo_name>dwarfstar<file_sep>main.swift\nlet x = 42<|im_end|>",
    "almost special: <|im_start| <im_end|> <|IM_END|> <|im_end",
]
GEMMA3_SPECIAL_TEXTS = [
    "<start_of_turn>user\nWhy is the sky blue? Answer briefly.<end_of_turn>\n<start_of_turn>model\n",
    "<bos><start_of_turn>user\nHallo, wie geht's?  Zwei Leerzeichen.<end_of_turn>\n<start_of_turn>model\nGut!<end_of_turn>",
    "<end_of_turn><start_of_turn><eos>",
    "a<table><tr><td>1</td></tr></table>\n\n\n<b>bold</b>  <i>x</i>\t\tend",
    "almost special: <start_of_turn <end_of_turn > <START_OF_TURN> <unused0> [multimodal]",
]


def build_goldens() -> None:
    from tokenizers import Tokenizer
    import transformers
    corpus = (FIXTURES / "corpus.txt").read_bytes().decode("utf-8")
    units = split_units(corpus)
    summary: dict = {"units": len(units), "corpus_sha256": hashlib.sha256(corpus.encode()).hexdigest(),
                     "versions": {"tokenizers": __import__("tokenizers").__version__,
                                  "transformers": transformers.__version__,
                                  "sentencepiece": __import__("sentencepiece").__version__}}
    special_cases = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        # --- SmolLM2 ---------------------------------------------------------------------------
        smol_vocab = gguf_vocab(SMOLLM2_GGUF)
        backend, smol_tf, lost_digits = smollm2_tokenizer()
        add_bos = bool(smol_vocab.get("add_bos_token", False))
        bos = smol_vocab["bos_token_id"]
        rows, gguf_rows_differ = [], 0
        for unit in units:
            ids = backend.encode(unit, add_special_tokens=False).ids
            if add_bos:
                ids = [bos] + ids
            as_converted = ([bos] if add_bos else []) + smol_tf.encode(unit, add_special_tokens=False).ids
            gguf_rows_differ += as_converted != ids
            rows.append(" ".join(map(str, ids)))
        (FIXTURES / "smollm2.ids").write_text("\n".join(rows) + "\n")
        summary["smollm2"] = {
            "reference": "transformers GGUF conversion + SmolLM2 pre-tokenizer Digits(individual)+ByteLevel",
            "transformers_conversion_lost_digits_step": lost_digits,
            "units_where_unfixed_transformers_conversion_differs": gguf_rows_differ,
            "add_bos": add_bos, "tokens": sum(len(r.split()) for r in rows)}
        for text in SMOLLM2_SPECIAL_TEXTS:
            for parse_special in (True, False):
                backend.encode_special_tokens = not parse_special
                ids = backend.encode(text, add_special_tokens=False).ids
                special_cases.append({"model": "smollm2", "text": text, "addSpecial": True,
                                      "parseSpecial": parse_special, "ids": ([bos] if add_bos else []) + ids})
            backend.encode_special_tokens = False

        # --- Gemma 3 ---------------------------------------------------------------------------
        gem_vocab = gguf_vocab(GEMMA3_GGUF)
        sp = gemma3_sentencepiece(gem_vocab, work)
        gem_tf = transformers_gguf_tokenizer(GEMMA3_GGUF)
        g_bos = gem_vocab["bos_token_id"]
        g_add_bos = bool(gem_vocab.get("add_bos_token", True))
        controls = {t: i for i, (t, k) in enumerate(zip(gem_vocab["tokens"], gem_vocab["types"])) if k == 3}
        rows, differ, examples = [], 0, []
        for unit in units:
            ids = ([g_bos] if g_add_bos else []) + sp.encode(unit)
            tf_ids = ([g_bos] if g_add_bos else []) + gem_tf.encode(unit, add_special_tokens=False).ids
            if tf_ids != ids:
                differ += 1
                if len(examples) < 8:
                    examples.append({"text": unit[:200], "sentencepiece": ids[:40], "transformers_gguf": tf_ids[:40]})
            rows.append(" ".join(map(str, ids)))
        (FIXTURES / "gemma3.ids").write_text("\n".join(rows) + "\n")
        summary["gemma3"] = {
            "reference": "sentencepiece on a model proto rebuilt from the GGUF (identity normaliser, no dummy "
                         "prefix, whitespace kept, byte fallback)",
            "units_where_transformers_gguf_conversion_differs": differ,
            "transformers_gguf_differences_examples": examples,
            "add_bos": g_add_bos, "tokens": sum(len(r.split()) for r in rows)}
        for text in GEMMA3_SPECIAL_TEXTS:
            for parse_special in (True, False):
                ids = [g_bos] if g_add_bos else []
                parts = partition_control(text, controls) if parse_special else [text]
                for part in parts:
                    ids += sp.encode(part) if isinstance(part, str) else [part]
                gem_tf.encode_special_tokens = not parse_special
                tf = ([g_bos] if g_add_bos else []) + gem_tf.encode(text, add_special_tokens=False).ids
                gem_tf.encode_special_tokens = False
                special_cases.append({"model": "gemma3", "text": text, "addSpecial": True,
                                      "parseSpecial": parse_special, "ids": ids,
                                      "transformers_gguf_agrees": tf == ids})

    (FIXTURES / "special-cases.json").write_text(json.dumps(special_cases, indent=1, ensure_ascii=False) + "\n")
    (FIXTURES / "pretokenizer-splits.json").write_text(json.dumps(pretokenizer_goldens(units), indent=0) + "\n")
    (FIXTURES / "goldens-summary.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps({k: (v if not isinstance(v, dict) else {kk: vv for kk, vv in v.items() if kk != "transformers_gguf_differences_examples"})
                      for k, v in summary.items()}, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    step = sys.argv[1] if len(sys.argv) > 1 else "all"
    if step in ("corpus", "all"):
        build_corpus()
    if step in ("goldens", "all"):
        build_goldens()

"""A CLIP-format byte-level BPE vocabulary learned from a caption corpus, and the encoder that applies it.

The files follow the Hugging Face CLIPTokenizer layout that SD1.5 ships (vocab.json, merges.txt,
tokenizer_config.json, special_tokens_map.json), so any CLIP tokenizer reads them. Nothing is taken from
CLIP's own vocabulary: the 512 byte symbols are fixed by the format, every merge is learned here.
"""
from __future__ import annotations

import json
import os
import re
from collections import Counter

START = "<|startoftext|>"
END = "<|endoftext|>"
END_OF_WORD = "</w>"
MAX_LENGTH = 77

# CLIP's pre-tokenizer: contractions, letter runs, single digits, runs of other non-space characters.
_PRE_TOKEN = re.compile(r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|(?:[^\s\w]|_)+", re.IGNORECASE)


def byte_symbols() -> list[str]:
    """The 256 byte symbols in CLIP's order: printable Latin-1 bytes as themselves, then the rest moved to U+0100+."""
    printable = [b for b in range(256) if 0x21 <= b <= 0x7E or 0xA1 <= b <= 0xAC or 0xAE <= b <= 0xFF]
    symbols = {b: chr(b) for b in printable}
    moved = 0
    for b in range(256):
        if b not in symbols:
            symbols[b] = chr(256 + moved)
            moved += 1
    return [symbols[b] for b in printable] + [symbols[b] for b in range(256) if b not in printable]


def _byte_table() -> dict[int, str]:
    printable = [b for b in range(256) if 0x21 <= b <= 0x7E or 0xA1 <= b <= 0xAC or 0xAE <= b <= 0xFF]
    table, moved = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + moved)
            moved += 1
    return table


_BYTES = _byte_table()


def clean(text: str) -> str:
    """What the pre-tokenizer sees: whitespace collapsed, lower case (our captions need no ftfy/HTML fixes)."""
    return " ".join(text.split()).lower()


def words(text: str) -> list[str]:
    """Pre-tokens of a caption, each spelled in byte symbols."""
    return ["".join(_BYTES[b] for b in m.group(0).encode("utf-8")) for m in _PRE_TOKEN.finditer(clean(text))]


def learn_merges(captions: list[str], max_merges: int) -> list[tuple[str, str]]:
    """Greedy BPE: repeatedly merge the most frequent adjacent pair (ties by the pair's text, for determinism)
    until every pair occurs once, or `max_merges` is reached."""
    freq = Counter(w for c in captions for w in words(c))
    vocab = {tuple(list(w[:-1]) + [w[-1] + END_OF_WORD]): n for w, n in freq.items()}
    merges: list[tuple[str, str]] = []
    while len(merges) < max_merges:
        pairs: Counter = Counter()
        for symbols, n in vocab.items():
            for a, b in zip(symbols, symbols[1:]):
                pairs[(a, b)] += n
        if not pairs:
            break
        best_count = max(pairs.values())
        if best_count < 2:
            break
        best = min(p for p, n in pairs.items() if n == best_count)
        merges.append(best)
        joined = best[0] + best[1]
        merged = {}
        for symbols, n in vocab.items():
            out, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and symbols[i] == best[0] and symbols[i + 1] == best[1]:
                    out.append(joined)
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            merged[tuple(out)] = merged.get(tuple(out), 0) + n
        vocab = merged
    return merges


def build_vocab(merges: list[tuple[str, str]]) -> dict[str, int]:
    """CLIP's id order: byte symbols, the same with the word-end mark, one token per merge, then the specials."""
    base = byte_symbols()
    tokens = base + [s + END_OF_WORD for s in base] + [a + b for a, b in merges] + [START, END]
    vocab: dict[str, int] = {}
    for t in tokens:
        # Two merges can spell the same token (a+bc and ab+c); it keeps its first id.
        vocab.setdefault(t, len(vocab))
    return vocab


class Tokenizer:
    def __init__(self, merges: list[tuple[str, str]]):
        self.merges = merges
        self.vocab = build_vocab(merges)
        self.ranks = {pair: i for i, pair in enumerate(merges)}
        self.bos = self.vocab[START]
        self.eos = self.vocab[END]
        self.pad = self.eos  # SD1 pads with the end token
        self._cache: dict[str, list[str]] = {}

    def _bpe(self, word: str) -> list[str]:
        if word in self._cache:
            return self._cache[word]
        symbols = list(word[:-1]) + [word[-1] + END_OF_WORD]
        while len(symbols) > 1:
            ranked = [(self.ranks.get((a, b), 1 << 30), i) for i, (a, b) in enumerate(zip(symbols, symbols[1:]))]
            rank, _ = min(ranked)
            if rank == 1 << 30:
                break
            first, second = self.merges[rank]
            out, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and symbols[i] == first and symbols[i + 1] == second:
                    out.append(first + second)
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            symbols = out
        self._cache[word] = symbols
        return symbols

    def tokens(self, text: str) -> list[str]:
        return [t for w in words(text) for t in self._bpe(w)]

    def encode(self, text: str) -> list[int]:
        """Start token, ids, end token, cut and padded to 77 like the pipeline's tokenizer."""
        body = [self.vocab[t] for t in self.tokens(text)][: MAX_LENGTH - 2]
        ids = [self.bos] + body + [self.eos]
        return ids + [self.pad] * (MAX_LENGTH - len(ids))

    @staticmethod
    def load(folder: str) -> "Tokenizer":
        """The tokenizer `save` wrote: its merges, in rank order, rebuild the same vocabulary."""
        with open(os.path.join(folder, "merges.txt"), encoding="utf-8") as f:
            merges = [tuple(line.split()) for line in f.read().splitlines()[1:] if line.strip()]
        tokenizer = Tokenizer(merges)
        with open(os.path.join(folder, "vocab.json"), encoding="utf-8") as f:
            if json.load(f) != tokenizer.vocab:
                raise ValueError(f"{folder}: vocab.json does not match merges.txt; write the tokenizer again")
        return tokenizer

    def save(self, folder: str) -> None:
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
            json.dump(self.vocab, f, ensure_ascii=False)
        with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
            f.write("#version: 0.2 - learned from the tiny-shapes captions\n")
            f.writelines(f"{a} {b}\n" for a, b in self.merges)

        def added(content: str) -> dict:
            return {"__type": "AddedToken", "content": content, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}

        with open(os.path.join(folder, "special_tokens_map.json"), "w") as f:
            json.dump({"bos_token": added(START), "eos_token": added(END), "pad_token": END, "unk_token": added(END)}, f, indent=2)
        with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
            json.dump(
                {
                    "add_prefix_space": False,
                    "bos_token": added(START),
                    "do_lower_case": True,
                    "eos_token": added(END),
                    "errors": "replace",
                    "model_max_length": MAX_LENGTH,
                    "pad_token": END,
                    "tokenizer_class": "CLIPTokenizer",
                    "unk_token": added(END),
                },
                f,
                indent=2,
            )

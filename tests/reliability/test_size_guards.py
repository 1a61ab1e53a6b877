"""Sizes a user controls fail early, naming the argument and the limit, instead of allocating
until memory runs out: delays, durations, pronunciation lengths and --max-arcs, gzip trailers,
endless inputs."""

import gzip
import random
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from speechdecode import _args
from speechdecode.errors import ArpaFormatError, InputFileError, InvalidArgumentError
from speechdecode.graphs.compile import GraphCompileError, compile_graph
from speechdecode.graphs.lexicon import Lexicon
from speechdecode.graphs.lexicon_fst import disambiguate
from speechdecode.kernels import delay_pattern, duration_mask
from speechdecode.lm import NgramModel
from speechdecode.lm.arpa import read_arpa

GIB = 2**30


@pytest.fixture
def one_gib(monkeypatch):
    monkeypatch.setattr(_args, "available_memory", lambda: GIB)


def test_delays_are_refused_before_allocating(one_gib):
    codes = np.ones((2, 4, 10), dtype=np.int64)
    with pytest.raises(InvalidArgumentError, match=r"delays: .*fits in the 1 GiB.*got 2.\d+ GiB needed"):
        delay_pattern.build(codes, [0, 1, 2, 30_000_000], special=9)  # 2*4*30M*9 bytes
    sequence, _ = delay_pattern.build(codes, [0, 1, 2, 1000], special=9)
    assert sequence.shape == (2, 4, 1011)


def test_a_delay_of_a_billion_is_refused_at_once():
    # 33.5 GB: more than this machine kind has, with no monkeypatching.
    with pytest.raises(InvalidArgumentError, match=r"delays: .*GiB needed"):
        delay_pattern.build(np.ones((1, 4, 10), dtype=np.int64), [0, 1, 2, 10**9], special=9)


@pytest.mark.parametrize("mask", ["frame_phonemes", "dense_mask", "additive_bias", "sequence_mask"])
def test_durations_are_refused_before_allocating(one_gib, mask):
    function = getattr(duration_mask, mask)
    args = () if mask == "frame_phonemes" else (1,)
    with pytest.raises(InvalidArgumentError, match=r"durations: .*fits in the 1 GiB"):
        function(np.array([[40_000_000, 3]]), *args)
    small = function(np.array([[3, 2]]), *args)
    assert small.shape[-1] in (2, 5, 7)  # [B, T] / [B, T, L] / [B, L + T, L + T]
    with pytest.raises(InvalidArgumentError, match=r"num_frames: .*fits in the 1 GiB"):
        duration_mask.frame_phonemes(np.array([[3, 2]]), num_frames=40_000_000)


def _prefixes_by_definition(lexicon: Lexicon) -> set:
    return {p.tokens[:i] for _, p in lexicon.entries() for i in range(1, len(p.tokens))}


def test_disambiguation_equals_kaldis_rule_on_random_lexicons():
    rng = random.Random(11)
    for _ in range(200):
        spellings = {f"w{i}": {tuple(rng.choice("abc") for _ in range(rng.randint(1, 4))) for _ in range(2)}
                     for i in range(rng.randint(1, 12))}  # fmt: skip
        lexicon = Lexicon({word: sorted(prons) for word, prons in spellings.items()})
        counts = Counter(p.tokens for _, p in lexicon.entries())
        prefixes = _prefixes_by_definition(lexicon)
        used: Counter = Counter()
        want = []
        for _, pron in lexicon.entries():
            if counts[pron.tokens] > 1 or pron.tokens in prefixes:
                used[pron.tokens] += 1
                want.append(used[pron.tokens])
            else:
                want.append(0)
        entries, top = disambiguate(lexicon)
        assert [e.disambig for e in entries] == want and top == max(want)


def test_a_long_pronunciation_is_linear_and_max_arcs_covers_l(tmp_path):
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("<blk>\na\nb\n")
    long_word = ("a", "b") * 100_000  # 200k tokens
    lexicon = Lexicon({"long": [long_word], "ab": [("a", "b")]})
    entries, top = disambiguate(lexicon)  # "a b" is a prefix of the long word
    assert [e.disambig for e in entries] == [0, 1] and top == 1
    arpa = tmp_path / "lm.arpa"
    arpa.write_text(
        "\\data\\\nngram 1=4\n\n\\1-grams:\n-1\t<s>\n-1\t</s>\n-0.5\tlong\n-0.5\tab\n\n\\end\\\n", encoding="utf-8"
    )
    with pytest.raises(GraphCompileError, match=r"L .*200,0\d\d arcs, more than max_arcs=100,000"):
        compile_graph(tokens, lexicon, arpa, max_arcs=100_000)


@pytest.mark.parametrize("symbol", ["<eps>", "#0", "#3"])
def test_reserved_symbols_in_a_pronunciation_are_refused(tmp_path, symbol):
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("<blk>\na\nb\n")
    lexicon = tmp_path / "lexicon.txt"
    lexicon.write_text(f"ab a b\nodd a {symbol} b\n")
    arpa = tmp_path / "lm.arpa"
    arpa.write_text("\\data\\\nngram 1=4\n\n\\1-grams:\n-1\t<s>\n-1\t</s>\n-0.5\tab\n-0.5\todd\n\n\\end\\\n")
    with pytest.raises(InputFileError, match=rf"lexicon.txt:2: (?=.*'odd')(?=.*'{symbol}')(?=.*(reserved|compiler))"):
        compile_graph(tokens, lexicon, arpa)
    with pytest.raises(InvalidArgumentError, match=rf"'{symbol}'"):  # a lexicon built in code
        compile_graph(tokens, Lexicon({"ab": [("a", "b")], "odd": [("a", symbol, "b")]}), arpa)


HOSTILE_TRAILER = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30))  # less than the 4 GiB claimed
from speechdecode.errors import ArpaFormatError
from speechdecode.lm import NgramModel
from speechdecode.lm.arpa import read_arpa
for load in (read_arpa, NgramModel.from_arpa):
    try:
        load(sys.argv[1])
    except ArpaFormatError as exc:
        print("refused", "gzip" in str(exc) and sys.argv[1] in str(exc))
"""


def test_a_gzip_trailer_claiming_4_gib_allocates_nothing_like_it(tmp_path):
    data = bytearray(gzip.compress(b"\\data\\\nngram 1=2\n\n\\1-grams:\n-1\t<s>\n-1\t</s>\n\n\\end\\\n"))
    data[-4:] = (0xFFFFFFF0).to_bytes(4, "little")
    path = tmp_path / "hostile.arpa.gz"
    path.write_bytes(bytes(data))
    run = subprocess.run([sys.executable, "-c", HOSTILE_TRAILER, str(path)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["refused", "True", "refused", "True"]


@pytest.mark.parametrize("load", [read_arpa, NgramModel.from_arpa], ids=["read_arpa", "from_arpa"])
def test_endless_binary_input_is_refused_at_once(load):
    with pytest.raises(ArpaFormatError, match="/dev/zero: binary data"):
        load("/dev/zero")


def test_search_widths_are_capped_with_the_limit_named():
    from speechdecode.decoding import CtcPrefixBeamSearch
    from speechdecode.decoding.ctc_prefix_beam_search import MAX_BEAM

    tokens = ["<blk>", "|", "a", "b"]
    with pytest.raises(InvalidArgumentError, match=r"beam: expected an integer in \[1, 65,536\], got 1000000000"):
        CtcPrefixBeamSearch(tokens, beam=10**9)  # grew to 22 GB on 30 frames before this limit
    with pytest.raises(InvalidArgumentError, match="nbest: expected an integer in"):
        CtcPrefixBeamSearch(tokens, nbest=MAX_BEAM + 1)
    assert CtcPrefixBeamSearch(tokens, beam=MAX_BEAM).beam == MAX_BEAM


@pytest.mark.parametrize("reader", ["read_arpa reference", "read_lexicon", "SymbolTable.read"])
def test_endless_text_lines_are_refused_at_once(reader):
    from speechdecode.graphs.lexicon import read_lexicon
    from speechdecode.graphs.symbols import SymbolTable

    read = {
        "read_arpa reference": lambda p: read_arpa(p, backend="reference"),
        "read_lexicon": read_lexicon,
        "SymbolTable.read": SymbolTable.read,
    }[reader]
    with pytest.raises(InputFileError, match="/dev/zero:1: a line longer than 64 MiB"):
        read("/dev/zero")

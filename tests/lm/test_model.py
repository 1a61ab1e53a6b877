"""NgramModel on hand-written ARPA files: scores worked out by hand, format errors, the batch and
state APIs against the one-at-a-time ones, threads, pickling, gzip.

The oracle against KenLM itself is tests/lm/test_model_kenlm.py.
"""

import doctest
import gzip
import math
import pickle
import random
import threading

import numpy as np
import pytest

import speechdecode.lm.model as model_module
from speechdecode.errors import ArpaFormatError, InvalidArgumentError, TensorError
from speechdecode.lm.model import NgramModel, WordScore

# A trigram model with dyadic numbers, so every sum below is exact in float32.
# Every trigram's context and suffix is a bigram, as a well-formed file has them.
TRIGRAM = """\
\\data\\
ngram 1=7
ngram 2=5
ngram 3=2

\\1-grams:
-2\t<unk>\t0
0\t<s>\t-0.5
-1\t</s>
-1\tthe\t-0.25
-1.5\tcat\t-0.125
-1.75\tsat\t-0.5
-2\tmat

\\2-grams:
-0.5\t<s> the\t-0.25
-0.75\tthe cat\t-0.375
-0.25\tcat sat\t-0.25
-0.5\tsat </s>
-1.25\tthe mat

\\3-grams:
-0.125\t<s> the cat
-0.0625\tthe cat sat

\\end\\
"""

# Word ids: <unk> <s> </s> first, then the other unigrams in file order.
UNK, BOS, EOS, THE, CAT, SAT, MAT = range(7)


def write(tmp_path, text, name="model.arpa"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def lm(tmp_path):
    return NgramModel.from_arpa(write(tmp_path, TRIGRAM))


def line_with(text: str, marker: str, occurrence: int = 1) -> int:
    """1-based number of the line holding the occurrence-th ``marker``, found in the test's own text."""
    seen = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if marker in line:
            seen += 1
            if seen == occurrence:
                return number
    raise AssertionError(f"{marker!r} not in the text")


# ---------------------------------------------------------------------------------------------
# The model and its vocabulary


def test_order_vocab_and_counts(lm, tmp_path):
    assert lm.order == 3
    assert lm.vocab == ["<unk>", "<s>", "</s>", "the", "cat", "sat", "mat"]
    assert lm.vocab_size == 7
    assert lm.counts == (7, 5, 2)
    assert lm.word_id("cat") == CAT
    assert lm.word_id("dog") == UNK
    assert "mat" in lm and "<s>" in lm
    assert "dog" not in lm and 3 not in lm
    assert lm.path == str(tmp_path / "model.arpa")
    assert "order=3" in repr(lm)


def test_memory_is_reported_per_ngram(lm):
    # 7 unigrams (8 bytes each), 5 bigrams (16-byte slots, 1.5 per entry + 1), 2 trigrams (12-byte
    # slots) at least; the vocabulary adds its strings and index.
    assert lm.memory_bytes >= 7 * 8 + 8 * 16 + 4 * 12
    assert lm.bytes_per_ngram == lm.memory_bytes / 14


# ---------------------------------------------------------------------------------------------
# Scores worked out by hand


def test_full_match_no_backoff(lm):
    # the | <s>          : bigram "<s> the"                  -0.5     (length 2)
    # cat | <s> the      : trigram "<s> the cat"             -0.125   (3)
    # sat | the cat      : trigram "the cat sat"             -0.0625  (3)
    # </s> | cat sat     : "sat </s>" -0.5 + bo(cat sat) -0.25 = -0.75 (2; one backoff)
    assert lm.full_scores("the cat sat") == [
        (-0.5, 2, False),
        (-0.125, 3, False),
        (-0.0625, 3, False),
        (-0.75, 2, False),
    ]
    assert lm.score("the cat sat") == -1.4375


def test_backoff_chain_of_one(lm):
    # mat | <s> the      : "the mat" -1.25 + bo(<s> the) -0.25 = -1.5  (2)
    # </s> | the mat     : p(</s>) -1 + bo(mat) 0 + bo(the mat) 0 = -1  (1)
    assert lm.full_scores("the mat") == [(-0.5, 2, False), (-1.5, 2, False), (-1.0, 1, False)]
    assert lm.score("the mat") == -3.0


def test_backoff_chain_of_two(lm):
    # cat | <s>          : p(cat) -1.5 + bo(<s>) -0.5 = -2                  (1)
    # sat | cat          : "cat sat" -0.25 ("<s> cat" is no bigram: no bo)    (2)
    # mat | cat sat      : p(mat) -2 + bo(sat) -0.5 + bo(cat sat) -0.25 = -2.75 (1; two backoffs)
    # </s> | sat mat     : mat ends every context: p(</s>) = -1              (1)
    assert lm.full_scores("cat sat mat") == [(-2.0, 1, False), (-0.25, 2, False), (-2.75, 1, False), (-1.0, 1, False)]
    assert lm.score("cat sat mat") == -6.0


def test_oov_scores_as_unk(lm):
    # dog | <s> the      : p(<unk>) -2 + bo(the) -0.25 + bo(<s> the) -0.25 = -2.5, oov
    assert lm.full_scores("the dog") == [(-0.5, 2, False), (-2.5, 1, True), (-1.0, 1, False)]
    # "<unk>" written out is the same word, and kenlm calls it oov too.
    assert lm.full_scores("the <unk>") == lm.full_scores("the dog")


def test_bos_and_eos_flags(lm):
    # Without <s>: the -1 (1), cat | the -0.75 (2), sat | the cat -0.0625 (3).
    assert lm.full_scores("the cat sat", bos=False, eos=False) == [
        (-1.0, 1, False),
        (-0.75, 2, False),
        (-0.0625, 3, False),
    ]
    assert lm.score("the cat sat", bos=False, eos=False) == -1.8125
    assert lm.score("the cat sat", bos=False) == -1.8125 - 0.75
    assert lm.score("the cat sat", eos=False) == -0.6875
    # Empty sentence: only </s> | <s>: p(</s>) -1 + bo(<s>) -0.5.
    assert lm.full_scores("") == [(-1.5, 1, False)]
    assert lm.score("", bos=False, eos=False) == 0.0


def test_words_split_on_ascii_whitespace_only(lm):
    assert lm.score("  the\tcat \n sat\r\n") == lm.score("the cat sat")
    # A no-break space is part of a word (as kenlm splits bytes): "the\xa0cat" is one unknown word.
    assert lm.full_scores("the\xa0cat", eos=False) == [(-2.5, 1, True)]


def test_perplexity_as_kenlm(lm):
    # 10 ** (-score / (words + 1)); </s> counts as a word.
    assert lm.perplexity("the cat sat") == pytest.approx(10 ** (1.4375 / 4))
    assert lm.perplexity_of(["the cat sat", "the mat"]) == pytest.approx(10 ** ((1.4375 + 3.0) / (4 + 3)))
    assert lm.perplexity_of([[THE, CAT, SAT], [THE, MAT]]) == pytest.approx(10 ** ((1.4375 + 3.0) / (4 + 3)))
    with pytest.raises(InvalidArgumentError):
        lm.perplexity_of([])


# ---------------------------------------------------------------------------------------------
# States


def test_states_by_hand(lm):
    assert lm.begin_state() == (BOS,)
    assert lm.null_state() == ()
    p, s = lm.score_word(lm.begin_state(), THE)
    # "<s> the" is a context (of "<s> the cat"), so both words stay.
    assert (p, s) == (-0.5, (THE, BOS))
    p, s = lm.score_word(s, "cat")
    assert (p, s) == (-0.125, (CAT, THE))
    p, s = lm.score_word(s, SAT)
    # "cat sat" has a backoff, so it stays although no trigram extends it.
    assert (p, s) == (-0.0625, (SAT, CAT))
    p, s = lm.score_word(s, EOS)
    assert p == -0.75


def test_states_are_minimised_so_equal_futures_compare_equal(lm):
    # "mat" and <unk> have backoff 0 and are nobody's context: nothing before them matters.
    after = {lm.score_word(state, MAT)[1] for state in [(), (BOS,), (THE, BOS), (SAT, CAT), (CAT,)]}
    assert after == {()}
    assert lm.score_word((THE, BOS), "dog") == (-2.5, ())
    # "cat" after "the" keeps "the" ("the cat" is a context); after "<s>" it keeps only itself.
    assert lm.score_word((THE,), CAT)[1] == (CAT, THE)
    assert lm.score_word((BOS,), CAT)[1] == (CAT,)
    # States are hashable keys, as a decoder merging hypotheses uses them.
    assert len({(CAT,): 1, lm.score_word((BOS,), CAT)[1]: 2}) == 1


def test_unminimised_contexts_score_correctly(lm):
    # Any context works: (MAT, SAT, ...) is longer than a state can be, (MAT, SAT) is not minimal.
    assert lm.score_word((MAT, SAT), EOS) == (-1.0, ())
    assert lm.score_word((SAT, CAT), MAT)[0] == -2.75
    with pytest.raises(TensorError, match="state"):
        lm.score_word((MAT, SAT, CAT), EOS)
    with pytest.raises(TensorError, match="word_id"):
        lm.score_word((), 7)
    with pytest.raises(TensorError, match="state"):
        lm.score_word((-1,), THE)


def test_score_words_arrays_by_hand(lm):
    states = np.array([[BOS, -1], [THE, BOS], [SAT, CAT], [-1, -1]], dtype=np.int64)
    probs, following = lm.score_words(states, [THE, CAT, MAT, THE])
    assert probs.dtype == np.float32 and following.dtype == np.int32
    assert probs.tolist() == [-0.5, -0.125, -2.75, -1.0]
    assert following.tolist() == [[THE, BOS], [CAT, THE], [-1, -1], [THE, -1]]


def test_score_words_rejects_bad_input(lm):
    with pytest.raises(TensorError, match=r"states.*\[2, 2\].*\[2, 3\]"):
        lm.score_words(np.full((2, 3), -1), [1, 1])
    with pytest.raises(TensorError, match=r"states.*-1 padding.*5 at \[1, 1\]"):
        lm.score_words(np.array([[1, -1], [-1, 5]]), [1, 1])
    with pytest.raises(TensorError, match=r"word_ids.*9 at \[1\]"):
        lm.score_words(np.array([[1, -1], [1, -1]]), [1, 9])
    with pytest.raises(TensorError, match=r"states.*integer"):
        lm.score_words(np.zeros((1, 2)), [1])
    with pytest.raises(TensorError, match="int32"):
        lm.score_words(np.array([[2**40, -1]]), [1])
    probs, following = lm.score_words(np.zeros((0, 2), dtype=np.int32), [])
    assert probs.shape == (0,) and following.shape == (0, 2)


# ---------------------------------------------------------------------------------------------
# Batch, vectorised and threaded calls equal the one-at-a-time ones


def random_sentences(rng: random.Random, count: int) -> list[str]:
    words = ["the", "cat", "sat", "mat", "dog", "<s>", "</s>", "<unk>"]
    return [" ".join(rng.choice(words) for _ in range(rng.randint(0, 12))) for _ in range(count)]


@pytest.mark.parametrize("num_threads", [1, 3, None])
@pytest.mark.parametrize(("bos", "eos"), [(True, True), (False, True), (True, False), (False, False)])
def test_score_batch_equals_loop(lm, num_threads, bos, eos):
    sentences = random_sentences(random.Random(11), 3001)
    expected = [lm.score(s, bos, eos) for s in sentences]
    got = lm.score_batch(sentences, bos, eos, num_threads=num_threads)
    assert got.dtype == np.float64 and got.tolist() == expected
    ids = [[lm.word_id(w) for w in s.split()] for s in sentences]
    ids[5] = np.array(ids[5], dtype=np.uint8)
    assert lm.score_batch(ids, bos, eos, num_threads=num_threads).tolist() == expected


def test_score_batch_inputs(lm):
    assert lm.score_batch([]).shape == (0,)
    assert lm.score_batch(("the cat", "")).tolist() == [lm.score("the cat"), lm.score("")]
    with pytest.raises(InvalidArgumentError, match="score"):
        lm.score_batch("the cat")
    with pytest.raises(TensorError, match=r"sentences.*int at \[1\]"):
        lm.score_batch(["the", 3])
    with pytest.raises(TensorError, match=r"sentences.*\[0, 7\).*7 at \[1, 2\]"):
        lm.score_batch([[3], [3, 4, 7]])
    with pytest.raises(TensorError, match=r"sentences\[0\]"):
        lm.score_batch([[[3]]])


def test_score_words_equals_score_word_loop(lm):
    rng = random.Random(5)
    # States reached by scoring random sentences, plus arbitrary (unminimised) contexts.
    states = [lm.begin_state(), lm.null_state()]
    for sentence in random_sentences(rng, 200):
        state = lm.begin_state()
        for word in sentence.split():
            state = lm.score_word(state, word)[1]
            states.append(state)
    states += [tuple(rng.randrange(7) for _ in range(rng.randint(0, 2))) for _ in range(300)]
    words = [rng.randrange(7) for _ in states]
    expected = [lm.score_word(s, w) for s, w in zip(states, words, strict=True)]
    table = np.full((len(states), 2), -1, dtype=np.int32)
    for row, state in enumerate(states):
        table[row, : len(state)] = state
    probs, following = lm.score_words(table, np.array(words))
    assert probs.tolist() == [np.float32(p) for p, _ in expected]
    assert [tuple(int(x) for x in row if x >= 0) for row in following] == [s for _, s in expected]


def test_two_threads_score_concurrently_like_serial(lm):
    sentences = random_sentences(random.Random(3), 20000)
    serial = lm.score_batch(sentences, num_threads=1)
    singles = [lm.score(s) for s in sentences[:2000]]
    results = {}

    def work(name):
        results[name] = (lm.score_batch(sentences, num_threads=2), [lm.score(s) for s in sentences[:2000]])

    threads = [threading.Thread(target=work, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for batch, one_by_one in results.values():
        assert np.array_equal(batch, serial)
        assert one_by_one == singles


# ---------------------------------------------------------------------------------------------
# Files: pickling, gzip, the loader's conventions


def test_pickle_reopens_the_file(lm):
    clone = pickle.loads(pickle.dumps(lm))
    assert isinstance(clone, NgramModel) and clone is not lm
    assert clone.path == lm.path and clone.vocab == lm.vocab
    assert clone.full_scores("the cat sat mat dog") == lm.full_scores("the cat sat mat dog")


def test_gzip_file_reads_like_plain(tmp_path, lm):
    path = tmp_path / "model.arpa.gz"
    path.write_bytes(gzip.compress(TRIGRAM.encode()))
    zipped = NgramModel.from_arpa(path)
    sentences = random_sentences(random.Random(1), 300)
    assert zipped.score_batch(sentences).tolist() == lm.score_batch(sentences).tolist()
    # Content decides, not the name: gzip data under a plain name reads too.
    renamed = tmp_path / "zipped.arpa"
    renamed.write_bytes(path.read_bytes())
    assert NgramModel.from_arpa(renamed).score("the cat") == lm.score("the cat")


def test_missing_unk_is_added_with_kenlms_probability(tmp_path):
    text = TRIGRAM.replace("ngram 1=7", "ngram 1=6").replace("-2\t<unk>\t0\n", "")
    lm = NgramModel.from_arpa(write(tmp_path, text))
    assert lm.vocab[0] == "<unk>" and lm.counts == (6, 5, 2)
    # p(<unk>) = -100 (KenLM's unknown_missing_logprob) + bo(the) -0.25 + bo(<s> the) -0.25.
    assert lm.full_scores("the dog", eos=False)[1] == (-100.5, 1, True)


def test_kenlm_conventions_are_accepted(tmp_path, lm):
    text = (
        "# made by hand\n\n"
        + TRIGRAM.replace("<unk>", "<UNK>")  # KenLM reads <UNK> as <unk>
        .replace("-0.125\t<s> the cat", "-0.125\t<s> the cat\t0")  # zero backoff on the top order
        .replace("\t", " ")
        .replace("\n", "\r\n")
        .replace("\\2-grams:", "\r\n\\2-grams:")  # extra blank lines
    )
    other = NgramModel.from_arpa(write(tmp_path, text, "conventions.arpa"))
    assert other.vocab == lm.vocab
    for sentence in ["the cat sat", "the dog", "cat sat mat", ""]:
        assert other.full_scores(sentence) == lm.full_scores(sentence)


def test_minus_inf_probability_is_allowed(tmp_path):
    lm = NgramModel.from_arpa(write(tmp_path, TRIGRAM.replace("-1.25\tthe mat", "-inf\tthe mat")))
    assert lm.full_scores("the mat", eos=False)[1] == (-math.inf, 2, False)


def test_missing_suffix_is_filled_in_as_kenlm_does(tmp_path):
    # "<s> the mat" with no "the mat": the loader stores "the mat" with the backed-off probability
    # p(mat) -2 + bo(the) -0.25 = -2.25, so the trigram is reachable; scores do not change and the
    # n-gram length reads 2, as in KenLM.
    text = (
        TRIGRAM.replace("-1.25\tthe mat\n", "")
        .replace("ngram 2=5", "ngram 2=4")
        .replace("ngram 3=2", "ngram 3=3")
        .replace("-0.0625\tthe cat sat\n", "-0.0625\tthe cat sat\n-0.375\t<s> the mat\n")
    )
    lm = NgramModel.from_arpa(write(tmp_path, text))
    assert lm.full_scores("the mat", eos=False) == [(-0.5, 2, False), (-0.375, 3, False)]
    # "cat the" is no bigram, so the state before "mat" is (the,): the filled-in bigram answers.
    assert lm.full_scores("cat the mat", bos=False, eos=False)[2] == (-2.25, 2, False)
    assert lm.score_word((THE,), MAT)[0] == -2.25


def test_unigram_model(tmp_path):
    text = "\\data\\\nngram 1=4\n\n\\1-grams:\n-1\t<unk>\n-99\t<s>\n-0.5\t</s>\n-0.25\ta\t0\n\n\\end\\\n"
    lm = NgramModel.from_arpa(write(tmp_path, text))
    assert lm.order == 1 and lm.begin_state() == ()
    assert lm.full_scores("a b") == [(-0.25, 1, False), (-1.0, 1, True), (-0.5, 1, False)]
    probs, following = lm.score_words(np.zeros((2, 0), dtype=np.int32), [3, 0])
    assert probs.tolist() == [-0.25, -1.0] and following.shape == (2, 0)


def test_doctest_example_runs():
    assert doctest.testmod(model_module).failed == 0


# ---------------------------------------------------------------------------------------------
# Malformed files: every error names the file and the line


def _replace(old, new, count=1):
    return lambda text: text.replace(old, new, count)


# (id, edit of TRIGRAM, the line the error must name (its text, or its number), message pattern)
BAD_FILES = [
    ("junk before data", lambda t: "hello\n" + t, "hello", r"expected '\\data\\'"),
    ("no data header", lambda t: t.replace("\\data\\\n", ""), "ngram 1=7", r"expected '\\data\\'"),
    ("no counts", lambda t: t.replace("ngram 1=7\nngram 2=5\nngram 3=2\n", ""), "\\1-grams:", r"ngram 1=COUNT"),
    ("counts skip an order", _replace("ngram 2=5", "ngram 3=5"), "ngram 3=5", r"expected 'ngram 2=COUNT'"),
    ("count not a number", _replace("ngram 2=5", "ngram 2=five"), "ngram 2=five", r"ngram 2=COUNT"),
    (
        "sections out of order",
        lambda t: t.replace("\\2-grams:", "\\3-grams:", 1),
        "\\3-grams:",
        r"expected '\\2-grams:'",
    ),
    ("section missing", lambda t: t[: t.index("\\3-grams:")] + "\\end\\\n", "\\end\\", r"expected '\\3-grams:'"),
    (
        "fewer entries than declared",
        _replace("ngram 2=5", "ngram 2=6"),
        "\\3-grams:",
        r"ends after 5 entries.*line 3 declares 6",
    ),
    (
        "more entries than declared",
        _replace("ngram 2=5", "ngram 2=4"),
        "the mat",
        r"more than the 4 2-grams that line 3 declares",
    ),
    (
        "probability not a number",
        _replace("-1.5\tcat", "-1.5x\tcat"),
        "-1.5x",
        r"log10 probability '-1.5x' is not a number",
    ),
    ("probability nan", _replace("-1.5\tcat", "nan\tcat"), "nan\tcat", r"NaN"),
    ("probability +inf", _replace("-1.5\tcat", "inf\tcat"), "inf\tcat", r"\+inf"),
    ("positive probability", _replace("-1.5\tcat", "0.5\tcat"), "0.5\tcat", r"positive log10 probability"),
    ("backoff -inf", _replace("cat\t-0.125", "cat\t-inf"), "cat\t-inf", r"backoff '-inf' is not finite"),
    ("backoff nan", _replace("the cat\t-0.375", "the cat\tnan"), "the cat\tnan", r"backoff 'nan' is not finite"),
    (
        "backoff on the top order",
        _replace("-0.125\t<s> the cat", "-0.125\t<s> the cat\t-0.5"),
        "<s> the cat",
        r"non-zero backoff",
    ),
    (
        "too many fields",
        _replace("-0.25\tcat sat\t-0.25", "-0.25\tcat sat\t-0.25\t1"),
        "cat sat",
        r"got more than 4 fields",
    ),
    ("too few words", _replace("-0.5\tsat </s>", "-0.5\tsat"), "-0.5\tsat", r"2 words.*got 2 fields"),
    ("word not a unigram", _replace("-1.25\tthe mat", "-1.25\tthe hat"), "the hat", r"word 'hat' is not a 1-gram"),
    # TRIGRAM has "cat" on line 11, "the cat" on line 17, "<s> the cat" on line 23.
    (
        "duplicate unigram",
        lambda t: t.replace("-2\tmat\n", "-2\tmat\n-3\tcat\n").replace("1=7", "1=8"),
        "-3\tcat",
        r"duplicate 1-gram 'cat' \(first on line 11\)",
    ),
    (
        "duplicate bigram",
        _replace("-1.25\tthe mat", "-1.5\tthe cat"),
        "-1.5\tthe cat",
        r"duplicate 2-gram 'the cat' \(first on line 17\)",
    ),
    (
        "duplicate trigram",
        _replace("-0.0625\tthe cat sat", "-0.0625\t<s> the cat"),
        "-0.0625\t<s> the cat",
        r"duplicate 3-gram '<s> the cat' \(first on line 23\)",
    ),
    (
        "missing context",
        lambda t: t.replace("-0.5\t<s> the\t-0.25", "-0.5\t<s> cat\t-0.25"),
        "<s> the cat",
        r"context '<s> the' of the 3-gram '<s> the cat' is not a 2-gram",
    ),
    (
        "no <s>",
        lambda t: t.replace("0\t<s>\t-0.5\n", "").replace("ngram 1=7", "ngram 1=6").replace("<s> ", "the "),
        "\\1-grams:",
        r"no '<s>'",
    ),
    (
        "no </s>",
        lambda t: t.replace("-1\t</s>\n", "").replace("ngram 1=7", "ngram 1=6").replace(" </s>", " mat"),
        "\\1-grams:",
        r"no '</s>'",
    ),
    ("no end", _replace("\\end\\\n", ""), 25, r"without '\\end\\'"),  # reported on the last line
    ("text after end", lambda t: t + "\nmore\n", "more", r"text after '\\end\\'"),
    ("invalid utf-8 word", _replace("-2\tmat", "-2\tm\udcffat"), "-2\tm", r"not valid UTF-8"),
]


@pytest.mark.parametrize(("edit", "marker", "pattern"), [case[1:] for case in BAD_FILES], ids=[c[0] for c in BAD_FILES])
def test_bad_file_names_file_and_line(tmp_path, edit, marker, pattern):
    text = edit(TRIGRAM)
    path = tmp_path / "bad.arpa"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(ArpaFormatError, match=pattern) as info:
        NgramModel.from_arpa(path)
    expected_line = marker if isinstance(marker, int) else line_with(text, marker)
    assert info.value.path == str(path)
    assert info.value.line == expected_line
    assert str(info.value).startswith(f"{path}:{expected_line}: ")
    assert isinstance(info.value, ValueError)


def test_order_above_maximum(tmp_path):
    counts = "".join(f"ngram {n}=1\n" for n in range(1, 12))
    with pytest.raises(ArpaFormatError, match="order 11 is above") as info:
        NgramModel.from_arpa(write(tmp_path, "\\data\\\n" + counts))
    assert info.value.line == 12


def test_empty_and_truncated_files(tmp_path):
    with pytest.raises(ArpaFormatError, match=r"no '\\data\\'") as info:
        NgramModel.from_arpa(write(tmp_path, ""))
    assert info.value.line is None
    data = gzip.compress(TRIGRAM.encode())
    truncated = tmp_path / "cut.arpa.gz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArpaFormatError, match="gzip") as info:
        NgramModel.from_arpa(truncated)
    assert info.value.line is None


def test_unreadable_paths_raise_oserror(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        NgramModel.from_arpa(tmp_path / "missing.arpa")
    assert info.value.filename == str(tmp_path / "missing.arpa")
    with pytest.raises(IsADirectoryError):
        NgramModel.from_arpa(tmp_path)


def test_word_score_is_a_tuple():
    assert WordScore(-1.0, 2, False) == (-1.0, 2, False)


# ---------------------------------------------------------------------------------------------
# Large sections are read in chunks of about 1 MiB on all cores: the same errors, in file order


def line_ending(text: str, suffix: str, occurrence: int = 1) -> int:
    """1-based number of the occurrence-th line that ends with ``suffix``."""
    numbers = [n for n, line in enumerate(text.splitlines(), start=1) if line.endswith(suffix)]
    return numbers[occurrence - 1]


def big_bigram_text(rows: int = 400, columns: int = 500) -> tuple[str, list[str]]:
    """A bigram model of rows * columns bigrams (about 3.5 MB, several chunks), and its bigram lines."""
    words = [f"w{i}" for i in range(max(rows, columns))]
    unigrams = ["-2\t<unk>", "-99\t<s>\t-0.5", "-1\t</s>"] + [f"-3\t{w}\t-0.25" for w in words]
    bigrams = [f"-{1 + (i * columns + j) % 97 / 128}\tw{i} w{j}" for i in range(rows) for j in range(columns)]
    head = f"\\data\\\nngram 1={len(unigrams)}\nngram 2={len(bigrams)}\n\n\\1-grams:\n"
    text = head + "\n".join(unigrams) + "\n\n\\2-grams:\n" + "\n".join(bigrams) + "\n\n\\end\\\n"
    return text, bigrams


def test_large_sections_read_in_chunks_score_right(tmp_path):
    text, _ = big_bigram_text()
    assert len(text) > 3 << 20
    lm = NgramModel.from_arpa(write(tmp_path, text))
    assert lm.counts == (503, 200000)
    # "wi wj" is bigram i * 500 + j for i < 400; w450 starts none: p(w2) -3 + bo(w450) -0.25.
    assert lm.full_scores("w3 w7 w450 w2", bos=False, eos=False) == [
        (-3.0, 1, False),
        (-(1 + 1507 % 97 / 128), 2, False),
        (-(1 + 3950 % 97 / 128), 2, False),
        (-3.25, 1, False),
    ]
    assert lm.score_word((399,), 499)[0] == -(1 + (396 * 500 + 496) % 97 / 128)  # ids: 3 specials first


@pytest.mark.parametrize(
    ("edits", "declared_less", "reported"),
    [
        # Two bad lines in different chunks: the first one is reported.
        ({"w120 w3": "nan", "w350 w9": "x"}, 0, "w120 w3"),
        ({"w350 w9": "x"}, 0, "w350 w9"),
        # More bigrams than declared: the first extra one, unless a bad line comes before it.
        ({}, 5, "w399 w495"),
        ({"w390 w1": "x"}, 5, "w390 w1"),
        ({"w399 w499": "x"}, 5, "w399 w495"),
    ],
)
def test_large_sections_report_the_first_error_in_file_order(tmp_path, edits, declared_less, reported):
    text, bigrams = big_bigram_text()
    for ngram, bad_prob in edits.items():
        line = next(b for b in bigrams if b.endswith("\t" + ngram))
        text = text.replace(line + "\n", f"{bad_prob}\t{ngram}\n")
    text = text.replace("ngram 2=200000", f"ngram 2={200000 - declared_less}")
    with pytest.raises(ArpaFormatError) as info:
        NgramModel.from_arpa(write(tmp_path, text))
    assert info.value.line == line_ending(text, "\t" + reported)


def test_large_sections_duplicates_across_chunks(tmp_path):
    text, _ = big_bigram_text()
    text = text.replace("\tw380 w4\n", "\tw2 w4\n")
    with pytest.raises(ArpaFormatError, match=r"duplicate 2-gram 'w2 w4' \(first on line (\d+)\)") as info:
        NgramModel.from_arpa(write(tmp_path, text))
    assert info.value.line == line_ending(text, "\tw2 w4", occurrence=2)
    assert f"first on line {line_ending(text, chr(9) + 'w2 w4')})" in str(info.value)

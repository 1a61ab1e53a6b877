"""A word-piece model end to end: sentencepiece lexicon -> TLG -> both LM decoders recover the text."""

import numpy as np
import sentencepiece

from speechdecode.decoding import CtcPrefixBeamSearch, WfstDecoder, word_error_rate
from speechdecode.graphs import compile_graph, piece_lexicon
from speechdecode.lm import NgramModel, count_sentences, estimate, write_arpa
from speechdecode.testing import CtcPosteriorSimulator
from speechdecode.testing.corpora import kjv_sentences


def test_word_pieces_from_a_sentencepiece_model(tmp_path):
    verses = kjv_sentences()[:600]
    (tmp_path / "text.txt").write_text("\n".join(verses) + "\n")
    sentencepiece.SentencePieceTrainer.train(
        input=str(tmp_path / "text.txt"), model_prefix=str(tmp_path / "sp"), vocab_size=200, model_type="bpe",
        minloglevel=2, bos_id=-1, eos_id=-1, character_coverage=1.0,
    )  # fmt: skip
    sp = sentencepiece.SentencePieceProcessor(model_file=str(tmp_path / "sp.model"))
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    words = sorted({w for v in verses for w in v.split()})

    lexicon = piece_lexicon(words, tmp_path / "sp.model")
    # Each word is spelled as the model encodes it alone, starting with the word-start marker.
    for word in words[:50]:
        (pron,) = lexicon[word]
        assert list(pron.tokens) == sp.encode(word, out_type=str) and pron.tokens[0].startswith("\u2581")
        assert "".join(pron.tokens).lstrip("\u2581") == word

    write_arpa(tmp_path / "lm.arpa", estimate(count_sentences(verses, order=2), "witten-bell"))
    tokens = ["<blk>", *pieces]  # blank first, then the pieces in model id order
    compile_graph(tokens, lexicon, tmp_path / "lm.arpa", allow_oov=True).write(tmp_path / "graph")

    test = verses[:8]
    labels = [[1 + sp.piece_to_id(p) for w in s.split() for p in lexicon[w][0].tokens] for s in test]
    log_probs, lengths = CtcPosteriorSimulator(len(tokens), seed=4, confusion=0.0).simulate(labels)
    wfst = WfstDecoder(tmp_path / "graph", beam=20)(log_probs, lengths)
    assert [n[0].text for n in wfst] == test
    search = CtcPrefixBeamSearch(
        tokens, blank=0, word_boundary="\u2581", lm=NgramModel.from_arpa(tmp_path / "lm.arpa"), beam=16,
        partial_word_lm=True, unk_score_offset=-np.inf,
    )  # fmt: skip
    assert word_error_rate(test, [n[0].text for n in search(log_probs, lengths)]) == 0.0

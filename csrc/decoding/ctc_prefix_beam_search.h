// CTC prefix beam search with word-level n-gram fusion and hotwords.
//
// The search of Graves and Jaitly, "Towards End-to-End Speech Recognition with Recurrent Neural
// Networks" (ICML 2014), section 4 (prefix search with a language model), in the form of
// Hannun et al., "First-Pass Large Vocabulary Continuous Speech Recognition using Bi-Directional
// Recurrent DNNs" (arXiv:1408.2873), algorithm 1: every prefix keeps the log-probability of the
// alignments ending in blank (p_b) and in its last token (p_nb); equal prefixes merge by
// log-sum-exp. The exact rules (token pruning, beam pruning, word completion, LM and hotword
// scores, tie-breaking) are those of kernels/ctc_prefix_beam/reference.py, whose docstring is
// the definition; this implementation gives the same n-best lists.
//
// Prefixes live in a trie: a node is (parent, token), found through a hash table, so extending
// a prefix costs O(1). Everything a prefix's tokens determine is computed once, when its node is
// made: the current word's node in a character trie of the LM's words (which gives the word id
// and, for partial-word scoring, whether some LM word starts with it), the LM state after the
// completed words (NgramModel::score_word) and their weighted sum, the hotword automaton state
// and the bonus it committed. A frame's new prefixes stay pending until pruning; only those that
// survive join the trie, so it grows by at most `beam` nodes a frame.
//
// Lexicon (optional): words with one or more spellings in token ids. The word trie is then over
// token ids instead of characters, only its words (or, with a finite unk_score_offset, spellings
// outside it, as <unk>) complete, and a node shared by several words (homophones) completes as the
// one the LM scores best in the prefix's context, as a lexicon decoder keeps its best label.
//
// Hotwords: an Aho-Corasick automaton (Aho and Corasick, "Efficient string matching", CACM 1975)
// over token ids with failure links; a step follows at most as many failure links as the longest
// phrase has tokens, whatever the number of phrases.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "decoding/hypothesis.h"
#include "lm/ngram_model.h"

namespace speechdecode {

// The search's options: one struct through every layer (bound as
// speechdecode._native.CtcPrefixBeamSearchOptions, built by speechdecode.decoding.CtcPrefixBeamSearch
// and read by the Python reference too).
struct CtcPrefixBeamSearchOptions {
  static constexpr int64_t kMaxBeam = int64_t{1} << 16;

  int64_t blank = 0;
  double alpha = 0.5;
  double beta = 1.0;
  int64_t beam = 16;
  int64_t token_topk = 16;
  double beam_threshold = 20.0;
  double token_min_logp = -10.0;
  // The frame's most likely label (first of equals), when not blank, is extended even below
  // token_min_logp (pyctcdecode's rule).
  bool extend_best_token = false;
  bool partial_word_lm = true;
  double unk_score_offset = -10.0;
  // Frames whose blank log-prob exceeds this are not searched: they act as a blank frame of
  // probability 1 (every prefix's p_b becomes its total, p_nb -inf). +inf: search every frame.
  double blank_skip_threshold = std::numeric_limits<double>::infinity();
  // Merge alignments by max (a prefix scores its best alignment) instead of log-sum-exp.
  bool viterbi = false;
  // With an LM: of a frame's candidates with the same future (LM state, current word's lexicon
  // node, last token, hotword state), only the best is kept (hypothesis recombination).
  bool recombine = true;
  // Start from <s> and score </s> at the end; false: start from the null context, no </s>.
  bool score_boundary = true;

  // Throws TensorError naming the first option out of range, with what it expects and got. The
  // blank's upper bound (the vocabulary size) is checked by the search.
  void validate() const;
};

struct LexiconEntry {
  std::vector<int32_t> spelling;  // token ids with characters (no boundary token, no blank)
  std::string word;
};

struct HotwordPhrase {
  std::vector<int32_t> tokens;
  double weight = 0.0;
};

// An open-addressing hash map from (node, label) pairs to node ids: the edges of the tries.
class EdgeTable {
 public:
  // The target of the edge, or -1.
  int32_t find(uint32_t node, uint32_t label) const {
    if (slots_.empty()) return -1;
    const uint64_t k = key(node, label);
    for (size_t i = bucket(k);; i = (i + 1) & mask_) {
      if (slots_[i].key == k) return slots_[i].value;
      if (slots_[i].key == 0) return -1;
    }
  }
  // The slot of the edge's target: -1 when the edge was just added (the caller sets it).
  int32_t& insert(uint32_t node, uint32_t label);

 private:
  struct Slot {
    uint64_t key;
    int32_t value;
  };
  static uint64_t key(uint32_t node, uint32_t label) {
    return ((static_cast<uint64_t>(node) + 1) << 32) | label;  // never 0, the empty key
  }
  size_t bucket(uint64_t k) const { return static_cast<size_t>((k * 0x9E3779B97F4A7C15ull) >> shift_); }
  void grow();

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  int shift_ = 64;
  size_t size_ = 0;
};

// The hotword phrases as an Aho-Corasick automaton. State 0 is the root (no match).
class HotwordAutomaton {
 public:
  explicit HotwordAutomaton(const std::vector<HotwordPhrase>& phrases);

  // The state after token, and the bonus the step commits (added to *committed).
  int32_t step(int32_t state, int32_t token, double* committed) const;
  // The bonus of state that is not committed yet (given back if the match is abandoned).
  double loan(int32_t state) const { return nodes_[state].bonus - nodes_[state].end_base; }
  bool empty() const { return nodes_.size() == 1; }

 private:
  struct Node {
    int32_t parent = -1;
    int32_t fail = 0;
    double weight = 0.0;    // bonus of the node's token: the largest weight of its phrases
    double bonus = 0.0;     // sum of the weights along the path
    double end_base = 0.0;  // bonus of the longest whole phrase on the path (0: none)
    bool end = false;
  };
  // The child of node by token, or 0 (the root is nobody's child).
  int32_t child(int32_t node, int32_t token) const { return std::max(0, children_.find(node, token)); }

  std::vector<Node> nodes_;
  EdgeTable children_;
};

// The search's fixed part: vocabulary, options, hotwords and LM. Read-only once built: one
// instance serves any number of threads and streams.
class CtcPrefixBeamSearch {
 public:
  // chars[v]: token v's characters (leading word-boundary markers removed); starts_word[v]: the
  // token starts a new word. lm may be null; it must outlive the search. lexicon: empty, or the
  // words the search spells (see above). Throws TensorError for inconsistent sizes, options out of
  // range (options.validate()), hotword or lexicon tokens outside [0, V), blank or without characters.
  CtcPrefixBeamSearch(std::vector<std::string> chars, std::vector<uint8_t> starts_word,
                      CtcPrefixBeamSearchOptions options, const std::vector<HotwordPhrase>& hotwords,
                      const NgramModel* lm, const std::vector<LexiconEntry>& lexicon = {});

  int64_t vocab_size() const { return static_cast<int64_t>(chars_.size()); }
  const CtcPrefixBeamSearchOptions& options() const { return options_; }
  static constexpr int32_t kNoWord = -2;
  static constexpr int32_t kUnknownWord = -1;

  // Decodes utterance b = rows data + b * stride_batch + t * stride_frame (t < lengths[b], each
  // row vocab_size() contiguous floats) for b < batch, on num_threads threads (<= 0: all
  // cores). Returns up to nbest hypotheses per utterance. Throws TensorError for a NaN or +inf
  // score, naming [utterance, frame, token]. Takes no Python lock.
  std::vector<std::vector<CtcHypothesis>> decode(const float* data, int64_t batch, int64_t stride_batch,
                                                 int64_t stride_frame, const int64_t* lengths, int64_t nbest,
                                                 int num_threads) const;

  class Stream;

 private:
  friend class Stream;
  void build_allowed();
  void build_lexicon(const std::vector<LexiconEntry>& lexicon);
  // The word trie node after token v from node (-1: no word begins so; v without characters
  // stays at node).
  int32_t spell(int32_t node, int64_t v) const;
  // Completes the word at trie node `lexicon` (kUnknownWord: outside the trie) after LM state in:
  // returns its natural-log score (weighted LM score plus unk_score_offset for a word outside the
  // LM or lexicon), sets *out (with an LM) and *entry (the lexicon entry, or -1).
  double complete(int32_t lexicon, const NgramModel::State& in, NgramModel::State* out, int32_t* entry) const;

  std::vector<std::string> chars_;
  std::vector<uint8_t> starts_word_;
  CtcPrefixBeamSearchOptions options_;
  HotwordAutomaton hotwords_;
  const NgramModel* lm_;
  // With an LM and no lexicon: its words (but <unk>, <s>, </s>) as a character trie; with a
  // lexicon: its spellings as a token trie. Node 0 is the root.
  EdgeTable lexicon_edges_;
  std::vector<WordId> lexicon_words_;  // the word ending at each node, or kUnkId
  std::vector<float> lexicon_best_;    // the largest unigram log10 prob of the words below each node
  bool by_tokens_ = false;             // a lexicon was given: the trie is over token ids
  bool scores_words_ = false;          // an LM or a lexicon: completed words are scored
  // With a lexicon: the entries ending at each node (entry_start_[node] .. entry_start_[node + 1]
  // in node_entries_), each entry's LM id and word.
  std::vector<int32_t> entry_start_;
  std::vector<int32_t> node_entries_;
  std::vector<WordId> entry_lm_;
  std::vector<std::string> entry_words_;
  // Only LM words can be spelled (partial_word_lm, unk_score_offset = -inf) and V <= 64: bit v of
  // allowed_[node] says whether token v can follow a word at that lexicon node (allowed_empty_:
  // after no word) without making the prefix impossible, so the search skips the others at once.
  std::vector<uint64_t> allowed_;
  uint64_t allowed_empty_ = 0;
};

// One utterance's search state, fed frames in chunks. best() after frames f_1..f_n equals
// decoding f_1..f_n at once.
class CtcPrefixBeamSearch::Stream {
 public:
  // utterance: the index error messages name.
  explicit Stream(const CtcPrefixBeamSearch& search, int64_t utterance = 0);

  // Consumes count frames: rows frames + t * stride, t < count.
  void accept(const float* frames, int64_t count, int64_t stride);
  int64_t frames() const { return frame_; }
  // The frames searched so far (frames() less those skipped by blank_skip_threshold).
  int64_t searched_frames() const { return searched_; }
  // The n-best hypotheses of the frames so far (the search can go on afterwards).
  std::vector<CtcHypothesis> best(int64_t nbest) const;

 private:
  struct Node {
    int32_t parent;
    int32_t token;
    int32_t frame;     // the first frame the prefix survived pruning
    int32_t lexicon;   // the current word's lexicon node; kNoWord: empty, kUnknownWord: no LM word prefix
    int32_t lm_state;  // index in lm_states_: the state after the completed words
    int32_t n_words;   // completed words (with an LM)
    int32_t hot_state;
    int32_t stamp;  // the frame whose candidate list holds the prefix at candidates_[slot]
    int32_t slot;
    double lm_sum;  // weighted LM score of the completed words
    double hot_committed;
    double extra;  // the ranking score's part that the prefix determines
  };
  struct Entry {
    int32_t node;
    double p_b;
    double p_nb;
    double score;
  };
  struct Final {
    double extra;
    double lm_sum;
  };

  // The node of prefix parent + token: an existing one, or a new pending one.
  int32_t child(int32_t parent, int32_t token);
  int32_t make_child(int32_t parent, int32_t token);
  // Makes the pending prefixes among the beams trie nodes and drops the other pending ones.
  void keep_survivors();
  Entry& candidate(int32_t node);
  void step(const float* row);
  // Sorts the candidates by rank and keeps the first beam of those whose future no better one
  // has (options().recombine).
  void recombine();
  // Merges two log-probabilities of alignments: log-sum-exp, or max with viterbi.
  double merge(double a, double b) const;
  bool ranks_before(const Entry& a, const Entry& b) const;
  bool prefix_less(int32_t a, int32_t b) const;
  Final final_extra(int32_t node) const;
  CtcHypothesis hypothesis(const Entry& entry) const;

  const CtcPrefixBeamSearch& search_;
  int64_t utterance_;
  int64_t frame_ = 0;
  int64_t searched_ = 0;
  std::vector<Node> nodes_;
  // The trie holds the prefixes that survived a frame; nodes from first_pending_ on (and LM
  // states from first_pending_state_ on) are this frame's new candidates.
  EdgeTable children_;
  std::vector<NgramModel::State> lm_states_;
  int32_t first_pending_ = 1;
  int32_t first_pending_state_ = 0;
  std::vector<int32_t> survivors_;
  std::vector<Entry> beams_;
  std::vector<Entry> candidates_;
  std::vector<double> row_;
  std::vector<int32_t> tokens_;
  std::vector<int32_t> futures_;  // recombine(): a hash table of indices in kept_
  std::vector<Entry> kept_;
};

// The most likely frame path of log_probs (frames rows of vocab floats) that collapses to tokens
// under CTC (blank dropped, repeats merged): the Viterbi forced alignment over the label sequence
// with blanks between and around the tokens; of equal-scoring predecessors the state itself, then
// the previous one, then the one two back. Returns the token of each frame (blank included);
// empty when frames == 0. Throws TensorError for a token outside [0, vocab) or equal to blank.
std::vector<int32_t> ctc_best_path(const float* log_probs, int64_t frames, int64_t vocab,
                                   const std::vector<int32_t>& tokens, int32_t blank);

}  // namespace speechdecode

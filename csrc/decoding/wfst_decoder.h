// Token-passing Viterbi beam search over a decoding graph (TLG) with CTC-token inputs.
//
// The search of Kaldi's SimpleDecoder / FasterDecoder (Povey et al., "The Kaldi Speech
// Recognition Toolkit", ASRU 2011; decoder/faster-decoder.cc) in the tropical semiring, with a
// per-frame lattice for n-best lists in the spirit of LatticeFasterDecoder:
//
// * A token is a graph state reached after some frames, with the cost (-log) of the best path
//   to it. Per frame, every active token follows its emitting arcs (ilabel i >= 1, acoustic-model
//   output i - 1): cost += weight - acoustic_scale * log_prob[t, i - 1]; tokens reaching the same
//   state recombine (the smaller cost wins, the first one on ties). Then the epsilon closure
//   (ilabel 0 arcs, no frame consumed) runs in a topological order of the epsilon arcs, so each
//   state is expanded once, after all its epsilon predecessors.
// * Pruning: arcs whose cost exceeds the running best of the frame plus `beam` are not followed;
//   after the closure, tokens above best + beam are dropped, and when more than `max_active`
//   remain, only those with a cost <= the max_active-th smallest (ties kept).
// * Blank skip: a frame whose blank log-prob exceeds `blank_skip_threshold` is not searched at
//   all (the tokens carry over unchanged). This changes results: the skipped frame's costs are
//   not counted, and a repeated token that needed that blank frame cannot be emitted.
// * Lattice (nbest > 1): every surviving token keeps its best incoming arc and the other incoming
//   arcs whose path cost is within `lattice_beam` of the frame's best. The n best distinct word
//   sequences are read off it by an A* search backwards from the final tokens whose heuristic
//   (the token's forward cost) is exact; a (token, word suffix) pair is expanded once, so every
//   complete path popped has a new word sequence.
// * End: final weights are added; when no surviving token is final, every token counts as final
//   with cost 0 and results say reached_final = false (as Kaldi's ReachedFinal()).
//
// The graph must have no epsilon cycles (a TLG has none: G's back-off arcs lead from an n-gram
// state to a shorter one). It is read once into flat arrays and shared read-only by all threads.
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "decoding/hypothesis.h"

namespace speechdecode {

struct WfstArc {
  int32_t ilabel;
  int32_t olabel;
  float weight;
  int32_t nextstate;
};

struct GraphArrays;  // decoding/wfst_graph.h

// A decoding graph in the flat-array export format: the arcs of state s are
// arcs[offsets[s] .. offsets[s + 1]), sorted by ilabel, the epsilon arcs first.
class WfstGraph {
 public:
  // Checks the arrays (check_graph: throws TensorError naming the array) and copies them.
  explicit WfstGraph(const GraphArrays& graph);

  int64_t num_states() const { return static_cast<int64_t>(final_.size()); }
  int64_t num_arcs() const { return static_cast<int64_t>(arcs_.size()); }
  int64_t num_tokens() const { return num_tokens_; }
  int64_t blank() const { return blank_; }
  int32_t start() const { return start_; }
  float final_weight(int32_t s) const { return final_[s]; }
  const WfstArc& arc(int32_t a) const { return arcs_[a]; }
  // Epsilon arcs of s: [offsets[s], emitting_begin[s]); emitting arcs: [emitting_begin[s], offsets[s + 1]).
  int32_t arcs_begin(int32_t s) const { return states_[s].begin; }
  int32_t emitting_begin(int32_t s) const { return states_[s].emitting; }
  int32_t arcs_end(int32_t s) const { return states_[s].end; }
  bool has_epsilon(int32_t s) const { return states_[s].begin < states_[s].emitting; }
  // Position of s in a topological order of the epsilon arcs.
  int32_t epsilon_rank(int32_t s) const { return states_[s].rank; }

 private:
  int32_t start_ = 0;
  int64_t num_tokens_ = 0;
  int64_t blank_ = 0;
  std::vector<float> final_;
  // Everything the search reads about a state, in one cache line fetch.
  struct StateInfo {
    int32_t begin;
    int32_t emitting;
    int32_t end;
    int32_t rank;
  };
  std::vector<StateInfo> states_;
  std::vector<WfstArc> arcs_;
};

// The search's options: one struct through every layer (bound as speechdecode._native.WfstOptions,
// built by speechdecode.decoding.WfstDecoder and read by the Python reference too).
struct WfstOptions {
  double beam = 16.0;
  int64_t max_active = std::numeric_limits<int32_t>::max();
  double acoustic_scale = 1.0;
  // Frames with log_prob[blank] > blank_skip_threshold are skipped; +inf: none.
  double blank_skip_threshold = std::numeric_limits<double>::infinity();
  double lattice_beam = 8.0;
  int64_t nbest = 1;
  // A token that ends every word (a char lexicon's "|"), or -1. See CtcHypothesis for its use.
  int64_t word_boundary = -1;
  // The n-best A* search stops after this many expansions (it returns what it found by then).
  int64_t max_nbest_expansions = 1000000;

  // Throws TensorError naming the first option out of range, with what it expects and got. The
  // word boundary's upper bound (the graph's num_tokens) is checked by the search.
  void validate() const;
};

// The search's hypotheses (decoding/hypothesis.h). Tokens are the CTC collapse of the path's
// per-frame input labels (a token starts where the label is not blank and differs from the
// previous searched frame's label; a skipped frame counts as blank); token_frames[i] is the frame
// where token i starts. word_ids are the output labels on the path (words stays empty).
// Word times: with a word_boundary token whose occurrences split the tokens into exactly as
// many groups (each ending at a boundary, the last one possibly not) as there are words,
// word_frames[k] is (first frame, last frame) of group k's tokens other than the boundary.
// Otherwise word k owns the tokens from the arc carrying its output label up to the next word's
// arc (tokens before the first word's arc belong to the first word) and word_frames[k] is the
// frames of its first and last token, or (f, f) with f the frame of its arc when it owns none;
// exact when each word's label sits on its first token's arc, shifted where determinization
// delayed it. Scores: am_score = sum of the path's log-probs,
// lm_score = -(graph weights + final weight), score = acoustic_scale * am_score + lm_score.
// reached_final: whether the path ended in a final state.

// The search state of one utterance: accept frames in chunks, ask for the best partial result,
// finish for the n-best list. Not thread-safe; many searches may share one graph.
class WfstSearch {
 public:
  WfstSearch(std::shared_ptr<const WfstGraph> graph, const WfstOptions& options);

  // Searches `frames` rows of log-probs (row i at data + i * stride, num_tokens floats each).
  // Throws TensorError naming `utterance` and the frame for a NaN or +inf log-prob.
  void accept(const float* data, int64_t frames, int64_t stride, int64_t utterance = 0);
  // The best path so far, final weights ignored (reached_final = false); none when no token survives.
  std::optional<CtcHypothesis> partial() const;
  // The n-best list (nbest 1: the best path) of the frames accepted so far, best first.
  std::vector<CtcHypothesis> finish() const;
  // Starts a new utterance, keeping the work space (sized by the graph) of the last one.
  void reset();
  int64_t frames_accepted() const { return frames_; }
  const WfstGraph& graph() const { return *graph_; }

 private:
  // A token that survived its frame. bp_* is its best incoming arc; links_* its lattice arcs.
  struct Token {
    double cost;
    int32_t state;
    int32_t step;
    int32_t bp_src;
    int32_t bp_arc;
    float bp_log_prob;
    int32_t links_begin;
    int32_t links_end;
  };

  struct Link {
    int32_t src;
    int32_t arc;
    float log_prob;
  };

  struct Active {
    int32_t state;
    int32_t token;
    double cost;
  };

  // A token of the frame being searched. src >= 0: a committed token; src < 0 and not
  // "no source" (INT32_MIN, the start token): the pending token -src - 1 of the same frame.
  struct Pending {
    double cost;
    int32_t state;
    int32_t src;
    int32_t arc;
    float log_prob;
    int32_t link_head;
  };

  struct PendingLink {
    double total;
    int32_t src;
    int32_t arc;
    float log_prob;
    int32_t next;
  };

  struct PathArc {
    int32_t arc;
    float log_prob;
    int32_t step;
  };

  void start();
  void expand_epsilon(double& best);
  void commit(double best, int32_t frame);
  std::vector<PathArc> trace(int32_t token) const;
  CtcHypothesis make_result(const std::vector<PathArc>& path, double final_cost, bool reached_final) const;
  std::vector<CtcHypothesis> nbest_from_lattice(const std::vector<std::pair<int32_t, double>>& ends,
                                                bool reached_final) const;
  void add_candidate(int32_t state, double cost, int32_t src, int32_t arc, float log_prob, bool lattice);
  void collect_garbage();

  std::shared_ptr<const WfstGraph> graph_;
  WfstOptions options_;
  bool lattice_;
  int64_t frames_ = 0;
  std::vector<Token> tokens_;
  std::vector<Link> links_;
  std::vector<int32_t> step_frame_;
  std::vector<Active> active_;
  // Work space of one frame.
  std::vector<int32_t> slot_;
  std::vector<char> queued_;
  std::vector<Pending> pending_;
  std::vector<PendingLink> pending_links_;
  std::vector<double> acoustic_;
  std::vector<double> costs_;
  std::vector<uint64_t> order_;
  std::vector<uint64_t> heap_;
  std::vector<int32_t> global_;
  std::vector<int32_t> gc_map_;
  size_t gc_threshold_ = size_t{1} << 14;
};

// Decodes log_probs [batch, frames, num_tokens] (float32; row (b, t) at
// data + b * stride_batch + t * stride_frame), utterance b over its first lengths[b] frames
// (lengths null: all), on num_threads threads (<= 0: all cores). Returns one n-best list per
// utterance. Takes no Python lock.
std::vector<std::vector<CtcHypothesis>> wfst_decode(std::shared_ptr<const WfstGraph> graph,
                                                    const WfstOptions& options, const float* data,
                                                    int64_t batch, int64_t frames, int64_t vocab,
                                                    int64_t stride_batch, int64_t stride_frame,
                                                    const int64_t* lengths, int num_threads);

}  // namespace speechdecode

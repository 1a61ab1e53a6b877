#include "decoding/ctc_prefix_beam_search.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "common/errors.h"
#include "common/parallel.h"

namespace speechdecode {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();
const double kLn10 = std::log(10.0);

// log(exp(a) + exp(b)), exact for -inf operands (the reference's formula, operation for operation).
inline double log_add(double a, double b) {
  if (a < b) std::swap(a, b);
  if (b == kNegInf) return a;
  return a + std::log1p(std::exp(b - a));
}

// alpha * ln(10) * log10_prob, with alpha = 0 meaning no LM term even for log10_prob = -inf.
inline double weighted(double alpha, float log10_prob) {
  return alpha == 0.0 ? 0.0 : alpha * kLn10 * log10_prob;
}

std::string position(int64_t b, int64_t t, int64_t v) {
  return "[" + std::to_string(b) + ", " + std::to_string(t) + ", " + std::to_string(v) + "]";
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// CtcPrefixBeamSearchOptions

void CtcPrefixBeamSearchOptions::validate() const {
  auto number = [](const char* name, double value, bool finite) {
    if (std::isnan(value) || (finite && !std::isfinite(value))) {
      throw TensorError(name, finite ? "a finite number" : "a number (not NaN)", std::to_string(value));
    }
  };
  if (blank < 0) throw TensorError("blank", "a token id >= 0", std::to_string(blank));
  number("alpha", alpha, true);
  number("beta", beta, true);
  // a beam of 1e9 is not "exhaustive": the prefixes grow by V per frame until memory runs out
  static_assert(kMaxBeam == 65536, "the message below spells kMaxBeam");
  if (beam < 1 || beam > kMaxBeam)
    throw TensorError("beam", "an integer in [1, 65,536]", std::to_string(beam));
  if (token_topk < 1) throw TensorError("token_topk", "an integer >= 1", std::to_string(token_topk));
  number("beam_threshold", beam_threshold, false);
  if (beam_threshold < 0) {
    throw TensorError("beam_threshold", "a number (not NaN) >= 0", std::to_string(beam_threshold));
  }
  number("token_min_logp", token_min_logp, false);
  number("unk_score_offset", unk_score_offset, false);
  if (unk_score_offset == std::numeric_limits<double>::infinity()) {
    throw TensorError("unk_score_offset", "a number < +inf (-inf: only LM words)", "inf");
  }
  number("blank_skip_threshold", blank_skip_threshold, false);
}

// ---------------------------------------------------------------------------------------------
// EdgeTable

int32_t& EdgeTable::insert(uint32_t node, uint32_t label) {
  if (2 * (size_ + 1) > slots_.size()) grow();
  const uint64_t k = key(node, label);
  size_t i = bucket(k);
  while (slots_[i].key != 0 && slots_[i].key != k) i = (i + 1) & mask_;
  if (slots_[i].key == 0) {
    slots_[i] = {k, -1};
    ++size_;
  }
  return slots_[i].value;
}

void EdgeTable::grow() {
  std::vector<Slot> old = std::move(slots_);
  const size_t capacity = std::max<size_t>(64, 2 * old.size());
  slots_.assign(capacity, Slot{0, 0});
  mask_ = capacity - 1;
  shift_ = 64 - __builtin_ctzll(capacity);
  for (const Slot& slot : old) {
    if (slot.key == 0) continue;
    size_t i = bucket(slot.key);
    while (slots_[i].key != 0) i = (i + 1) & mask_;
    slots_[i] = slot;
  }
}

// ---------------------------------------------------------------------------------------------
// HotwordAutomaton

HotwordAutomaton::HotwordAutomaton(const std::vector<HotwordPhrase>& phrases) : nodes_(1) {
  std::vector<std::vector<std::pair<int32_t, int32_t>>> edges(1);  // per node: (token, child)
  for (const HotwordPhrase& phrase : phrases) {
    int32_t node = 0;
    for (const int32_t token : phrase.tokens) {
      int32_t& slot = children_.insert(node, token);
      if (slot < 0) {
        slot = static_cast<int32_t>(nodes_.size());
        Node n;
        n.parent = node;
        n.weight = kNegInf;
        nodes_.push_back(n);
        edges[node].emplace_back(token, slot);
        edges.emplace_back();
      }
      const int32_t next = slot;
      nodes_[next].weight = std::max(nodes_[next].weight, phrase.weight);
      node = next;
    }
    if (node != 0) nodes_[node].end = true;
  }
  // Parents precede children in nodes_, so one pass in index order fills the path sums.
  for (size_t i = 1; i < nodes_.size(); ++i) {
    Node& n = nodes_[i];
    const Node& p = nodes_[n.parent];
    n.bonus = p.bonus + n.weight;
    n.end_base = n.end ? n.bonus : p.end_base;
  }
  // Failure links in breadth-first order: the longest proper suffix that is a node.
  std::deque<int32_t> queue{0};
  while (!queue.empty()) {
    const int32_t u = queue.front();
    queue.pop_front();
    for (const auto& [token, v] : edges[u]) {
      int32_t f = u == 0 ? -1 : nodes_[u].fail;
      while (f >= 0 && child(f, token) == 0) f = f == 0 ? -1 : nodes_[f].fail;
      nodes_[v].fail = f < 0 ? 0 : child(f, token);
      queue.push_back(v);
    }
  }
}

int32_t HotwordAutomaton::step(int32_t state, int32_t token, double* committed) const {
  int32_t next = child(state, token);
  while (next == 0 && state != 0) {
    state = nodes_[state].fail;
    next = child(state, token);
  }
  const Node& n = nodes_[next];
  if (n.end) *committed += n.bonus - nodes_[n.parent].end_base;
  return next;
}

// ---------------------------------------------------------------------------------------------
// CtcPrefixBeamSearch

CtcPrefixBeamSearch::CtcPrefixBeamSearch(std::vector<std::string> chars, std::vector<uint8_t> starts_word,
                                         CtcPrefixBeamSearchOptions options,
                                         const std::vector<HotwordPhrase>& hotwords, const NgramModel* lm,
                                         const std::vector<LexiconEntry>& lexicon)
    : chars_(std::move(chars)),
      starts_word_(std::move(starts_word)),
      options_(options),
      hotwords_(hotwords),
      lm_(lm) {
  options_.validate();
  const int64_t vocab = vocab_size();
  if (vocab < 1 || static_cast<int64_t>(starts_word_.size()) != vocab) {
    throw TensorError("tokens", "one or more tokens, with starts_word of the same length",
                      std::to_string(vocab) + " tokens, " + std::to_string(starts_word_.size()) + " flags");
  }
  if (options_.blank < 0 || options_.blank >= vocab) {
    throw TensorError("blank", "a token id in [0, " + std::to_string(vocab) + ")",
                      std::to_string(options_.blank));
  }
  for (size_t p = 0; p < hotwords.size(); ++p) {
    if (hotwords[p].tokens.empty())
      throw TensorError("hotwords", "phrases of one or more tokens", "an empty phrase");
    for (const int32_t token : hotwords[p].tokens) {
      if (token < 0 || token >= vocab || token == options_.blank) {
        throw TensorError("hotwords", "token ids in [0, " + std::to_string(vocab) + ") other than blank",
                          std::to_string(token) + " in phrase " + std::to_string(p));
      }
    }
  }
  scores_words_ = lm_ != nullptr || !lexicon.empty();
  if (!lexicon.empty()) {
    build_lexicon(lexicon);
  } else if (lm_ != nullptr) {
    const float none = -std::numeric_limits<float>::infinity();
    lexicon_words_.push_back(kUnkId);
    lexicon_best_.push_back(none);
    const NgramModel::State empty = lm_->null_context_state();
    NgramModel::State unused;
    for (size_t id = 0; id < lm_->vocab_size(); ++id) {
      if (id == kUnkId || id == kBosId || id == kEosId) continue;
      const float unigram = lm_->score_word(empty, static_cast<WordId>(id), &unused).log10_prob;
      int32_t node = 0;
      for (const char c : lm_->word(static_cast<WordId>(id))) {
        int32_t& next = lexicon_edges_.insert(node, static_cast<uint8_t>(c));
        if (next < 0) {
          next = static_cast<int32_t>(lexicon_words_.size());
          lexicon_words_.push_back(kUnkId);
          lexicon_best_.push_back(none);
        }
        node = next;
        lexicon_best_[node] = std::max(lexicon_best_[node], unigram);
      }
      lexicon_words_[node] = static_cast<WordId>(id);
    }
  }
  if (scores_words_ && options_.partial_word_lm && options_.unk_score_offset == kNegInf && vocab <= 64) {
    build_allowed();
  }
}

void CtcPrefixBeamSearch::build_lexicon(const std::vector<LexiconEntry>& lexicon) {
  by_tokens_ = true;
  const int64_t vocab = vocab_size();
  const float none = -std::numeric_limits<float>::infinity();
  const NgramModel::State empty = lm_ != nullptr ? lm_->null_context_state() : NgramModel::State();
  NgramModel::State unused;
  std::vector<std::vector<int32_t>> at(1);  // entries ending at each node
  lexicon_words_.push_back(kUnkId);
  lexicon_best_.push_back(none);
  for (size_t e = 0; e < lexicon.size(); ++e) {
    const LexiconEntry& entry = lexicon[e];
    if (entry.spelling.empty()) throw TensorError("lexicon", "spellings of one or more tokens", entry.word);
    const WordId id = lm_ != nullptr ? lm_->word_id(entry.word) : kUnkId;
    const float unigram = lm_ != nullptr ? lm_->score_word(empty, id, &unused).log10_prob : 0.0f;
    int32_t node = 0;
    for (const int32_t v : entry.spelling) {
      if (v < 0 || v >= vocab || v == options_.blank || chars_[v].empty()) {
        throw TensorError("lexicon",
                          "token ids in [0, " + std::to_string(vocab) + ") with characters, not blank",
                          std::to_string(v) + " in the spelling of " + entry.word);
      }
      int32_t& next = lexicon_edges_.insert(node, static_cast<uint32_t>(v));
      if (next < 0) {
        next = static_cast<int32_t>(lexicon_words_.size());
        lexicon_words_.push_back(kUnkId);
        lexicon_best_.push_back(none);
        at.emplace_back();
      }
      node = next;
      lexicon_best_[node] = std::max(lexicon_best_[node], unigram);
    }
    at[node].push_back(static_cast<int32_t>(e));
    entry_lm_.push_back(id);
    entry_words_.push_back(entry.word);
  }
  entry_start_.push_back(0);
  for (size_t node = 0; node < at.size(); ++node) {
    node_entries_.insert(node_entries_.end(), at[node].begin(), at[node].end());
    entry_start_.push_back(static_cast<int32_t>(node_entries_.size()));
  }
}

int32_t CtcPrefixBeamSearch::spell(int32_t node, int64_t v) const {
  if (by_tokens_)
    return chars_[v].empty() || node < 0 ? node : lexicon_edges_.find(node, static_cast<uint32_t>(v));
  for (size_t i = 0; i < chars_[v].size() && node >= 0; ++i) {
    node = lexicon_edges_.find(node, static_cast<uint8_t>(chars_[v][i]));
  }
  return node;
}

double CtcPrefixBeamSearch::complete(int32_t lexicon, const NgramModel::State& in, NgramModel::State* out,
                                     int32_t* entry) const {
  *entry = -1;
  if (!by_tokens_) {
    const WordId word = lexicon >= 0 ? lexicon_words_[lexicon] : kUnkId;
    const double lm =
        lm_ != nullptr ? weighted(options_.alpha, lm_->score_word(in, word, out).log10_prob) : 0.0;
    return word == kUnkId ? lm + options_.unk_score_offset : lm;
  }
  const int32_t begin = lexicon >= 0 ? entry_start_[lexicon] : 0,
                end = lexicon >= 0 ? entry_start_[lexicon + 1] : 0;
  if (begin == end) {
    // A spelling outside the lexicon: <unk>, at unk_score_offset.
    const double lm =
        lm_ != nullptr ? weighted(options_.alpha, lm_->score_word(in, kUnkId, out).log10_prob) : 0.0;
    return lm + options_.unk_score_offset;
  }
  double best = kNegInf;
  for (int32_t i = begin; i < end; ++i) {
    const int32_t e = node_entries_[i];
    NgramModel::State next;
    const double score =
        lm_ != nullptr ? weighted(options_.alpha, lm_->score_word(in, entry_lm_[e], &next).log10_prob) : 0.0;
    if (*entry < 0 || score > best) {
      best = score;
      *entry = e;
      if (lm_ != nullptr) *out = next;
    }
  }
  return best;
}

void CtcPrefixBeamSearch::build_allowed() {
  const int64_t vocab = vocab_size();
  uint64_t starters = 0, continuations_from_root = 0;
  for (int64_t v = 0; v < vocab; ++v) {
    if (v == options_.blank || spell(0, v) < 0) continue;
    (starts_word_[v] ? starters : continuations_from_root) |= uint64_t{1} << v;
  }
  allowed_empty_ = starters | continuations_from_root;
  allowed_.assign(lexicon_words_.size(), 0);
  for (size_t node = 0; node < lexicon_words_.size(); ++node) {
    const bool ends_word =
        by_tokens_ ? entry_start_[node] != entry_start_[node + 1] : lexicon_words_[node] != kUnkId;
    uint64_t bits = ends_word ? starters : 0;
    for (int64_t v = 0; v < vocab; ++v) {
      if (v != options_.blank && !starts_word_[v] && spell(static_cast<int32_t>(node), v) >= 0)
        bits |= uint64_t{1} << v;
    }
    allowed_[node] = bits;
  }
}

std::vector<std::vector<CtcHypothesis>> CtcPrefixBeamSearch::decode(const float* data, int64_t batch,
                                                                    int64_t stride_batch,
                                                                    int64_t stride_frame,
                                                                    const int64_t* lengths, int64_t nbest,
                                                                    int num_threads) const {
  std::vector<std::vector<CtcHypothesis>> results(batch);
  parallel_for(batch, resolve_num_threads(num_threads), [&](int64_t b) {
    Stream stream(*this, b);
    stream.accept(data + b * stride_batch, lengths[b], stride_frame);
    results[b] = stream.best(nbest);
  });
  return results;
}

// ---------------------------------------------------------------------------------------------
// Stream

CtcPrefixBeamSearch::Stream::Stream(const CtcPrefixBeamSearch& search, int64_t utterance)
    : search_(search), utterance_(utterance), row_(search.vocab_size()) {
  Node root{};
  root.parent = -1;
  root.token = -1;
  root.frame = -1;
  root.lexicon = kNoWord;
  root.stamp = -1;
  root.lm_state = search_.lm_ != nullptr ? 0 : -1;
  nodes_.push_back(root);
  if (search_.lm_ != nullptr) {
    lm_states_.push_back(search_.options_.score_boundary ? search_.lm_->begin_sentence_state()
                                                         : search_.lm_->null_context_state());
  }
  first_pending_state_ = static_cast<int32_t>(lm_states_.size());
  beams_.push_back({0, 0.0, kNegInf, 0.0});
}

int32_t CtcPrefixBeamSearch::Stream::child(int32_t parent, int32_t token) {
  const int32_t found = children_.find(parent, token);
  return found >= 0 ? found : make_child(parent, token);
}

int32_t CtcPrefixBeamSearch::Stream::make_child(int32_t parent, int32_t token) {
  const CtcPrefixBeamSearchOptions& o = search_.options_;
  const NgramModel* lm = search_.lm_;
  const int32_t id = static_cast<int32_t>(nodes_.size());
  Node n = nodes_[parent];
  n.parent = parent;
  n.token = token;
  n.frame = -1;
  n.stamp = -1;
  const std::string& chars = search_.chars_[token];
  if (search_.starts_word_[token]) {
    if (n.lexicon != kNoWord && search_.scores_words_) {
      NgramModel::State next;
      int32_t entry;
      const double score =
          search_.complete(n.lexicon, lm != nullptr ? lm_states_[n.lm_state] : next, &next, &entry);
      if (lm != nullptr) {
        n.lm_state = static_cast<int32_t>(lm_states_.size());
        lm_states_.push_back(next);
      }
      n.lm_sum = n.lm_sum + score;
      n.n_words += 1;
    }
    n.lexicon = kNoWord;
  }
  if (!chars.empty()) {
    if (n.lexicon == kNoWord) n.lexicon = 0;
    n.lexicon = search_.spell(n.lexicon, token);
  }
  n.hot_state = search_.hotwords_.step(n.hot_state, token, &n.hot_committed);
  double extra = search_.scores_words_ ? n.lm_sum + o.beta * n.n_words : 0.0;
  extra = extra + n.hot_committed + search_.hotwords_.loan(n.hot_state);
  if (search_.scores_words_ && o.partial_word_lm && n.lexicon != kNoWord) {
    extra = extra + (n.lexicon == kUnknownWord ? o.unk_score_offset
                                               : weighted(o.alpha, search_.lexicon_best_[n.lexicon]));
  }
  n.extra = extra;
  nodes_.push_back(n);
  return id;
}

double CtcPrefixBeamSearch::Stream::merge(double a, double b) const {
  return search_.options_.viterbi ? std::max(a, b) : log_add(a, b);
}

CtcPrefixBeamSearch::Stream::Entry& CtcPrefixBeamSearch::Stream::candidate(int32_t node) {
  Node& n = nodes_[node];
  if (n.stamp != frame_) {
    n.stamp = static_cast<int32_t>(frame_);
    n.slot = static_cast<int32_t>(candidates_.size());
    candidates_.push_back({node, kNegInf, kNegInf, 0.0});
  }
  return candidates_[n.slot];
}

bool CtcPrefixBeamSearch::Stream::prefix_less(int32_t a, int32_t b) const {
  auto path = [&](int32_t n) {
    std::vector<int32_t> tokens;
    for (; n > 0; n = nodes_[n].parent) tokens.push_back(nodes_[n].token);
    std::reverse(tokens.begin(), tokens.end());
    return tokens;
  };
  return path(a) < path(b);
}

bool CtcPrefixBeamSearch::Stream::ranks_before(const Entry& a, const Entry& b) const {
  if (a.score != b.score) return a.score > b.score;
  return a.node != b.node && prefix_less(a.node, b.node);
}

void CtcPrefixBeamSearch::Stream::step(const float* row) {
  const CtcPrefixBeamSearchOptions& o = search_.options_;
  const int64_t vocab = search_.vocab_size();
  tokens_.clear();
  int64_t most_likely = 0;
  for (int64_t v = 0; v < vocab; ++v) {
    const float x = row[v];
    if (std::isnan(x) || x == std::numeric_limits<float>::infinity()) {
      throw TensorError(
          "log_probs", "finite log-probabilities or -inf",
          std::string(std::isnan(x) ? "NaN" : "+inf") + " at " + position(utterance_, frame_, v));
    }
    row_[v] = x;
    if (x > row_[most_likely]) most_likely = v;
    if (v != o.blank && x >= o.token_min_logp) tokens_.push_back(static_cast<int32_t>(v));
  }
  if (o.extend_best_token && most_likely != o.blank && row_[most_likely] < o.token_min_logp) {
    tokens_.push_back(static_cast<int32_t>(most_likely));
  }
  if (row_[o.blank] > o.blank_skip_threshold) {
    // A blank frame of probability 1: scores, ranks and pruning stay as they are.
    for (Entry& e : beams_) {
      e.p_b = merge(e.p_b, e.p_nb);
      e.p_nb = kNegInf;
    }
    ++frame_;
    return;
  }
  ++searched_;
  auto token_before = [&](int32_t a, int32_t b) { return row_[a] != row_[b] ? row_[a] > row_[b] : a < b; };
  if (static_cast<int64_t>(tokens_.size()) > o.token_topk) {
    std::nth_element(tokens_.begin(), tokens_.begin() + o.token_topk, tokens_.end(), token_before);
    tokens_.resize(o.token_topk);
  }
  std::sort(tokens_.begin(), tokens_.end(), token_before);

  candidates_.clear();
  const double blank_score = row_[o.blank];
  // A lower bound of the best score this frame: every prefix below it - beam_threshold is pruned.
  // A new prefix has one parent, so its first term is its final score and it can be dropped at
  // once (the last pending node, with its LM state); prefixes that exist may get more terms.
  double best = kNegInf;
  auto note = [&](const Entry& e) { best = std::max(best, std::max(e.p_b, e.p_nb) + nodes_[e.node].extra); };
  for (size_t i = 0; i < beams_.size(); ++i) {
    const Entry beam = beams_[i];
    const double total = merge(beam.p_b, beam.p_nb);
    Entry& self = candidate(beam.node);
    self.p_b = merge(self.p_b, total + blank_score);
    note(self);
    const int32_t last = nodes_[beam.node].token;
    // Tokens that make the prefix impossible (-inf) are pruned anyway when the floor is finite.
    uint64_t allowed = ~uint64_t{0};
    if (!search_.allowed_.empty() && best - o.beam_threshold > kNegInf) {
      const int32_t lexicon = nodes_[beam.node].lexicon;
      if (lexicon == kNoWord) allowed = search_.allowed_empty_;
      if (lexicon >= 0) allowed = search_.allowed_[lexicon];
    }
    // A -inf term through a token creates no prefix (see the reference).
    auto extend = [&](int32_t node, double term) {
      if (term == kNegInf) return;
      if (node >= first_pending_ && term + nodes_[node].extra < best - o.beam_threshold) {
        if (nodes_.back().lm_state >= first_pending_state_) lm_states_.pop_back();
        nodes_.pop_back();
        return;
      }
      Entry& e = candidate(node);
      e.p_nb = merge(e.p_nb, term);
      note(e);
    };
    for (const int32_t c : tokens_) {
      const double x = row_[c];
      const bool possible = c >= 64 || ((allowed >> c) & 1);
      if (c == last) {
        extend(beam.node, beam.p_nb + x);
        if (possible && beam.p_b + x != kNegInf) extend(child(beam.node, c), beam.p_b + x);
      } else if (possible && total + x != kNegInf) {
        extend(child(beam.node, c), total + x);
      }
    }
  }
  for (Entry& e : candidates_) e.score = merge(e.p_b, e.p_nb) + nodes_[e.node].extra;
  if (o.recombine && search_.lm_ != nullptr) recombine();
  auto before = [&](const Entry& a, const Entry& b) { return ranks_before(a, b); };
  const size_t keep = std::min<size_t>(candidates_.size(), static_cast<size_t>(o.beam));
  if (keep < candidates_.size()) {
    std::nth_element(candidates_.begin(), candidates_.begin() + keep, candidates_.end(), before);
  }
  std::sort(candidates_.begin(), candidates_.begin() + keep, before);
  const double floor = candidates_[0].score - o.beam_threshold;
  beams_.clear();
  for (size_t i = 0; i < keep && candidates_[i].score >= floor; ++i) beams_.push_back(candidates_[i]);
  keep_survivors();
  ++frame_;
}

void CtcPrefixBeamSearch::Stream::recombine() {
  // In rank order, a candidate is kept when no kept one has its future (found through an
  // open-addressing table of kept candidates by the future's hash); beam kept ones are enough,
  // so the candidates are put in rank order a block at a time, as far as the walk goes.
  const CtcPrefixBeamSearchOptions& o = search_.options_;
  auto before = [&](const Entry& a, const Entry& b) { return ranks_before(a, b); };
  const size_t limit = std::min<size_t>(candidates_.size(), static_cast<size_t>(o.beam));
  size_t ranked = 0;
  auto rank_next = [&] {
    const size_t end = std::min(candidates_.size(), std::max(2 * ranked, 2 * limit));
    if (end < candidates_.size())
      std::nth_element(candidates_.begin() + ranked, candidates_.begin() + end, candidates_.end(), before);
    std::sort(candidates_.begin() + ranked, candidates_.begin() + end, before);
    ranked = end;
  };
  rank_next();
  const double floor = candidates_[0].score - o.beam_threshold;
  size_t capacity = 16;
  while (capacity < 2 * limit) capacity *= 2;
  futures_.assign(capacity, -1);
  kept_.clear();
  for (size_t next = 0; next < candidates_.size() && kept_.size() < limit; ++next) {
    if (next == ranked) rank_next();
    const Entry& e = candidates_[next];
    if (e.score < floor) break;
    const Node& n = nodes_[e.node];
    uint64_t h = lm_states_[n.lm_state].hash();
    for (const int32_t part : {n.lexicon, n.token, n.hot_state}) {
      h = (h ^ static_cast<uint32_t>(part)) * 0x9E3779B97F4A7C15ull;
      h ^= h >> 29;
    }
    size_t i = h & (capacity - 1);
    bool seen = false;
    for (; futures_[i] >= 0 && !seen; i = (i + 1) & (capacity - 1)) {
      const Node& m = nodes_[kept_[futures_[i]].node];
      seen = m.lexicon == n.lexicon && m.token == n.token && m.hot_state == n.hot_state &&
             lm_states_[m.lm_state] == lm_states_[n.lm_state];
    }
    if (seen) continue;
    futures_[i] = static_cast<int32_t>(kept_.size());
    kept_.push_back(e);
  }
  candidates_.swap(kept_);
}

void CtcPrefixBeamSearch::Stream::keep_survivors() {
  // Surviving new prefixes move down to the end of the trie, in index order (so a move never
  // overwrites a node still to move), with their LM states; the others are dropped.
  survivors_.clear();
  for (size_t i = 0; i < beams_.size(); ++i) {
    if (beams_[i].node >= first_pending_) survivors_.push_back(static_cast<int32_t>(i));
  }
  std::sort(survivors_.begin(), survivors_.end(),
            [&](int32_t a, int32_t b) { return beams_[a].node < beams_[b].node; });
  int32_t next = first_pending_;
  int32_t next_state = first_pending_state_;
  for (const int32_t i : survivors_) {
    Node n = nodes_[beams_[i].node];
    if (n.lm_state >= first_pending_state_) {
      lm_states_[next_state] = lm_states_[n.lm_state];
      n.lm_state = next_state++;
    }
    n.frame = static_cast<int32_t>(frame_);
    nodes_[next] = n;
    children_.insert(n.parent, n.token) = next;
    beams_[i].node = next++;
  }
  nodes_.resize(next);
  lm_states_.resize(next_state);
  first_pending_ = next;
  first_pending_state_ = next_state;
}

void CtcPrefixBeamSearch::Stream::accept(const float* frames, int64_t count, int64_t stride) {
  for (int64_t t = 0; t < count; ++t) step(frames + t * stride);
}

CtcPrefixBeamSearch::Stream::Final CtcPrefixBeamSearch::Stream::final_extra(int32_t node) const {
  const CtcPrefixBeamSearchOptions& o = search_.options_;
  const NgramModel* lm = search_.lm_;
  const Node& n = nodes_[node];
  if (!search_.scores_words_) return {n.hot_committed, 0.0};
  double lm_sum = n.lm_sum;
  int32_t n_words = n.n_words;
  NgramModel::State state = lm != nullptr ? lm_states_[n.lm_state] : NgramModel::State(), next;
  if (n.lexicon != kNoWord) {
    int32_t entry;
    lm_sum = lm_sum + search_.complete(n.lexicon, state, &next, &entry);
    n_words += 1;
    state = next;
  }
  if (lm != nullptr && o.score_boundary) {
    lm_sum = lm_sum + weighted(o.alpha, lm->score_word(state, kEosId, &next).log10_prob);
  }
  return {lm_sum + o.beta * n_words + n.hot_committed, lm_sum};
}

CtcHypothesis CtcPrefixBeamSearch::Stream::hypothesis(const Entry& entry) const {
  CtcHypothesis h;
  for (int32_t n = entry.node; n > 0; n = nodes_[n].parent) {
    h.tokens.push_back(nodes_[n].token);
    h.token_frames.push_back(nodes_[n].frame);
  }
  std::reverse(h.tokens.begin(), h.tokens.end());
  std::reverse(h.token_frames.begin(), h.token_frames.end());
  std::string word;
  int32_t first = 0, last = 0;
  // With a lexicon, a word is its entry's (replaying the completions picks the homophones).
  int32_t lexicon = kNoWord;
  NgramModel::State state = search_.lm_ != nullptr ? lm_states_[0] : NgramModel::State(), next;
  auto finish_word = [&] {
    if (search_.by_tokens_) {
      int32_t e;
      search_.complete(lexicon, state, &next, &e);
      state = next;
      if (e >= 0) word = search_.entry_words_[e];
    }
    h.words.push_back(std::move(word));
    h.word_frames.emplace_back(first, last);
    word.clear();
    lexicon = kNoWord;
  };
  for (size_t i = 0; i < h.tokens.size(); ++i) {
    const std::string& chars = search_.chars_[h.tokens[i]];
    if (search_.starts_word_[h.tokens[i]] && !word.empty()) finish_word();
    if (!chars.empty()) {
      if (word.empty()) first = h.token_frames[i];
      word += chars;
      last = h.token_frames[i];
      lexicon = search_.spell(lexicon == kNoWord ? 0 : lexicon, h.tokens[i]);
    }
  }
  if (!word.empty()) finish_word();
  const Final f = final_extra(entry.node);
  h.am_score = merge(entry.p_b, entry.p_nb);
  h.score = h.am_score + f.extra;
  h.lm_score = f.lm_sum;
  return h;
}

std::vector<CtcHypothesis> CtcPrefixBeamSearch::Stream::best(int64_t nbest) const {
  std::vector<Entry> ranked = beams_;
  for (Entry& e : ranked) e.score = merge(e.p_b, e.p_nb) + final_extra(e.node).extra;
  const size_t keep = std::min<size_t>(ranked.size(), static_cast<size_t>(std::max<int64_t>(nbest, 0)));
  std::partial_sort(ranked.begin(), ranked.begin() + keep, ranked.end(),
                    [&](const Entry& a, const Entry& b) { return ranks_before(a, b); });
  std::vector<CtcHypothesis> out;
  for (size_t i = 0; i < keep; ++i) out.push_back(hypothesis(ranked[i]));
  return out;
}

// ---------------------------------------------------------------------------------------------
// ctc_best_path

std::vector<int32_t> ctc_best_path(const float* log_probs, int64_t frames, int64_t vocab,
                                   const std::vector<int32_t>& tokens, int32_t blank) {
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= vocab || tokens[i] == blank) {
      throw TensorError("tokens", "ids in [0, " + std::to_string(vocab) + ") other than blank",
                        std::to_string(tokens[i]) + " at [" + std::to_string(i) + "]");
    }
  }
  std::vector<int32_t> path;
  if (frames == 0) return path;
  const size_t n = 2 * tokens.size() + 1;  // blank, t_1, blank, t_2, ..., t_L, blank
  std::vector<int32_t> label(n, blank);
  for (size_t i = 0; i < tokens.size(); ++i) label[2 * i + 1] = tokens[i];
  std::vector<double> score(n, kNegInf), next(n);
  std::vector<uint8_t> back(static_cast<size_t>(frames) * n, 0);
  score[0] = log_probs[label[0]];
  if (n > 1) score[1] = log_probs[label[1]];
  for (int64_t t = 1; t < frames; ++t) {
    const float* row = log_probs + t * vocab;
    uint8_t* choice = back.data() + t * n;
    for (size_t s = 0; s < n; ++s) {
      double best = score[s];
      uint8_t from = 0;
      if (s >= 1 && score[s - 1] > best) best = score[s - 1], from = 1;
      if (s >= 2 && label[s] != blank && label[s] != label[s - 2] && score[s - 2] > best)
        best = score[s - 2], from = 2;
      choice[s] = from;
      next[s] = best + row[label[s]];
    }
    score.swap(next);
  }
  size_t state = n == 1 || score[n - 1] >= score[n - 2] ? n - 1 : n - 2;
  path.resize(frames);
  for (int64_t t = frames - 1; t >= 0; --t) {
    path[t] = label[state];
    state -= back[t * n + state];
  }
  return path;
}

}  // namespace speechdecode

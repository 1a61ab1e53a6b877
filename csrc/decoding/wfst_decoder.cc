#include "decoding/wfst_decoder.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "common/errors.h"
#include "common/parallel.h"
#include "decoding/wfst_graph.h"

namespace speechdecode {
namespace {

// Source of a token or link that does not exist (the start token's).
constexpr int32_t kNoSource = std::numeric_limits<int32_t>::min();
constexpr double kInf = std::numeric_limits<double>::infinity();
// Without a lattice, tokens off every active token's best path are dropped once the store has
// grown to twice its size after the last collection (and at least this many tokens).
constexpr size_t kMinGcTokens = 1 << 14;

std::string at(int64_t i) { return " at [" + std::to_string(i) + "]"; }

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

}  // namespace

WfstGraph::WfstGraph(const GraphArrays& graph) : num_tokens_(graph.num_tokens), blank_(graph.blank) {
  const std::vector<int32_t> order = check_graph(graph);
  const int32_t num_states = static_cast<int32_t>(graph.num_states);
  start_ = static_cast<int32_t>(graph.start);
  final_.assign(graph.final_weights, graph.final_weights + num_states);
  arcs_.resize(graph.num_arcs);
  for (int64_t a = 0; a < graph.num_arcs; ++a) {
    arcs_[a] = {graph.ilabels[a], graph.olabels[a], graph.weights[a], graph.nextstates[a]};
  }
  states_.resize(num_states);
  for (int32_t s = 0; s < num_states; ++s) {
    const int32_t begin = static_cast<int32_t>(graph.arc_offsets[s]),
                  end = static_cast<int32_t>(graph.arc_offsets[s + 1]);
    int32_t emitting = begin;
    while (emitting < end && arcs_[emitting].ilabel == 0) ++emitting;
    states_[s] = {begin, emitting, end, 0};
  }
  for (int32_t i = 0; i < num_states; ++i) states_[order[i]].rank = i;
}

void WfstOptions::validate() const {
  auto text = [](double value) { return std::to_string(value); };
  if (!(beam > 0)) throw TensorError("beam", "a number (not NaN) > 0", text(beam));
  if (max_active < 1) throw TensorError("max_active", "an integer >= 1", std::to_string(max_active));
  if (!(acoustic_scale > 0) || !std::isfinite(acoustic_scale)) {
    throw TensorError("acoustic_scale", "a finite number > 0", text(acoustic_scale));
  }
  if (std::isnan(blank_skip_threshold))
    throw TensorError("blank_skip_threshold", "a number (not NaN)", "nan");
  if (!(lattice_beam >= 0)) throw TensorError("lattice_beam", "a number (not NaN) >= 0", text(lattice_beam));
  if (nbest < 1) throw TensorError("nbest", "an integer >= 1", std::to_string(nbest));
  if (word_boundary < -1) {
    throw TensorError("word_boundary", "-1 (none) or a token id >= 0", std::to_string(word_boundary));
  }
  if (max_nbest_expansions < 1) {
    throw TensorError("max_nbest_expansions", "an integer >= 1", std::to_string(max_nbest_expansions));
  }
}

WfstSearch::WfstSearch(std::shared_ptr<const WfstGraph> graph, const WfstOptions& options)
    : graph_(std::move(graph)), options_(options), lattice_(options.nbest > 1) {
  options_.validate();
  if (options_.word_boundary >= graph_->num_tokens()) {
    throw TensorError("word_boundary",
                      "-1 (none) or a token id in [0, " + std::to_string(graph_->num_tokens()) + ")",
                      std::to_string(options_.word_boundary));
  }
  slot_.assign(graph_->num_states(), -1);
  queued_.assign(graph_->num_states(), 0);
  acoustic_.resize(graph_->num_tokens());
  start();
}

inline void WfstSearch::add_candidate(int32_t state, double cost, int32_t src, int32_t arc, float log_prob,
                                      bool lattice) {
  int32_t p = slot_[state];
  if (p < 0) {
    p = static_cast<int32_t>(pending_.size());
    slot_[state] = p;
    pending_.push_back({cost, state, src, arc, log_prob, -1});
  } else if (cost < pending_[p].cost) {
    Pending& q = pending_[p];
    q.cost = cost;
    q.src = src;
    q.arc = arc;
    q.log_prob = log_prob;
  }
  if (lattice) {
    pending_links_.push_back({cost, src, arc, log_prob, pending_[p].link_head});
    pending_[p].link_head = static_cast<int32_t>(pending_links_.size() - 1);
  }
}

void WfstSearch::reset() {
  frames_ = 0;
  gc_threshold_ = kMinGcTokens;
  tokens_.clear();
  links_.clear();
  step_frame_.clear();
  active_.clear();
  start();
}

void WfstSearch::start() {
  pending_.clear();
  pending_links_.clear();
  add_candidate(graph_->start(), 0.0, kNoSource, -1, 0.0f, false);
  double best = 0.0;
  expand_epsilon(best);
  commit(best, -1);
}

void WfstSearch::expand_epsilon(double& best) {
  const WfstGraph& g = *graph_;
  const double beam = options_.beam;
  // States are expanded in epsilon-rank order, keyed (rank, state). Those reached by emitting
  // arcs are sorted once; the few first reached inside the closure (back-off and hub states)
  // go through a heap, merged with the sorted ones by rank.
  auto key = [&g](int32_t s) { return pair_key(g.epsilon_rank(s), s); };
  order_.clear();
  for (const Pending& p : pending_) {
    if (g.has_epsilon(p.state) && p.cost <= best + beam) {
      order_.push_back(key(p.state));
      queued_[p.state] = 1;
    }
  }
  std::sort(order_.begin(), order_.end());
  heap_.clear();
  const std::greater<uint64_t> later;
  for (size_t i = 0; i < order_.size() || !heap_.empty();) {
    uint64_t next_key;
    if (heap_.empty() || (i < order_.size() && order_[i] < heap_.front())) {
      next_key = order_[i++];
    } else {
      std::pop_heap(heap_.begin(), heap_.end(), later);
      next_key = heap_.back();
      heap_.pop_back();
    }
    const int32_t s = static_cast<int32_t>(next_key & 0xFFFFFFFFu);
    queued_[s] = 0;
    const int32_t p = slot_[s];
    const double cost = pending_[p].cost;
    if (cost > best + beam) continue;
    for (int32_t a = g.arcs_begin(s); a < g.emitting_begin(s); ++a) {
      const WfstArc& arc = g.arc(a);
      const double next = cost + arc.weight;
      if (next > best + beam) continue;
      best = std::min(best, next);
      add_candidate(arc.nextstate, next, -p - 1, a, 0.0f, lattice_);
      const int32_t n = arc.nextstate;
      if (!queued_[n] && g.has_epsilon(n)) {
        queued_[n] = 1;
        heap_.push_back(key(n));
        std::push_heap(heap_.begin(), heap_.end(), later);
      }
    }
  }
}

void WfstSearch::commit(double best, int32_t frame) {
  const int32_t step = static_cast<int32_t>(step_frame_.size());
  step_frame_.push_back(frame);
  const size_t n = pending_.size();
  double cutoff = best + options_.beam;
  if (static_cast<int64_t>(n) > options_.max_active) {
    costs_.resize(n);
    for (size_t i = 0; i < n; ++i) costs_[i] = pending_[i].cost;
    std::nth_element(costs_.begin(), costs_.begin() + (options_.max_active - 1), costs_.end());
    cutoff = std::min(cutoff, costs_[options_.max_active - 1]);
  }
  // global_[p]: 1 = kept, then the committed token id; -1 = dropped. A kept token keeps the
  // epsilon predecessors of its best path in this frame, so its traceback exists.
  global_.assign(n, -1);
  for (size_t p = 0; p < n; ++p) {
    if (pending_[p].cost > cutoff) continue;
    for (int32_t q = static_cast<int32_t>(p); global_[q] < 0;) {
      global_[q] = 1;
      const int32_t src = pending_[q].src;
      if (src >= 0 || src == kNoSource) break;
      q = -src - 1;
    }
  }
  int32_t next_id = static_cast<int32_t>(tokens_.size());
  for (size_t p = 0; p < n; ++p) {
    if (global_[p] > 0) global_[p] = next_id++;
  }
  auto resolve = [this](int32_t src) {
    if (src == kNoSource) return -1;
    return src >= 0 ? src : global_[-src - 1];
  };
  const double lattice_cutoff = best + options_.lattice_beam;
  active_.clear();
  for (size_t p = 0; p < n; ++p) {
    const Pending& q = pending_[p];
    slot_[q.state] = -1;
    if (global_[p] < 0) continue;
    Token t{q.cost, q.state, step, resolve(q.src), q.arc, q.log_prob, 0, 0};
    if (lattice_) {
      t.links_begin = static_cast<int32_t>(links_.size());
      if (t.bp_src >= 0) links_.push_back({t.bp_src, q.arc, q.log_prob});
      for (int32_t l = q.link_head; l >= 0; l = pending_links_[l].next) {
        const PendingLink& link = pending_links_[l];
        if (link.total > lattice_cutoff || (link.src == q.src && link.arc == q.arc)) continue;
        const int32_t src = resolve(link.src);
        if (src >= 0) links_.push_back({src, link.arc, link.log_prob});
      }
      t.links_end = static_cast<int32_t>(links_.size());
    }
    active_.push_back({q.state, static_cast<int32_t>(tokens_.size()), q.cost});
    tokens_.push_back(t);
  }
}

void WfstSearch::accept(const float* data, int64_t frames, int64_t stride, int64_t utterance) {
  const WfstGraph& g = *graph_;
  const int64_t vocab = g.num_tokens();
  const double scale = options_.acoustic_scale;
  const double beam = options_.beam;
  for (int64_t i = 0; i < frames; ++i, ++frames_) {
    const float* row = data + i * stride;
    int bad = 0;
    for (int64_t v = 0; v < vocab; ++v) {
      bad |= !(row[v] < std::numeric_limits<float>::infinity());
      acoustic_[v] = -scale * row[v];
    }
    if (bad) {
      const int64_t v = std::find_if(row, row + vocab, [](float x) { return !(x < kInf); }) - row;
      throw TensorError("log_probs", "finite log-probabilities or -inf",
                        std::string(std::isnan(row[v]) ? "NaN" : "+inf") + " in utterance " +
                            std::to_string(utterance) + " at frame " + std::to_string(frames_) + ", token " +
                            std::to_string(v));
    }
    if (row[g.blank()] > options_.blank_skip_threshold) continue;
    pending_.clear();
    pending_links_.clear();
    double best = kInf;
    // The best token goes first: its arcs set a tight cutoff for everyone else's.
    size_t first = 0;
    for (size_t k = 1; k < active_.size(); ++k) {
      if (active_[k].cost < active_[first].cost) first = k;
    }
    for (size_t k = 0; k < active_.size(); ++k) {
      const Active& tok = active_[k == 0 ? first : (k == first ? 0 : k)];
      const double cost = tok.cost;
      for (int32_t a = g.emitting_begin(tok.state), end = g.arcs_end(tok.state); a < end; ++a) {
        const WfstArc& arc = g.arc(a);
        const double next = cost + arc.weight + acoustic_[arc.ilabel - 1];
        if (next > best + beam) continue;
        best = std::min(best, next);
        add_candidate(arc.nextstate, next, tok.token, a, row[arc.ilabel - 1], lattice_);
      }
    }
    expand_epsilon(best);
    commit(best, static_cast<int32_t>(frames_));
    if (!lattice_ && tokens_.size() > gc_threshold_) collect_garbage();
  }
}

void WfstSearch::collect_garbage() {
  // Mark the tokens on the best paths of the active ones, give them new ids in order, then
  // move them down (a new id is never above the old one) with their back-pointers renumbered.
  gc_map_.assign(tokens_.size(), -1);
  for (const Active& a : active_) {
    for (int32_t t = a.token; t >= 0 && gc_map_[t] < 0; t = tokens_[t].bp_src) gc_map_[t] = 0;
  }
  int32_t kept = 0;
  for (int32_t& id : gc_map_) {
    if (id == 0) id = kept++;
  }
  for (size_t t = 0; t < tokens_.size(); ++t) {
    if (gc_map_[t] < 0) continue;
    Token token = tokens_[t];
    if (token.bp_src >= 0) token.bp_src = gc_map_[token.bp_src];
    tokens_[gc_map_[t]] = token;
  }
  tokens_.resize(kept);
  for (Active& a : active_) a.token = gc_map_[a.token];
  gc_threshold_ = std::max(kMinGcTokens, 2 * tokens_.size());
}

std::vector<WfstSearch::PathArc> WfstSearch::trace(int32_t token) const {
  std::vector<PathArc> path;
  for (int32_t t = token; tokens_[t].bp_src >= 0; t = tokens_[t].bp_src) {
    path.push_back({tokens_[t].bp_arc, tokens_[t].bp_log_prob, tokens_[t].step});
  }
  std::reverse(path.begin(), path.end());
  return path;
}

CtcHypothesis WfstSearch::make_result(const std::vector<PathArc>& path, double final_cost,
                                      bool reached_final) const {
  const WfstGraph& g = *graph_;
  const int32_t blank = static_cast<int32_t>(g.blank());
  CtcHypothesis r;
  r.reached_final = reached_final;
  double am = 0.0, graph_cost = final_cost;
  int32_t previous_label = blank, previous_frame = -2;
  std::vector<size_t> word_start;
  std::vector<int32_t> word_frame;
  for (const PathArc& p : path) {
    const WfstArc& arc = g.arc(p.arc);
    const int32_t frame = step_frame_[p.step];
    am += p.log_prob;
    graph_cost += arc.weight;
    if (arc.olabel != 0) {
      r.word_ids.push_back(arc.olabel);
      word_start.push_back(r.tokens.size());
      word_frame.push_back(std::max(frame, 0));
    }
    if (arc.ilabel != 0) {
      const int32_t label = arc.ilabel - 1;
      if (frame != previous_frame + 1) previous_label = blank;
      if (label != blank && label != previous_label) {
        r.tokens.push_back(label);
        r.token_frames.push_back(frame);
      }
      previous_label = label;
      previous_frame = frame;
    }
  }
  if (options_.word_boundary >= 0) {
    std::vector<std::pair<int32_t, int32_t>> groups;
    int32_t first = -1, last = -1;
    for (size_t i = 0; i <= r.tokens.size(); ++i) {
      const bool end = i == r.tokens.size();
      if (!end && r.tokens[i] != options_.word_boundary) {
        if (first < 0) first = r.token_frames[i];
        last = r.token_frames[i];
      } else if (first >= 0) {
        groups.emplace_back(first, last);
        first = -1;
      }
    }
    if (groups.size() == r.word_ids.size()) {
      r.word_frames = std::move(groups);
      word_start.clear();
    }
  }
  if (!word_start.empty()) word_start[0] = 0;
  for (size_t k = 0; k < word_start.size(); ++k) {
    const size_t begin = word_start[k];
    const size_t end = k + 1 < word_start.size() ? word_start[k + 1] : r.tokens.size();
    if (begin < end) {
      r.word_frames.emplace_back(r.token_frames[begin], r.token_frames[end - 1]);
    } else {
      r.word_frames.emplace_back(word_frame[k], word_frame[k]);
    }
  }
  r.am_score = am;
  r.lm_score = -graph_cost;
  r.score = options_.acoustic_scale * am - graph_cost;
  return r;
}

std::optional<CtcHypothesis> WfstSearch::partial() const {
  if (active_.empty()) return std::nullopt;
  size_t best = 0;
  for (size_t k = 1; k < active_.size(); ++k) {
    if (active_[k].cost < active_[best].cost) best = k;
  }
  return make_result(trace(active_[best].token), 0.0, false);
}

std::vector<CtcHypothesis> WfstSearch::finish() const {
  std::vector<std::pair<int32_t, double>> ends;
  for (const Active& a : active_) {
    const float w = graph_->final_weight(a.state);
    if (w < std::numeric_limits<float>::infinity()) ends.emplace_back(a.token, w);
  }
  const bool reached_final = !ends.empty();
  if (!reached_final) {
    for (const Active& a : active_) ends.emplace_back(a.token, 0.0);
  }
  if (ends.empty()) return {};
  if (lattice_) return nbest_from_lattice(ends, reached_final);
  size_t best = 0;
  for (size_t k = 1; k < ends.size(); ++k) {
    if (tokens_[ends[k].first].cost + ends[k].second < tokens_[ends[best].first].cost + ends[best].second)
      best = k;
  }
  return {make_result(trace(ends[best].first), ends[best].second, reached_final)};
}

std::vector<CtcHypothesis> WfstSearch::nbest_from_lattice(const std::vector<std::pair<int32_t, double>>& ends,
                                                          bool reached_final) const {
  const WfstGraph& g = *graph_;
  const double scale = options_.acoustic_scale;
  // A partial path from an end token back to `token`; `link` is the arc it took from `token`
  // towards its parent entry (-1 for the entries at the end tokens, whose g is the final weight).
  struct Entry {
    double f;
    double g;
    int32_t token;
    int32_t suffix;
    int32_t parent;
    int32_t link;
  };
  std::vector<Entry> entries;
  std::vector<int32_t> heap;
  auto worse = [&entries](int32_t a, int32_t b) {
    return entries[a].f > entries[b].f || (entries[a].f == entries[b].f && a > b);
  };
  auto push = [&](const Entry& e) {
    entries.push_back(e);
    heap.push_back(static_cast<int32_t>(entries.size() - 1));
    std::push_heap(heap.begin(), heap.end(), worse);
  };
  for (const auto& [token, final_cost] : ends)
    push({final_cost + tokens_[token].cost, final_cost, token, 0, -1, -1});
  // Word suffixes as a trie: id 0 is the empty suffix, (word, suffix) -> id.
  std::unordered_map<uint64_t, int32_t> suffixes;
  std::unordered_set<uint64_t> expanded;
  std::vector<CtcHypothesis> results;
  for (int64_t pops = 0; !heap.empty() && pops < options_.max_nbest_expansions; ++pops) {
    std::pop_heap(heap.begin(), heap.end(), worse);
    const int32_t index = heap.back();
    heap.pop_back();
    const Entry e = entries[index];
    if (!expanded.insert(pair_key(e.token, e.suffix)).second) continue;
    const Token& t = tokens_[e.token];
    if (t.bp_src < 0) {
      std::vector<PathArc> path;
      int32_t i = index;
      for (; entries[i].link >= 0; i = entries[i].parent) {
        const Link& link = links_[entries[i].link];
        path.push_back({link.arc, link.log_prob, tokens_[entries[entries[i].parent].token].step});
      }
      results.push_back(make_result(path, entries[i].g, reached_final));
      if (static_cast<int64_t>(results.size()) == options_.nbest) break;
      continue;
    }
    for (int32_t l = t.links_begin; l < t.links_end; ++l) {
      const Link& link = links_[l];
      const WfstArc& arc = g.arc(link.arc);
      const double cost = e.g + arc.weight - scale * link.log_prob;
      int32_t suffix = e.suffix;
      if (arc.olabel != 0) {
        const auto inserted =
            suffixes.emplace(pair_key(arc.olabel, suffix), static_cast<int32_t>(suffixes.size() + 1));
        suffix = inserted.first->second;
      }
      push({cost + tokens_[link.src].cost, cost, link.src, suffix, index, l});
    }
  }
  return results;
}

std::vector<std::vector<CtcHypothesis>> wfst_decode(std::shared_ptr<const WfstGraph> graph,
                                                    const WfstOptions& options, const float* data,
                                                    int64_t batch, int64_t frames, int64_t vocab,
                                                    int64_t stride_batch, int64_t stride_frame,
                                                    const int64_t* lengths, int num_threads) {
  if (vocab != graph->num_tokens()) {
    throw TensorError("log_probs", "V = " + std::to_string(graph->num_tokens()) + " (the graph's num_tokens)",
                      "V = " + std::to_string(vocab));
  }
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t n = lengths ? lengths[b] : frames;
    if (n < 0 || n > frames) {
      throw TensorError("lengths", "values in [0, " + std::to_string(frames) + "]",
                        std::to_string(n) + at(b));
    }
  }
  std::vector<std::vector<CtcHypothesis>> results(batch);
  // Searches are reused across utterances: their work space is as large as the graph.
  std::vector<std::unique_ptr<WfstSearch>> idle;
  std::mutex idle_mutex;
  parallel_for(batch, resolve_num_threads(num_threads), [&](int64_t b) {
    std::unique_ptr<WfstSearch> search;
    {
      std::lock_guard<std::mutex> lock(idle_mutex);
      if (!idle.empty()) {
        search = std::move(idle.back());
        idle.pop_back();
      }
    }
    if (search) {
      search->reset();
    } else {
      search = std::make_unique<WfstSearch>(graph, options);
    }
    search->accept(data + b * stride_batch, lengths ? lengths[b] : frames, stride_frame, b);
    results[b] = search->finish();
    std::lock_guard<std::mutex> lock(idle_mutex);
    idle.push_back(std::move(search));
  });
  return results;
}

}  // namespace speechdecode

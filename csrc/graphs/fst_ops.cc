#include "graphs/fst_ops.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>

#include "common/errors.h"
#include "common/hash.h"

namespace speechdecode {

namespace {

constexpr int64_t kMaxIndex = std::numeric_limits<int32_t>::max() - 1;

// A weight as a sort and equality key: its bits, with -0 read as +0 (they compare equal).
uint32_t weight_key(float w) {
  if (w == 0.0f) w = 0.0f;
  uint32_t bits;
  std::memcpy(&bits, &w, sizeof bits);
  return bits;
}

// A refinable partition of 0..n-1 (Valmari and Lehtinen): the elements of set s are
// elems[first[s] .. past[s]), its marked elements first; split() cuts every set with marked
// and unmarked elements in two, giving the smaller part a new set number.
class Partition {
 public:
  // The sets are runs of `order` (a permutation of 0..n-1): a new set starts at each i >= 1 with
  // starts(i).
  template <typename Starts>
  Partition(const std::vector<int32_t>& order, Starts starts)
      : elems_(order),
        loc_(order.size()),
        set_(order.size()),
        first_(order.size()),
        past_(order.size()),
        marked_(order.size(), 0) {
    const int32_t n = static_cast<int32_t>(order.size());
    for (int32_t i = 0; i < n; ++i) {
      if (i == 0 || starts(i)) {
        if (i > 0) past_[count_ - 1] = i;
        first_[count_++] = i;
      }
      loc_[order[i]] = i;
      set_[order[i]] = count_ - 1;
    }
    if (count_ > 0) past_[count_ - 1] = n;
  }

  int32_t count() const { return count_; }
  int32_t first(int32_t s) const { return first_[s]; }
  int32_t past(int32_t s) const { return past_[s]; }
  int32_t elem(int32_t i) const { return elems_[i]; }
  int32_t set_of(int32_t e) const { return set_[e]; }

  void mark(int32_t e) {
    const int32_t s = set_[e], i = loc_[e], j = first_[s] + marked_[s];
    if (i < j) return;  // already marked
    elems_[i] = elems_[j];
    loc_[elems_[i]] = i;
    elems_[j] = e;
    loc_[e] = j;
    if (marked_[s]++ == 0) touched_.push_back(s);
  }

  void split() {
    while (!touched_.empty()) {
      const int32_t s = touched_.back();
      touched_.pop_back();
      const int32_t j = first_[s] + marked_[s];
      if (j == past_[s]) {
        marked_[s] = 0;
        continue;
      }
      const int32_t z = count_++;
      if (marked_[s] <= past_[s] - j) {
        first_[z] = first_[s];
        past_[z] = first_[s] = j;
      } else {
        past_[z] = past_[s];
        first_[z] = past_[s] = j;
      }
      for (int32_t i = first_[z]; i < past_[z]; ++i) set_[elems_[i]] = z;
      marked_[s] = marked_[z] = 0;
    }
  }

 private:
  std::vector<int32_t> elems_, loc_, set_, first_, past_, marked_;
  std::vector<int32_t> touched_;
  int32_t count_ = 0;
};

// Appends arcs to a result, state by state.
struct ArcSink {
  FstArraysResult* out;

  void add(int32_t ilabel, int32_t olabel, float weight, int32_t next) {
    out->ilabels.push_back(ilabel);
    out->olabels.push_back(olabel);
    out->weights.push_back(weight);
    out->nextstates.push_back(next);
  }

  // Sorts the arcs added since `begin` by (input, output) label, keeping ties in order.
  void close_state(size_t begin) {
    const size_t end = out->ilabels.size();
    bool sorted = true;
    for (size_t a = begin + 1; a < end && sorted; ++a) {
      const int32_t i0 = out->ilabels[a - 1], i1 = out->ilabels[a];
      sorted = i0 < i1 || (i0 == i1 && out->olabels[a - 1] <= out->olabels[a]);
    }
    if (!sorted) {
      std::vector<uint32_t> order(end - begin);
      std::iota(order.begin(), order.end(), 0u);
      std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
        const int32_t ia = out->ilabels[begin + a], ib = out->ilabels[begin + b];
        return ia != ib ? ia < ib : out->olabels[begin + a] < out->olabels[begin + b];
      });
      permute(out->ilabels, begin, order);
      permute(out->olabels, begin, order);
      permute(out->weights, begin, order);
      permute(out->nextstates, begin, order);
    }
    out->arc_offsets.push_back(static_cast<int64_t>(end));
  }

  template <typename T>
  static void permute(std::vector<T>& column, size_t begin, const std::vector<uint32_t>& order) {
    std::vector<T> part(order.size());
    for (size_t k = 0; k < order.size(); ++k) part[k] = column[begin + order[k]];
    std::copy(part.begin(), part.end(), column.begin() + static_cast<std::ptrdiff_t>(begin));
  }
};

}  // namespace

void check_fst_view(const FstView& fst, const char* name) {
  const std::string arg(name);
  if (fst.num_states < 0 || fst.num_states > kMaxIndex || fst.num_arcs > kMaxIndex) {
    throw TensorError(arg, "fewer than 2^31 - 1 states and arcs",
                      std::to_string(fst.num_states) + " states, " + std::to_string(fst.num_arcs) + " arcs");
  }
  if (fst.num_states == 0 ? fst.start != -1 : (fst.start < 0 || fst.start >= fst.num_states)) {
    throw TensorError(arg + ".start",
                      "a state in [0, " + std::to_string(fst.num_states) + ") (-1 without states)",
                      std::to_string(fst.start));
  }
  if (fst.arc_offsets[0] != 0 || fst.arc_offsets[fst.num_states] != fst.num_arcs) {
    throw TensorError(
        arg + ".arc_offsets", "offsets from 0 to " + std::to_string(fst.num_arcs),
        std::to_string(fst.arc_offsets[0]) + " .. " + std::to_string(fst.arc_offsets[fst.num_states]));
  }
  for (int64_t s = 0; s < fst.num_states; ++s) {
    if (fst.arc_offsets[s + 1] < fst.arc_offsets[s]) {
      throw TensorError(arg + ".arc_offsets", "non-decreasing offsets",
                        "a decrease at " + std::to_string(s + 1));
    }
  }
  for (int64_t a = 0; a < fst.num_arcs; ++a) {
    if (fst.nextstates[a] < 0 || fst.nextstates[a] >= fst.num_states) {
      throw TensorError(arg + ".nextstates", "states in [0, " + std::to_string(fst.num_states) + ")",
                        std::to_string(fst.nextstates[a]) + " at [" + std::to_string(a) + "]");
    }
  }
}

namespace {

// The states on some path from the start to a final state, or empty when all are.
std::vector<char> dead_states(const FstView& fst) {
  const int32_t n = static_cast<int32_t>(fst.num_states);
  std::vector<char> seen(n, 0), alive(n, 0);
  std::vector<int32_t> queue{static_cast<int32_t>(fst.start)};
  seen[fst.start] = 1;
  for (size_t k = 0; k < queue.size(); ++k) {
    for (int64_t a = fst.arc_offsets[queue[k]]; a < fst.arc_offsets[queue[k] + 1]; ++a) {
      if (!seen[fst.nextstates[a]]) {
        seen[fst.nextstates[a]] = 1;
        queue.push_back(fst.nextstates[a]);
      }
    }
  }
  std::vector<int32_t> in_offsets(static_cast<size_t>(n) + 1, 0), in_sources(fst.num_arcs);
  for (int64_t a = 0; a < fst.num_arcs; ++a) ++in_offsets[fst.nextstates[a] + 1];
  std::partial_sum(in_offsets.begin(), in_offsets.end(), in_offsets.begin());
  std::vector<int32_t> fill(in_offsets.begin(), in_offsets.end() - 1);
  queue.clear();
  for (int32_t s = 0; s < n; ++s) {
    for (int64_t a = fst.arc_offsets[s]; a < fst.arc_offsets[s + 1]; ++a)
      in_sources[fill[fst.nextstates[a]]++] = s;
    if (seen[s] && fst.final_weights[s] != std::numeric_limits<float>::infinity()) {
      alive[s] = 1;
      queue.push_back(s);
    }
  }
  for (size_t k = 0; k < queue.size(); ++k) {
    for (int32_t j = in_offsets[queue[k]]; j < in_offsets[queue[k] + 1]; ++j) {
      const int32_t s = in_sources[j];
      if (seen[s] && !alive[s]) {
        alive[s] = 1;
        queue.push_back(s);
      }
    }
  }
  if (std::all_of(alive.begin(), alive.end(), [](char a) { return a != 0; })) return {};
  for (char& a : alive) a = !a;
  return alive;
}

// fst without the states `dead` marks and their arcs (OpenFst's Connect), numbered in order.
FstArraysResult without(const FstView& fst, const std::vector<char>& dead) {
  FstArraysResult out;
  std::vector<int32_t> number(fst.num_states, -1);
  int32_t count = 0;
  for (int64_t s = 0; s < fst.num_states; ++s) {
    if (!dead[s]) number[s] = count++;
  }
  if (dead[fst.start]) return out;
  out.start = number[fst.start];
  for (int64_t s = 0; s < fst.num_states; ++s) {
    if (dead[s]) continue;
    out.final_weights.push_back(fst.final_weights[s]);
    for (int64_t a = fst.arc_offsets[s]; a < fst.arc_offsets[s + 1]; ++a) {
      if (dead[fst.nextstates[a]]) continue;
      out.ilabels.push_back(fst.ilabels[a]);
      out.olabels.push_back(fst.olabels[a]);
      out.weights.push_back(fst.weights[a]);
      out.nextstates.push_back(number[fst.nextstates[a]]);
    }
    out.arc_offsets.push_back(static_cast<int64_t>(out.ilabels.size()));
  }
  return out;
}

FstView view_of(const FstArraysResult& fst) {
  FstView v;
  v.start = fst.start;
  v.num_states = static_cast<int64_t>(fst.final_weights.size());
  v.final_weights = fst.final_weights.data();
  v.arc_offsets = fst.arc_offsets.data();
  v.num_arcs = static_cast<int64_t>(fst.ilabels.size());
  v.ilabels = fst.ilabels.data();
  v.olabels = fst.olabels.data();
  v.weights = fst.weights.data();
  v.nextstates = fst.nextstates.data();
  return v;
}

}  // namespace

FstArraysResult minimize_encoded(const FstView& fst) {
  check_fst_view(fst, "fst");
  FstArraysResult out;
  if (fst.num_states == 0) return out;
  const std::vector<char> dead = dead_states(fst);
  if (!dead.empty()) {
    const FstArraysResult connected = without(fst, dead);
    return connected.start < 0 ? out : minimize_encoded(view_of(connected));
  }
  const int32_t n = static_cast<int32_t>(fst.num_states), m = static_cast<int32_t>(fst.num_arcs);
  if (n == 0) return out;
  std::vector<int32_t> source(m);
  for (int32_t s = 0; s < n; ++s) {
    std::fill(source.begin() + fst.arc_offsets[s], source.begin() + fst.arc_offsets[s + 1], s);
  }

  // States grouped by final weight; arcs (the "cords") by their (input, output, weight) triple.
  std::vector<int32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  auto final_key = [&](int32_t s) { return weight_key(fst.final_weights[s]); };
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return final_key(a) < final_key(b); });
  Partition blocks(order, [&](int32_t i) { return final_key(order[i]) != final_key(order[i - 1]); });

  // Arcs sorted by (input, output, weight key, source): two 64-bit keys each (labels are >= 0).
  struct ArcKey {
    uint64_t labels, weight_source;
    int32_t arc;
  };
  std::vector<ArcKey> keys(m);
  for (int32_t a = 0; a < m; ++a) {
    keys[a] = {(static_cast<uint64_t>(static_cast<uint32_t>(fst.ilabels[a])) << 32) |
                   static_cast<uint32_t>(fst.olabels[a]),
               (static_cast<uint64_t>(weight_key(fst.weights[a])) << 32) | static_cast<uint32_t>(source[a]),
               a};
  }
  std::sort(keys.begin(), keys.end(), [](const ArcKey& a, const ArcKey& b) {
    return a.labels != b.labels ? a.labels < b.labels : a.weight_source < b.weight_source;
  });
  auto same_triple = [&](int32_t i) {
    return keys[i].labels == keys[i - 1].labels &&
           keys[i].weight_source >> 32 == keys[i - 1].weight_source >> 32;
  };
  std::vector<int32_t> arcs(m);
  std::vector<char> starts(m, 0);
  for (int32_t i = 0; i < m; ++i) {
    arcs[i] = keys[i].arc;
    if (i == 0) continue;
    starts[i] = !same_triple(i);
    if (!starts[i] && keys[i].weight_source == keys[i - 1].weight_source) {
      const int32_t a = keys[i].arc;
      throw TensorError(
          "fst", "a deterministic FST (no two arcs of a state with the same input, output and weight)",
          "state " + std::to_string(source[a]) + " with two arcs " + std::to_string(fst.ilabels[a]) + ":" +
              std::to_string(fst.olabels[a]) + "/" + std::to_string(fst.weights[a]));
    }
  }
  std::vector<ArcKey>().swap(keys);
  Partition cords(arcs, [&](int32_t i) { return starts[i] != 0; });
  std::vector<int32_t>().swap(arcs);
  std::vector<char>().swap(starts);
  std::vector<int32_t>().swap(order);

  // The arcs into each state.
  std::vector<int32_t> in_offsets(static_cast<size_t>(n) + 1, 0), in_arcs(m);
  for (int32_t a = 0; a < m; ++a) ++in_offsets[fst.nextstates[a] + 1];
  std::partial_sum(in_offsets.begin(), in_offsets.end(), in_offsets.begin());
  {
    std::vector<int32_t> fill(in_offsets.begin(), in_offsets.end() - 1);
    for (int32_t a = 0; a < m; ++a) in_arcs[fill[fst.nextstates[a]]++] = a;
  }

  // Every block but block 0 splits the cords once (Hopcroft's "all but one" of the first
  // partition, then the smaller half of each split); every cord splits the blocks once.
  int32_t b = 1;
  for (int32_t c = 0; c < cords.count(); ++c) {
    for (int32_t i = cords.first(c); i < cords.past(c); ++i) blocks.mark(source[cords.elem(i)]);
    blocks.split();
    for (; b < blocks.count(); ++b) {
      for (int32_t i = blocks.first(b); i < blocks.past(b); ++i) {
        const int32_t s = blocks.elem(i);
        for (int32_t j = in_offsets[s]; j < in_offsets[s + 1]; ++j) cords.mark(in_arcs[j]);
      }
      cords.split();
    }
  }

  // A state per block, numbered by the block's smallest state; its arcs are that state's.
  std::vector<int32_t> number(blocks.count(), -1), representative;
  for (int32_t s = 0; s < n; ++s) {
    int32_t& k = number[blocks.set_of(s)];
    if (k < 0) {
      k = static_cast<int32_t>(representative.size());
      representative.push_back(s);
    }
  }
  out.start = number[blocks.set_of(static_cast<int32_t>(fst.start))];
  out.final_weights.reserve(representative.size());
  ArcSink sink{&out};
  for (const int32_t s : representative) {
    out.final_weights.push_back(fst.final_weights[s]);
    const size_t begin = out.ilabels.size();
    for (int64_t a = fst.arc_offsets[s]; a < fst.arc_offsets[s + 1]; ++a) {
      sink.add(fst.ilabels[a], fst.olabels[a], fst.weights[a], number[blocks.set_of(fst.nextstates[a])]);
    }
    sink.close_state(begin);
  }
  return out;
}

FstArraysResult compose_ctc(const FstView& lg, int64_t num_tokens, int64_t blank, int64_t num_disambig,
                            bool compact) {
  check_fst_view(lg, "lg");
  if (num_tokens < 2 || num_tokens + num_disambig > kMaxIndex) {
    throw TensorError("num_tokens", "an integer in [2, 2^31 - 2 - num_disambig]", std::to_string(num_tokens));
  }
  if (blank < 0 || blank >= num_tokens) {
    throw TensorError("blank", "an output index in [0, " + std::to_string(num_tokens) + ")",
                      std::to_string(blank));
  }
  if (num_disambig < 0) throw TensorError("num_disambig", "an integer >= 0", std::to_string(num_disambig));
  for (int64_t a = 0; a < lg.num_arcs; ++a) {
    if (lg.ilabels[a] == 0) {
      throw TensorError("lg", "an FST without input epsilons",
                        "an epsilon input on arc " + std::to_string(a) + " (compose with OpenFst instead)");
    }
  }
  FstArraysResult out;
  const int32_t n = static_cast<int32_t>(lg.num_states);
  if (n == 0) return out;
  const int32_t blank_label = static_cast<int32_t>(blank + 1);
  const int64_t disambig_end = num_tokens + 1 + num_disambig;
  // 1: an acoustic unit T reads and writes; 2: a #k T writes from an epsilon; 0: T never writes it.
  auto kind = [&](int32_t label) -> int {
    if (label >= 1 && label <= num_tokens && label != blank_label) return 1;
    return label > num_tokens && label < disambig_end ? 2 : 0;
  };

  // LG states that reach a final state through arcs T can write: every product state (t, q)
  // reaches (start of T, q) through epsilon or blank arcs, so it is coaccessible iff q is.
  std::vector<char> alive(n, 0);
  {
    std::vector<int32_t> in_offsets(static_cast<size_t>(n) + 1, 0), in_sources;
    for (int32_t s = 0; s < n; ++s) {
      for (int64_t a = lg.arc_offsets[s]; a < lg.arc_offsets[s + 1]; ++a) {
        if (kind(lg.ilabels[a])) ++in_offsets[lg.nextstates[a] + 1];
      }
    }
    std::partial_sum(in_offsets.begin(), in_offsets.end(), in_offsets.begin());
    in_sources.resize(in_offsets[n]);
    std::vector<int32_t> fill(in_offsets.begin(), in_offsets.end() - 1), queue;
    for (int32_t s = 0; s < n; ++s) {
      for (int64_t a = lg.arc_offsets[s]; a < lg.arc_offsets[s + 1]; ++a) {
        if (kind(lg.ilabels[a])) in_sources[fill[lg.nextstates[a]]++] = s;
      }
      if (lg.final_weights[s] != std::numeric_limits<float>::infinity()) {
        alive[s] = 1;
        queue.push_back(s);
      }
    }
    for (size_t k = 0; k < queue.size(); ++k) {
      const int32_t q = queue[k];
      for (int32_t j = in_offsets[q]; j < in_offsets[q + 1]; ++j) {
        if (!alive[in_sources[j]]) {
          alive[in_sources[j]] = 1;
          queue.push_back(in_sources[j]);
        }
      }
    }
  }
  if (!alive[lg.start]) return out;

  // Product states (t, q), t the T state (0, or the last unit's label), numbered as found, and
  // an open-addressing table of their numbers (linear probing; grown to stay at most half full).
  std::vector<std::pair<int32_t, int32_t>> states;
  std::vector<uint64_t> slot_keys(size_t{1} << 20);
  std::vector<int32_t> slot_ids(slot_keys.size(), -1);
  auto slot_of = [&](uint64_t key) {
    size_t i = mix64(key) & (slot_keys.size() - 1);
    while (slot_ids[i] >= 0 && slot_keys[i] != key) i = (i + 1) & (slot_keys.size() - 1);
    return i;
  };
  auto state_of = [&](int32_t t, int32_t q) {
    const uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(t)) << 32) | static_cast<uint32_t>(q);
    size_t i = slot_of(key);
    if (slot_ids[i] >= 0) return slot_ids[i];
    if (states.size() >= static_cast<size_t>(kMaxIndex)) {
      throw TensorError("lg", "a composition with fewer than 2^31 - 1 states", "more");
    }
    if (2 * (states.size() + 1) > slot_keys.size()) {
      std::vector<uint64_t> old_keys(slot_keys.size() * 2);
      std::vector<int32_t> old_ids(old_keys.size(), -1);
      old_keys.swap(slot_keys);
      old_ids.swap(slot_ids);
      for (size_t j = 0; j < old_keys.size(); ++j) {
        if (old_ids[j] < 0) continue;
        const size_t k = slot_of(old_keys[j]);
        slot_keys[k] = old_keys[j];
        slot_ids[k] = old_ids[j];
      }
      i = slot_of(key);
    }
    slot_keys[i] = key;
    slot_ids[i] = static_cast<int32_t>(states.size());
    states.emplace_back(t, q);
    return slot_ids[i];
  };
  out.start = state_of(0, static_cast<int32_t>(lg.start));
  ArcSink sink{&out};
  const float inf = std::numeric_limits<float>::infinity();
  for (size_t id = 0; id < states.size(); ++id) {
    const auto [t, q] = states[id];
    const int32_t self = static_cast<int32_t>(id);
    const size_t begin = out.ilabels.size();
    if (compact && t != 0) {  // inside a run of unit t: repeat it, or leave to the hub
      out.final_weights.push_back(inf);
      sink.add(t, 0, 0.0f, self);
      sink.add(0, 0, 0.0f, state_of(0, q));
      sink.close_state(begin);
      continue;
    }
    out.final_weights.push_back(lg.final_weights[q]);
    sink.add(blank_label, 0, 0.0f, t == 0 ? self : state_of(0, q));
    if (!compact && t != 0) sink.add(t, 0, 0.0f, self);  // a repeat of the last unit
    for (int64_t a = lg.arc_offsets[q]; a < lg.arc_offsets[q + 1]; ++a) {
      const int32_t label = lg.ilabels[a], next = lg.nextstates[a];
      const int k = kind(label);
      if (k == 0 || !alive[next] || (k == 1 && label == t)) continue;
      const int32_t to = k == 1 ? state_of(label, next) : state_of(t, next);
      sink.add(k == 1 ? label : 0, lg.olabels[a], lg.weights[a], to);
    }
    sink.close_state(begin);
  }
  return out;
}

}  // namespace speechdecode

#include "decoding/wfst_graph.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "common/errors.h"

namespace speechdecode {
namespace {

std::string at(int64_t i) { return " at [" + std::to_string(i) + "]"; }

void check_length(const char* name, int64_t length, int64_t expected, const char* what) {
  if (length != expected) {
    throw TensorError(name, std::to_string(expected) + " " + what, std::to_string(length) + " elements");
  }
}

}  // namespace

std::vector<int32_t> check_graph(const GraphArrays& g) {
  const int64_t kMax = std::numeric_limits<int32_t>::max();
  const int64_t states = g.num_states, arcs = g.num_arcs;
  if (states < 1 || states >= kMax) {
    throw TensorError("final_weights", "between 1 and 2^31 - 2 states", std::to_string(states));
  }
  if (arcs >= kMax) throw TensorError("ilabels", "fewer than 2^31 - 1 arcs", std::to_string(arcs));
  check_length("arc_offsets", g.num_offsets, states + 1, "offsets (states + 1)");
  check_length("olabels", g.num_olabels, arcs, "labels (one per arc, as ilabels)");
  check_length("weights", g.num_weights, arcs, "costs (one per arc, as ilabels)");
  check_length("nextstates", g.num_nextstates, arcs, "states (one per arc, as ilabels)");
  if (g.num_tokens < 1 || g.num_tokens >= kMax) {
    throw TensorError("num_tokens", "1 <= V < 2^31 - 1 (labels are int32)", std::to_string(g.num_tokens));
  }
  if (g.blank < 0 || g.blank >= g.num_tokens) {
    throw TensorError("blank", "a token id in [0, " + std::to_string(g.num_tokens) + ")",
                      std::to_string(g.blank));
  }
  if (g.start < 0 || g.start >= states) {
    throw TensorError("start", "a state in [0, " + std::to_string(states) + ")", std::to_string(g.start));
  }
  for (int64_t s = 0; s < states; ++s) {
    const float w = g.final_weights[s];
    if (std::isnan(w) || w == -std::numeric_limits<float>::infinity()) {
      throw TensorError("final_weights", "finite costs or +inf (not final)", std::to_string(w) + at(s));
    }
  }
  const int64_t* offsets = g.arc_offsets;
  if (offsets[0] != 0 || offsets[states] != arcs) {
    throw TensorError("arc_offsets",
                      "to start at 0 and end at the number of arcs (" + std::to_string(arcs) + ")",
                      std::to_string(offsets[0]) + " .. " + std::to_string(offsets[states]));
  }
  for (int64_t s = 1; s <= states; ++s) {
    if (offsets[s] < offsets[s - 1]) {
      throw TensorError("arc_offsets", "non-decreasing offsets", std::to_string(offsets[s]) + at(s));
    }
  }
  for (int64_t a = 0; a < arcs; ++a) {
    if (g.ilabels[a] < 0 || g.ilabels[a] > g.num_tokens) {
      throw TensorError(
          "ilabels",
          "input labels in 0.." + std::to_string(g.num_tokens) + " (0: epsilon, i: acoustic output i - 1)",
          std::to_string(g.ilabels[a]) + at(a));
    }
    if (g.olabels[a] < 0) throw TensorError("olabels", "word ids >= 0", std::to_string(g.olabels[a]) + at(a));
    if (g.nextstates[a] < 0 || g.nextstates[a] >= states) {
      throw TensorError("nextstates", "states in [0, " + std::to_string(states) + ")",
                        std::to_string(g.nextstates[a]) + at(a));
    }
    if (!std::isfinite(g.weights[a]))
      throw TensorError("weights", "finite costs", std::to_string(g.weights[a]) + at(a));
  }
  for (int64_t s = 0; s < states; ++s) {
    for (int64_t a = offsets[s] + 1; a < offsets[s + 1]; ++a) {
      if (g.ilabels[a] < g.ilabels[a - 1]) {
        throw TensorError("ilabels", "the arcs of each state sorted by ilabel",
                          "state " + std::to_string(s) + " unsorted" + at(a));
      }
    }
  }
  // Kahn's algorithm over the epsilon arcs (each state's first ones, the arcs being sorted).
  std::vector<int32_t> indegree(states, 0), order;
  order.reserve(states);
  for (int64_t a = 0; a < arcs; ++a) indegree[g.nextstates[a]] += g.ilabels[a] == 0;
  for (int32_t s = 0; s < states; ++s) {
    if (indegree[s] == 0) order.push_back(s);
  }
  for (size_t i = 0; i < order.size(); ++i) {
    const int32_t s = order[i];
    for (int64_t a = offsets[s]; a < offsets[s + 1] && g.ilabels[a] == 0; ++a) {
      if (--indegree[g.nextstates[a]] == 0) order.push_back(g.nextstates[a]);
    }
  }
  if (static_cast<int64_t>(order.size()) != states) {
    const auto cycle = std::find_if(indegree.begin(), indegree.end(), [](int32_t d) { return d > 0; });
    throw TensorError("graph", "no epsilon cycles (ilabel 0 arcs)",
                      "a cycle through or leading to state " + std::to_string(cycle - indegree.begin()));
  }
  return order;
}

}  // namespace speechdecode

// Two steps of TLG compilation (graphs/compile.py) on flat arrays, replacing OpenFst's generic
// algorithms where the input's structure is known; each gives a result isomorphic to OpenFst's.
//
// minimize_encoded: OpenFst's Minimize of an FST encoded as an acceptor over (input, output,
//   weight) triples, final weights included (EncodeMapper with labels and weights, Minimize,
//   Decode): Hopcroft's partition refinement in the form of Valmari and Lehtinen ("Efficient
//   minimization of DFAs with partial transition functions", STACS 2008), O(m log n).
// compose_ctc: the composition T∘LG with the CTC topology T (graphs/topology.py) built directly:
//   the product states (T state, LG state) reachable from the start and able to reach a final
//   state, which is what OpenFst's composition with its sequence filter and connect returns when
//   LG has no input epsilons.
#pragma once

#include <cstdint>
#include <vector>

namespace speechdecode {

// An FST in CSR form, borrowed: the arcs of state s are [arc_offsets[s], arc_offsets[s + 1]);
// tropical weights, final weight +inf where a state is not final.
struct FstView {
  int64_t start = -1;
  int64_t num_states = 0;
  const float* final_weights = nullptr;
  const int64_t* arc_offsets = nullptr;  // [num_states + 1]
  int64_t num_arcs = 0;
  const int32_t* ilabels = nullptr;
  const int32_t* olabels = nullptr;
  const float* weights = nullptr;
  const int32_t* nextstates = nullptr;
};

// An FST in CSR form, owned, the arcs of each state sorted by input label (then output label).
// start is -1 for an FST without states.
struct FstArraysResult {
  int64_t start = -1;
  std::vector<float> final_weights;
  std::vector<int64_t> arc_offsets{0};
  std::vector<int32_t> ilabels;
  std::vector<int32_t> olabels;
  std::vector<float> weights;
  std::vector<int32_t> nextstates;
};

// Checks the view's structure (start, offsets, next states, sizes below 2^31 - 1); TensorError
// names `name` and the first thing wrong.
void check_fst_view(const FstView& fst, const char* name);

// The minimal FST with the same (input, output, weight) paths and final weights, compared
// exactly (as OpenFst's encoded minimization does); states no path from the start to a final
// state passes are removed first, as OpenFst's Minimize connects. States are numbered by their
// smallest original member. Throws TensorError unless fst is deterministic on the triples.
FstArraysResult minimize_encoded(const FstView& fst);

// T∘LG for the CTC topology over num_tokens acoustic outputs (labels 1..num_tokens, the blank's
// blank + 1) and num_disambig #k loops (T's output labels num_tokens + 1 + k), compact or
// standard (graphs/topology.py). LG arcs whose input label T cannot write are not followed.
// States are numbered in breadth-first order from the start. Throws TensorError when LG has an
// input epsilon (OpenFst's filter then keeps more states than this construction knows).
FstArraysResult compose_ctc(const FstView& lg, int64_t num_tokens, int64_t blank, int64_t num_disambig,
                            bool compact);

}  // namespace speechdecode

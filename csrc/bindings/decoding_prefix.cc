// Bindings for csrc/decoding/ctc_prefix_beam_search: check arguments, release the GIL, call, convert.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "bindings/arrays.h"
#include "bindings/bindings.h"
#include "common/errors.h"
#include "decoding/ctc_prefix_beam_search.h"
#include "lm/ngram_model.h"

namespace py = pybind11;

namespace speechdecode {
namespace {

std::unique_ptr<CtcPrefixBeamSearch> make_search(
    std::vector<std::string> chars, std::vector<uint8_t> starts_word,
    const CtcPrefixBeamSearchOptions& options,
    const std::vector<std::pair<std::vector<int32_t>, double>>& hotwords, const NgramModel* lm,
    const std::vector<std::pair<std::vector<int32_t>, std::string>>& lexicon) {
  std::vector<HotwordPhrase> phrases;
  for (const auto& [tokens, weight] : hotwords) phrases.push_back({tokens, weight});
  std::vector<LexiconEntry> entries;
  for (const auto& [spelling, word] : lexicon) entries.push_back({spelling, word});
  return std::make_unique<CtcPrefixBeamSearch>(std::move(chars), std::move(starts_word), options, phrases, lm,
                                               entries);
}

std::vector<std::vector<CtcHypothesis>> decode(const CtcPrefixBeamSearch& search, const py::array& log_probs,
                                               const py::array& lengths, int64_t nbest, int num_threads) {
  check_scores(log_probs, "log_probs", 3, search.vocab_size(), "the number of tokens");
  const int64_t batch = log_probs.shape(0);
  const int64_t* length_data = checked_lengths(lengths, batch, log_probs.shape(1));
  if (nbest < 1) throw TensorError("nbest", "an integer >= 1", std::to_string(nbest));
  std::vector<std::vector<CtcHypothesis>> results;
  {
    py::gil_scoped_release release;
    results = search.decode(static_cast<const float*>(log_probs.data()), batch, log_probs.strides(0) / 4,
                            log_probs.strides(1) / 4, length_data, nbest, num_threads);
  }
  return results;
}

// A stream with a lock: Python threads may share one, and calls run without the GIL.
class PyStream {
 public:
  explicit PyStream(const CtcPrefixBeamSearch& search) : stream_(search), vocab_(search.vocab_size()) {}

  void accept(const py::array& chunk) {
    check_scores(chunk, "chunk", 2, vocab_, "the number of tokens");
    const auto* data = static_cast<const float*>(chunk.data());
    const int64_t count = chunk.shape(0), stride = chunk.strides(0) / 4;
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mutex_);
    stream_.accept(data, count, stride);
  }

  std::vector<CtcHypothesis> best(int64_t nbest) {
    if (nbest < 1) throw TensorError("nbest", "an integer >= 1", std::to_string(nbest));
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mutex_);
    return stream_.best(nbest);
  }

  int64_t frames() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stream_.frames();
  }

  int64_t searched_frames() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stream_.searched_frames();
  }

 private:
  CtcPrefixBeamSearch::Stream stream_;
  const int64_t vocab_;
  std::mutex mutex_;
};

py::list best_path(const py::array& log_probs, const std::vector<int32_t>& tokens, int32_t blank) {
  if (log_probs.ndim() != 2 || log_probs.dtype().kind() != 'f' || log_probs.itemsize() != 4 ||
      !(log_probs.flags() & py::array::c_style)) {
    throw TensorError("log_probs", "a C-contiguous float32 array [T, V]", describe(log_probs));
  }
  std::vector<int32_t> path;
  {
    py::gil_scoped_release release;
    path = ctc_best_path(static_cast<const float*>(log_probs.data()), log_probs.shape(0), log_probs.shape(1),
                         tokens, blank);
  }
  return py::cast(path);
}

}  // namespace

void bind_decoding_prefix(py::module_& m) {
  m.def("ctc_best_path", &best_path, py::arg("log_probs"), py::arg("tokens"), py::arg("blank"),
        "The CTC Viterbi forced alignment of float32 log_probs [T, V] to tokens: the token of each frame "
        "(csrc/decoding/ctc_prefix_beam_search.h). Releases the GIL.");
  using Options = CtcPrefixBeamSearchOptions;
  py::class_<Options>(
      m, "CtcPrefixBeamSearchOptions",
      "The prefix search's options (csrc/decoding/ctc_prefix_beam_search.h); validate() checks "
      "them.")
      .def(py::init<>())
      .def_readwrite("blank", &Options::blank)
      .def_readwrite("alpha", &Options::alpha)
      .def_readwrite("beta", &Options::beta)
      .def_readwrite("beam", &Options::beam)
      .def_readwrite("token_topk", &Options::token_topk)
      .def_readwrite("beam_threshold", &Options::beam_threshold)
      .def_readwrite("token_min_logp", &Options::token_min_logp)
      .def_readwrite("extend_best_token", &Options::extend_best_token)
      .def_readwrite("partial_word_lm", &Options::partial_word_lm)
      .def_readwrite("unk_score_offset", &Options::unk_score_offset)
      .def_readwrite("blank_skip_threshold", &Options::blank_skip_threshold)
      .def_readwrite("viterbi", &Options::viterbi)
      .def_readwrite("recombine", &Options::recombine)
      .def_readwrite("score_boundary", &Options::score_boundary)
      .def("validate", &Options::validate,
           "Raises TensorError naming the first option out of range (the blank's upper bound, the "
           "vocabulary size, is checked by the search).");

  py::class_<CtcPrefixBeamSearch>(m, "CtcPrefixBeamSearch",
                                  "CTC prefix beam search (csrc/decoding/ctc_prefix_beam_search.h). Use "
                                  "speechdecode.decoding.CtcPrefixBeamSearch.")
      .def(py::init(&make_search), py::arg("chars"), py::arg("starts_word"), py::arg("options"),
           py::arg("hotwords"), py::arg("lm"), py::arg("lexicon"), py::keep_alive<1, 6>())
      .def_property_readonly("vocab_size", &CtcPrefixBeamSearch::vocab_size)
      .def("decode", &decode, py::arg("log_probs"), py::arg("lengths"), py::arg("nbest"),
           py::arg("num_threads"),
           "Decodes float32 log_probs [B, T, V] (last axis contiguous) with int64 lengths [B]; returns per "
           "utterance its ranked Hypothesis list. Releases the GIL.")
      .def(
          "stream", [](const CtcPrefixBeamSearch& search) { return std::make_unique<PyStream>(search); },
          py::keep_alive<0, 1>(), "A new stream (one utterance fed in chunks).");

  py::class_<PyStream>(m, "CtcPrefixBeamSearchStream",
                       "One utterance of a CtcPrefixBeamSearch, fed in chunks.")
      .def("accept", &PyStream::accept, py::arg("chunk"), "Consumes float32 frames [T, V]. Releases the GIL.")
      .def("best", &PyStream::best, py::arg("nbest"),
           "The ranked n-best hypotheses of the frames so far; the stream can go on.")
      .def_property_readonly("frames", &PyStream::frames)
      .def_property_readonly("searched_frames", &PyStream::searched_frames);
}

}  // namespace speechdecode

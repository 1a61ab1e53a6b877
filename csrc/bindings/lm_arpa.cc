// Bindings for csrc/lm/arpa_reader: the tables of lm/arpa.py's ArpaModel, read by the C++ parser.
//
// read_arpa_file parses and validates the file (its rules are the only ARPA rules: the same
// parser loads NgramModel); this binding turns its contents into the tables lm/arpa.py's
// ArpaModel holds:
//
// * ids in file order (the C++ vocabulary puts <unk> <s> </s> first), remapped through the
//   unigram lines; a <unk> that read_arpa_file added for a file without one is left out.
// * values as doubles: read_arpa_file keeps float32, so every number is parsed again as a double
//   from the file's text (the tables then equal float(text), as the reference reader gives them).
// * duplicates and missing contexts of orders >= 2, which read_arpa_file leaves to model
//   building, are found here (the first in order, then file order) and reported as model
//   building reports them.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "bindings/bindings.h"
#include "common/hash.h"
#include "lm/arpa_reader.h"

namespace py = pybind11;

namespace speechdecode {
namespace {

template <typename T>
py::array_t<T> hand_over(std::vector<T>&& values, std::vector<py::ssize_t> shape) {
  auto* owned = new std::vector<T>(std::move(values));
  py::capsule owner(owned, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T>(shape, owned->data(), owner);
}

constexpr std::string_view kSpaces = " \t\r\v\f";

std::string_view trim(std::string_view s) {
  const size_t first = s.find_first_not_of(kSpaces);
  return first == std::string_view::npos ? std::string_view()
                                         : s.substr(first, s.find_last_not_of(kSpaces) + 1 - first);
}

// The fields of a line, split on spaces and tabs (up to limit; more are not kept).
size_t split_fields(std::string_view line, std::string_view* out, size_t limit) {
  size_t n = 0, i = 0;
  const size_t size = line.size();
  while (n < limit) {
    while (i < size && kSpaces.find(line[i]) != std::string_view::npos) ++i;
    if (i == size) break;
    const size_t begin = i;
    while (i < size && kSpaces.find(line[i]) == std::string_view::npos) ++i;
    out[n++] = line.substr(begin, i - begin);
  }
  return n;
}

// A number read_arpa_file accepted, as a double (as Python's float() reads it).
double parse_double(std::string_view text, const ArpaContents& contents, uint64_t line) {
  double value = 0;
  if (!parse_arpa_double(text, &value)) {
    throw ArpaFormatError(contents.path, line, "number " + std::string(text) + " cannot be read as a double");
  }
  return value;
}

struct Lines {
  const char* p;
  const char* end;
  uint64_t line = 0;

  bool next(std::string_view* out) {
    if (p >= end) return false;
    const void* nl = std::memchr(p, '\n', static_cast<size_t>(end - p));
    const char* stop = nl ? static_cast<const char*>(nl) : end;
    *out = std::string_view(p, static_cast<size_t>(stop - p));
    p = nl ? stop + 1 : end;
    ++line;
    return true;
  }
  // The next line that is not blank, trimmed; false at the end.
  bool next_nonblank(std::string_view* out) {
    while (next(out)) {
      *out = trim(*out);
      if (!out->empty()) return true;
    }
    return false;
  }
};

// The tables of an ArpaModel, ids in file order, values as double.
struct Tables {
  std::vector<std::string_view> words;  // into the file's text
  std::vector<uint64_t> unigram_lines;  // line of each word
  std::vector<std::vector<int32_t>> rows;
  std::vector<std::vector<double>> probs;
  std::vector<std::vector<double>> backoffs;
};

// Takes unigram words and every number (as a double) from the text of a file read_arpa_file
// accepted: after `\data\`, every non-blank line that is not a header is an entry of the
// order of the last `\N-grams:` header, in file order.
void read_tables(const ArpaContents& contents, Tables* out) {
  Lines lines{contents.text.data(), contents.text.data() + contents.text.size()};
  const int order = contents.order();
  out->probs.resize(order);
  out->backoffs.resize(order);
  for (int n = 1; n <= order; ++n) {
    out->probs[n - 1].reserve(contents.counts[n - 1]);
    if (n < order) out->backoffs[n - 1].reserve(contents.counts[n - 1]);
  }
  std::string_view line;
  std::string_view fields[kMaxOrder + 2];
  int n = 0;
  bool data = false;
  while (lines.next_nonblank(&line)) {
    if (line[0] == '\\') {
      if (line == "\\end\\") break;
      if (line == "\\data\\") data = true;
      constexpr std::string_view kSection = "-grams:";
      if (data && line.size() > kSection.size() + 1 &&
          line.substr(line.size() - kSection.size()) == kSection) {
        std::from_chars(line.data() + 1, line.data() + line.size() - kSection.size(), n);
      }
      continue;
    }
    if (n == 0) continue;  // comments before \data\, `ngram N=COUNT` lines
    if (n < 1 || n > order)
      throw ArpaFormatError(contents.path, lines.line, "internal: section order out of range");
    const size_t k = split_fields(line, fields, static_cast<size_t>(n) + 2);
    out->probs[n - 1].push_back(parse_double(fields[0], contents, lines.line));
    if (n < order) {
      out->backoffs[n - 1].push_back(
          k == static_cast<size_t>(n) + 2 ? parse_double(fields[n + 1], contents, lines.line) : 0.0);
    }
    if (n == 1) {
      out->words.push_back(fields[1]);
      out->unigram_lines.push_back(lines.line);
    }
  }
  for (int m = 1; m <= order; ++m) {
    if (out->probs[m - 1].size() != contents.counts[m - 1]) {
      throw ArpaFormatError(contents.path, 0,
                            "internal: the " + std::to_string(m) + "-gram section read back " +
                                std::to_string(out->probs[m - 1].size()) + " entries");
    }
  }
}

// The rows with file-order ids (unigram lines ascend, so a line's index is found by bisection). A
// <unk> that read_arpa_file added for a file without one (line 0) is appended to the words only
// when n-grams use it, with KenLM's values for it (log10 p -100, backoff 0).
void remap_rows(const ArpaContents& contents, Tables* out) {
  const std::vector<uint64_t>& lines = out->unigram_lines;
  std::vector<int32_t> file_id(contents.vocab.size(), -1);
  for (WordId id = 0; id < contents.vocab.size(); ++id) {
    const uint64_t line = contents.unigram_lines[id];
    if (line == 0) continue;
    const auto at = std::lower_bound(lines.begin(), lines.end(), line);
    if (at == lines.end() || *at != line) {
      throw ArpaFormatError(contents.path, line, "internal: no unigram entry read back on this line");
    }
    file_id[id] = static_cast<int32_t>(at - lines.begin());
  }
  const size_t words = out->words.size();
  std::vector<std::vector<int32_t>> rows;
  rows.emplace_back(words);
  for (size_t i = 0; i < words; ++i) rows[0][i] = static_cast<int32_t>(i);
  for (const ArpaOrder& order : contents.orders) {
    std::vector<int32_t>& ids = rows.emplace_back(order.words.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      int32_t& id = file_id[order.words[i]];
      if (id < 0) {  // the added <unk>, used by an n-gram: it becomes the last unigram
        id = static_cast<int32_t>(out->words.size());
        out->words.push_back(contents.vocab.string(order.words[i]));
        out->probs[0].push_back(contents.unigram_probs[order.words[i]]);
        if (contents.order() > 1) out->backoffs[0].push_back(0.0);
        rows[0].push_back(id);
      }
      ids[i] = id;
    }
  }
  out->rows = std::move(rows);
}

// A set of id rows (width ids each, stored elsewhere), by index: open addressing over row + 1.
class RowSet {
 public:
  RowSet(const int32_t* rows, size_t count, int width) : rows_(rows), width_(width) {
    size_t slots = 16;
    while (slots < 2 * count) slots *= 2;
    table_.assign(slots, 0);
    mask_ = slots - 1;
  }

  // Adds row `index`; returns the index of an equal row added before, or SIZE_MAX.
  size_t insert(size_t index) {
    const int32_t* row = rows_ + index * width_;
    for (size_t s = hash(row) & mask_;; s = (s + 1) & mask_) {
      if (table_[s] == 0) {
        table_[s] = index + 1;
        return SIZE_MAX;
      }
      if (same(table_[s] - 1, row)) return table_[s] - 1;
    }
  }

  bool contains(const int32_t* row) const {
    for (size_t s = hash(row) & mask_; table_[s] != 0; s = (s + 1) & mask_) {
      if (same(table_[s] - 1, row)) return true;
    }
    return false;
  }

 private:
  uint64_t hash(const int32_t* row) const {
    uint64_t h = 0;
    for (int k = 0; k < width_; ++k) h = mix64(h ^ static_cast<uint32_t>(row[k]));
    return h;
  }
  bool same(size_t index, const int32_t* row) const {
    return std::memcmp(rows_ + index * width_, row, sizeof(int32_t) * width_) == 0;
  }

  const int32_t* rows_;
  int width_;
  size_t mask_ = 0;
  std::vector<uint64_t> table_;  // row index + 1; 0 = empty
};

// The first n-gram (n >= 2, in order, then file order) that repeats an earlier one or whose
// context (its first n - 1 words) is not an (n-1)-gram: KenLM refuses both.
void check_rows(const ArpaContents& contents, const Tables& tables) {
  const int order = contents.order();
  for (int n = 2; n <= order; ++n) {
    const std::vector<int32_t>& rows = tables.rows[n - 1];
    const size_t count = rows.size() / static_cast<size_t>(n);
    RowSet seen(rows.data(), count, n);
    for (size_t i = 0; i < count; ++i) {
      if (seen.insert(i) != SIZE_MAX) {
        throw ArpaFormatError(contents.path, contents.line_of(n, i),
                              "duplicate " + std::to_string(n) + "-gram '" + contents.ngram_text(n, i) + "'");
      }
    }
    const std::vector<int32_t>& contexts = tables.rows[n - 2];
    RowSet known(contexts.data(), contexts.size() / static_cast<size_t>(n - 1), n - 1);
    for (size_t i = 0; i < contexts.size() / static_cast<size_t>(n - 1); ++i) known.insert(i);
    for (size_t i = 0; i < count; ++i) {
      if (!known.contains(rows.data() + i * n)) {
        const std::string text = contents.ngram_text(n, i);
        throw ArpaFormatError(contents.path, contents.line_of(n, i),
                              "the context '" + text.substr(0, text.rfind(' ')) + "' of the " +
                                  std::to_string(n) + "-gram '" + text + "' is not a " +
                                  std::to_string(n - 1) + "-gram (KenLM requires it too)");
      }
    }
  }
}

py::object read_arpa_tables_py(const std::string& path) {
  ArpaContents contents;
  Tables tables;
  {
    py::gil_scoped_release release;
    contents = read_arpa_file(path);
    read_tables(contents, &tables);
    remap_rows(contents, &tables);
    check_rows(contents, tables);
  }
  py::list words;
  for (const std::string_view word : tables.words) {
    py::object text = py::reinterpret_steal<py::object>(
        PyUnicode_DecodeUTF8(word.data(), static_cast<Py_ssize_t>(word.size()), "strict"));
    if (!text) throw py::error_already_set();
    words.append(text);
  }
  const int order = contents.order();
  py::list ngrams, probs, backoffs;
  for (int n = 1; n <= order; ++n) {
    const auto count = static_cast<py::ssize_t>(tables.probs[n - 1].size());
    ngrams.append(hand_over(std::move(tables.rows[n - 1]), {count, n}));
    probs.append(hand_over(std::move(tables.probs[n - 1]), {count}));
    backoffs.append(hand_over(std::move(tables.backoffs[n - 1]), {n < order ? count : 0}));
  }
  return py::make_tuple(words, ngrams, probs, backoffs);
}

}  // namespace

void bind_lm_arpa(py::module_& m) {
  m.def("read_arpa_tables", &read_arpa_tables_py, py::arg("path"),
        R"doc(The tables of lm/arpa.py's ArpaModel for an ARPA file (plain or gzip, told by content), read by
the C++ parser that NgramModel uses: (words list[str], ngrams per order int32 [M_n, n], log10_probs
per order float64 [M_n], backoffs per order float64 [M_n] ([0] for the highest)), ids in file
order, values as doubles. Raises ArpaFormatError (file:line) for a malformed file (duplicate
n-grams and missing contexts included), OSError when it cannot be read. Releases the GIL.)doc");
}

}  // namespace speechdecode

// Bindings for csrc/lm/arpa_reader: the tables of lm/arpa.py's ArpaModel, read by the C++ parser.
//
// read_arpa_file parses and validates the file; this binding then turns its contents into the
// tables lm/arpa.py's reference reader builds, and returns None for any file the two readers
// could treat differently, so that lm/arpa.py reads it with the reference code (which gives the
// same tables or raises its own error). The differences bridged or detected here:
//
// * ids: Python numbers unigrams in file order; the C++ vocabulary puts <unk> <s> </s> first.
//   Ids are remapped through the unigram lines.
// * numbers: the C++ tables hold float32; Python keeps float(text). Every number is parsed again
//   as a double (a strict decimal grammar whose values Python's float() gives alike).
// * <unk>: the C++ reader adds a missing <unk> (id 0) and reads <UNK> as <unk>; Python does
//   neither. The added word is dropped, the file's spelling is kept, and a file whose n-grams use
//   an unk spelling that is not its unigram's goes the reference way.
// * layout: Python ends a section at its first blank line, reads universal newlines (a lone '\r'
//   breaks a line) and splits fields on Unicode whitespace (0x1c-0x1f, U+0085, U+00A0, ...); the
//   C++ reader skips blank lines anywhere, allows '#' lines before \data\ and a zero backoff on
//   the highest order. Files outside the layout both accept alike go the reference way.
// * duplicates of orders >= 2, which read_arpa_file leaves to model building: found here, first
//   in file order, and returned for lm/arpa.py to report as the reference reader does.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "bindings/bindings.h"
#include "lm/arpa_reader.h"
#include "lm/ngram_model_hash.h"

namespace py = pybind11;

namespace speechdecode {
namespace {

template <typename T>
py::array_t<T> hand_over(std::vector<T>&& values, std::vector<py::ssize_t> shape) {
  auto* owned = new std::vector<T>(std::move(values));
  py::capsule owner(owned, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T>(shape, owned->data(), owner);
}

// True when no byte of text is one Python's text reading treats apart from the C++ reader: a
// '\r' not followed by '\n' (a line break in universal newlines), 0x1c-0x1f, and the UTF-8 of
// U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F and U+3000 (str.split()
// separators).
bool python_splits_alike(const char* text, size_t size) {
  const auto* p = reinterpret_cast<const unsigned char*>(text);
  const auto* end = p + size;
  constexpr uint64_t kOnes = 0x0101010101010101ull;
  for (; p < end; ++p) {
    // Eight bytes at a time while none is >= 0x80 or in [0x0d, 0x1f]: for x = byte & 0x7f,
    // x + 0x73 reaches 0x80 iff x >= 0x0d and x + 0x60 iff x >= 0x20, without carries.
    while (end - p >= 8) {
      uint64_t w;
      std::memcpy(&w, p, 8);
      const uint64_t low = w & (0x7f * kOnes);
      if (((w | ((low + 0x73 * kOnes) & ~(low + 0x60 * kOnes))) & (0x80 * kOnes)) != 0) break;
      p += 8;
    }
    if (p == end) break;
    const unsigned c = *p;
    if (c < 0x0d || (c > 0x0d && c < 0x1c) || (c > 0x1f && c < 0xc2)) continue;
    const size_t left = static_cast<size_t>(end - p) - 1;
    const unsigned c1 = left >= 1 ? p[1] : 0, c2 = left >= 2 ? p[2] : 0;
    switch (c) {
      case 0x0d:
        if (c1 != '\n') return false;
        break;
      case 0x1c:
      case 0x1d:
      case 0x1e:
      case 0x1f:
        return false;
      case 0xc2:
        if (c1 == 0x85 || c1 == 0xa0) return false;
        break;
      case 0xe1:
        if (c1 == 0x9a && c2 == 0x80) return false;
        break;
      case 0xe2:
        if (c1 == 0x80 && ((c2 >= 0x80 && c2 <= 0x8a) || c2 == 0xa8 || c2 == 0xa9 || c2 == 0xaf))
          return false;
        if (c1 == 0x81 && c2 == 0x9f) return false;
        break;
      case 0xe3:
        if (c1 == 0x80 && c2 == 0x80) return false;
        break;
      default:
        break;
    }
  }
  return true;
}

// ASCII field separators: with python_splits_alike these are all Python splits a line on.
constexpr std::string_view kSpaces = " \t\r\v\f";

std::string_view trim(std::string_view s) {
  const size_t first = s.find_first_not_of(kSpaces);
  return first == std::string_view::npos ? std::string_view()
                                         : s.substr(first, s.find_last_not_of(kSpaces) + 1 - first);
}

inline bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

// Up to `limit` fields of line; the count goes up to limit + 1 to tell "too many".
size_t split_fields(std::string_view line, std::string_view* out, size_t limit) {
  size_t n = 0, i = 0;
  const size_t size = line.size();
  for (;;) {
    while (i < size && is_space(line[i])) ++i;
    if (i == size) return n;
    const size_t begin = i;
    while (i < size && !is_space(line[i])) ++i;
    if (n == limit) return n + 1;
    out[n++] = line.substr(begin, i - begin);
  }
}

bool equals_ignoring_case(std::string_view a, std::string_view lower) {
  if (a.size() != lower.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    const char c = a[i] >= 'A' && a[i] <= 'Z' ? static_cast<char>(a[i] - 'A' + 'a') : a[i];
    if (c != lower[i]) return false;
  }
  return true;
}

// text as Python's float(text) reads it, for the texts of this grammar: [+-] then "inf" or
// "infinity" in any case, or digits [. digits] (one digit at least) [(e|E) [+-] digits]. False
// for any other text, and for values Python rejects (NaN, +inf) or that overflow or underflow.
bool parse_double(std::string_view text, double* out) {
  bool negative = false;
  if (!text.empty() && (text[0] == '+' || text[0] == '-')) {
    negative = text[0] == '-';
    text.remove_prefix(1);
  }
  if (equals_ignoring_case(text, "inf") || equals_ignoring_case(text, "infinity")) {
    if (!negative) return false;
    *out = -std::numeric_limits<double>::infinity();
    return true;
  }
  size_t i = 0, digits = 0;
  auto is_digit = [&](size_t k) { return k < text.size() && text[k] >= '0' && text[k] <= '9'; };
  for (; is_digit(i); ++i) ++digits;
  if (i < text.size() && text[i] == '.') {
    for (++i; is_digit(i); ++i) ++digits;
  }
  if (digits == 0) return false;
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    if (i < text.size() && (text[i] == '+' || text[i] == '-')) ++i;
    const size_t first = i;
    while (is_digit(i)) ++i;
    if (i == first) return false;
  }
  if (i != text.size()) return false;
  double value = 0;
  const auto [ptr, ec] =
      std::from_chars(text.data(), text.data() + text.size(), value, std::chars_format::general);
  if (ec != std::errc() || ptr != text.data() + text.size() || !std::isfinite(value)) return false;
  *out = negative ? -value : value;
  return true;
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
  int duplicate_order = 0;  // the first duplicate n-gram, if any: order, index in its section
  size_t duplicate_index = 0;
};

// Walks the file as lm/arpa.py's reader does and takes words and numbers from it; false where
// that reader would read differently from read_arpa_file (or fail). contents is a file
// read_arpa_file accepted, so counts, words and numbers are known to be well-formed.
bool read_python_layout(const ArpaContents& contents, Tables* out) {
  Lines lines{contents.text.data(), contents.text.data() + contents.text.size()};
  std::string_view line;
  if (!lines.next_nonblank(&line) || line != "\\data\\") return false;
  const int order = contents.order();
  int declared = 0;
  while (lines.next(&line)) {
    if (trim(line).empty()) {
      if (declared > 0) break;
      continue;
    }
    ++declared;
  }
  if (declared != order) return false;
  std::string_view unk;  // the unigram's spelling of <unk>, empty when there is none
  std::string_view fields[kMaxOrder + 3];
  for (int n = 1; n <= order; ++n) {
    if (!lines.next_nonblank(&line) || line != "\\" + std::to_string(n) + "-grams:") return false;
    const uint64_t count = contents.counts[n - 1];
    const bool with_backoff = n < order;
    std::vector<double>& probs = out->probs.emplace_back();
    std::vector<double>& backoffs = out->backoffs.emplace_back();
    probs.resize(count);
    if (with_backoff) backoffs.resize(count);
    for (uint64_t i = 0; i < count; ++i) {
      if (!lines.next(&line)) return false;
      const size_t k = split_fields(line, fields, static_cast<size_t>(n) + 2);
      if (k != static_cast<size_t>(n) + 1 && !(with_backoff && k == static_cast<size_t>(n) + 2)) return false;
      if (!parse_double(fields[0], &probs[i])) return false;
      if (with_backoff) {
        backoffs[i] = 0.0;
        if (k == static_cast<size_t>(n) + 2 && !parse_double(fields[n + 1], &backoffs[i])) return false;
      }
      for (int w = 1; w <= n; ++w) {
        const std::string_view word = fields[w];
        if (word != "<unk>" && word != "<UNK>") continue;
        if (n == 1) {
          unk = word;
        } else if (word != unk) {
          return false;
        }
      }
      if (n == 1) {
        out->words.push_back(fields[1]);
        out->unigram_lines.push_back(lines.line);
      }
    }
    if (!lines.next(&line) || !trim(line).empty()) return false;
  }
  return lines.next_nonblank(&line) && line == "\\end\\";
}

// The rows of orders >= 2 with file-order ids; false if an id does not map (defensive: the
// layout check leaves no reference to a word the file does not list).
bool remap_rows(const ArpaContents& contents, Tables* out) {
  const uint64_t first_line = out->unigram_lines.empty() ? 0 : out->unigram_lines[0];
  std::vector<int32_t> file_id(contents.vocab.size(), -1);
  for (WordId id = 0; id < contents.vocab.size(); ++id) {
    const uint64_t line = contents.unigram_lines[id];
    if (line == 0) continue;  // the <unk> read_arpa_file adds
    const uint64_t index = line - first_line;
    if (index >= out->words.size() || out->unigram_lines[index] != line) return false;
    file_id[id] = static_cast<int32_t>(index);
  }
  std::vector<int32_t>& unigrams = out->rows.emplace_back(out->words.size());
  for (size_t i = 0; i < unigrams.size(); ++i) unigrams[i] = static_cast<int32_t>(i);
  for (const ArpaOrder& order : contents.orders) {
    std::vector<int32_t>& rows = out->rows.emplace_back(order.words.size());
    for (size_t i = 0; i < rows.size(); ++i) {
      const int32_t id = file_id[order.words[i]];
      if (id < 0) return false;
      rows[i] = id;
    }
  }
  return true;
}

// The first row (in file order) of `rows` (n ids each) equal to an earlier one, or SIZE_MAX.
size_t first_duplicate(const std::vector<int32_t>& rows, int n) {
  const size_t count = rows.size() / static_cast<size_t>(n);
  size_t slots = 16;
  while (slots < 2 * count) slots *= 2;
  std::vector<uint64_t> table(slots, 0);  // row index + 1; 0 = empty
  const size_t mask = slots - 1;
  for (size_t i = 0; i < count; ++i) {
    const int32_t* row = rows.data() + i * n;
    uint64_t h = 0;
    for (int k = 0; k < n; ++k) h = ngram_hash::mix64(h ^ static_cast<uint32_t>(row[k]));
    for (size_t s = h & mask;; s = (s + 1) & mask) {
      if (table[s] == 0) {
        table[s] = i + 1;
        break;
      }
      if (std::memcmp(rows.data() + (table[s] - 1) * n, row, sizeof(int32_t) * n) == 0) return i;
    }
  }
  return SIZE_MAX;
}

py::object read_arpa_tables_py(const std::string& path) {
  ArpaContents contents;
  Tables tables;
  bool alike = false;
  {
    py::gil_scoped_release release;
    try {
      contents = read_arpa_file(path);
      alike = python_splits_alike(contents.text.data(), contents.text.size()) &&
              read_python_layout(contents, &tables) && remap_rows(contents, &tables);
    } catch (const ArpaFormatError&) {
      alike = false;
    } catch (const FileReadError&) {
      alike = false;
    }
    for (int n = 2; alike && n <= contents.order() && tables.duplicate_order == 0; ++n) {
      const size_t index = first_duplicate(tables.rows[n - 1], n);
      if (index != SIZE_MAX) {
        tables.duplicate_order = n;
        tables.duplicate_index = index;
      }
    }
  }
  if (!alike) return py::none();
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
    const auto count = static_cast<py::ssize_t>(contents.counts[n - 1]);
    ngrams.append(hand_over(std::move(tables.rows[n - 1]), {count, n}));
    probs.append(hand_over(std::move(tables.probs[n - 1]), {count}));
    backoffs.append(hand_over(std::move(tables.backoffs[n - 1]), {n < order ? count : 0}));
  }
  py::object duplicate = py::none();
  if (tables.duplicate_order != 0) {
    const uint64_t line = contents.line_of(tables.duplicate_order, tables.duplicate_index);
    duplicate = py::make_tuple(tables.duplicate_order, tables.duplicate_index, line);
  }
  return py::make_tuple(words, ngrams, probs, backoffs, duplicate);
}

}  // namespace

void bind_lm_arpa(py::module_& m) {
  m.def("read_arpa_tables", &read_arpa_tables_py, py::arg("path"),
        R"doc(The tables of lm/arpa.py's ArpaModel for an ARPA file (plain or gzip, told by content), read by
the C++ parser: (words list[str], ngrams per order int32 [M_n, n], log10_probs per order float64
[M_n], backoffs per order float64 [M_n] ([0] for the highest), duplicate), ids and values exactly
as the reference reader gives them; duplicate is None or (n, index, line) of the first n-gram
(n >= 2) that repeats an earlier one. None for a file the reference reader could read differently
or that fails to parse (lm/arpa.py then reads it with the reference code, for its own result or
error). Releases the GIL.)doc");
}

}  // namespace speechdecode

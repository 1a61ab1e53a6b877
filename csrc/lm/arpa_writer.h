// Writing back-off n-gram models in the ARPA text format, byte for byte as lm/arpa.py's
// write_arpa writes them (and lmplz prints them):
//
//   \data\                     ngram n=COUNT per order
//   \n-grams:                  one section per order, after an empty line
//   log10(p) TAB w1 .. wn [TAB log10(backoff)]     backoff column on every order but the last
//   \end\   (last line)
//
// Numbers are printed as lmplz prints them (KenLM's util/float_to_string.cc: double-conversion's
// ToShortestSingle with flags NO_FLAGS, "inf", "NaN", 'e', decimal_in_shortest -6 and 21): the
// shortest decimal digits that read back to the same float32 (the closest such, ties to even),
// positional when the decimal exponent e of the first digit is in [-6, 21) ("0", "-0.30103",
// "0.000001", "-123.5"), else "d.ddde-7" / "1e21" (no '+', no leading zeros in the exponent:
// "-1.5e-7", "1e-45", "3.4028235e38"); "-0" for negative zero, "inf", "-inf", and "NaN" (no sign).
//
// Rows are formatted in parallel in chunks and written in order. A path ending in ".gz" is
// gzip-compressed, each chunk as its own gzip member (compressed in parallel; a multi-member
// file is one valid gzip stream to zlib, gzip and Python). The writer only writes to a file
// descriptor: which file it is (a temporary renamed into place, stdout, a device) is decided in
// Python (speechdecode/_io.py), so every output follows one rule.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace speechdecode {

// One order of a model: rows[i * n .. i * n + n) are the word ids of n-gram i.
struct ArpaOrderView {
  const int32_t* rows = nullptr;
  const double* log10_probs = nullptr;
  const double* backoffs = nullptr;  // null for the highest order (no backoff column)
  int64_t size = 0;
};

// A file that could not be written; error_number is the errno value (0 if none applies).
class FileWriteError : public std::runtime_error {
 public:
  FileWriteError(const std::string& path, int error_number, const std::string& reason)
      : std::runtime_error(path + ": " + reason), path_(path), error_number_(error_number), reason_(reason) {}

  const std::string& path() const { return path_; }
  int error_number() const { return error_number_; }
  const std::string& reason() const { return reason_; }

 private:
  std::string path_;
  int error_number_;
  std::string reason_;
};

// Writes `value` (rounded to float32) as described above into out (at least 64 bytes);
// returns the end of the text.
char* format_arpa_float(double value, char* out);

// Writes the model to the open descriptor fd (gzip members when `gzip`); `name` names the
// output in errors. orders[n-1] holds the n-grams of order n; ids must be in [0, words.size())
// (TensorError naming "ngrams[k]" before anything is written). Throws FileWriteError for I/O
// failures. Does not close fd. Takes no Python lock.
void write_arpa_file(int fd, const std::string& name, bool gzip, const std::vector<std::string>& words,
                     const std::vector<ArpaOrderView>& orders, int num_threads);

// The same file written one order at a time, for producers that finish the orders in turn and
// free each once written (the streaming `lm build`): the header from the sizes, then
// write_order(1), ..., write_order(N), then finish(). The caller vouches for the ids (in
// [0, words.size())): write_arpa_file checks them all first, the estimator's rows are its
// validated counts.
class ArpaStreamWriter {
 public:
  ArpaStreamWriter(int fd, const std::string& name, bool gzip, const std::vector<std::string>& words,
                   const std::vector<int64_t>& sizes, int num_threads);
  ~ArpaStreamWriter();
  void write_order(int n, const ArpaOrderView& view);
  void finish();

 private:
  struct State;
  State* state_;
};

}  // namespace speechdecode

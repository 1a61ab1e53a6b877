// Reading back-off n-gram language models in the ARPA text format.
//
// The format is Doug Paul's ARPA format as SRILM and KenLM write it: a `\data\` header with
// `ngram N=COUNT` lines, one `\N-grams:` section per order (`log10(p) w1 .. wN [log10(backoff)]`
// per line) and `\end\`. The reader follows KenLM's loader (lm/read_arpa.cc) in what it accepts
// and rejects, and is stricter where KenLM is silent (duplicates); the rules are spelled out on
// read_arpa_file below. Parsing is one pass over the whole file held in memory (plain or gzip,
// through zlib), numbers via std::from_chars, words through an exact string hash table.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "common/string_ids.h"

namespace speechdecode {

using WordId = uint32_t;

// The vocabulary ids every model gives its special words (KenLM gives `<unk>` id 0 and numbers
// the rest in file order; lmplz lists `<unk> <s> </s>` first, so ids agree for its files).
constexpr WordId kUnkId = 0;
constexpr WordId kBosId = 1;
constexpr WordId kEosId = 2;

// The longest n-gram order a model may have (KenLM's default build stops at 6).
constexpr int kMaxOrder = 10;

// A malformed ARPA file. line is 1-based; 0 means the file as a whole (no single line).
class ArpaFormatError : public std::invalid_argument {
 public:
  ArpaFormatError(const std::string& path, uint64_t line, const std::string& message)
      : std::invalid_argument(path + (line ? ":" + std::to_string(line) : std::string()) + ": " + message),
        path_(path),
        line_(line),
        message_(message) {}

  const std::string& path() const { return path_; }
  uint64_t line() const { return line_; }
  const std::string& message() const { return message_; }

 private:
  std::string path_;
  uint64_t line_;
  std::string message_;
};

// A file that could not be opened or read; error_number is the errno value (0 if unknown).
class FileReadError : public std::runtime_error {
 public:
  FileReadError(const std::string& path, int error_number, const std::string& reason)
      : std::runtime_error(path + ": " + reason), path_(path), error_number_(error_number) {}

  const std::string& path() const { return path_; }
  int error_number() const { return error_number_; }

 private:
  std::string path_;
  int error_number_;
};

// The n-grams of one order n >= 2 in file order; entry i is words[i*n .. i*n+n) (text order).
struct ArpaOrder {
  std::vector<WordId> words;
  std::vector<float> probs;
  std::vector<float> backoffs;  // empty for the highest order
  uint64_t header_line = 0;     // line of `\n-grams:`
  size_t header_offset = 0;     // byte offset of that line in ArpaContents::text
};

// A file's bytes: mapped (plain files) or decompressed into memory (gzip).
class FileText {
 public:
  static FileText read(const std::string& path);
  FileText() = default;
  FileText(FileText&&) noexcept;
  FileText& operator=(FileText&&) noexcept;
  FileText(const FileText&) = delete;
  FileText& operator=(const FileText&) = delete;
  ~FileText();

  const char* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  const char* data_ = "";
  size_t size_ = 0;
  void* mapping_ = nullptr;  // munmap(mapping_, size_) when set
  std::unique_ptr<char[]> owned_;
};

// Everything an ARPA file says, as read. Unigrams are indexed by word id.
struct ArpaContents {
  std::string path;
  FileText text;                 // the file, kept to locate lines for later errors
  std::vector<uint64_t> counts;  // per order, as `\data\` declares and the sections hold
  uint64_t data_line = 0;        // line of `\data\`
  StringIds vocab;               // words by id
  std::vector<float> unigram_probs;
  std::vector<float> unigram_backoffs;
  std::vector<uint64_t> unigram_lines;
  bool unk_in_file = false;
  std::vector<ArpaOrder> orders;  // orders[n - 2] holds order n

  int order() const { return static_cast<int>(counts.size()); }
  // Line of entry `index` (file order) of the order-n section; rescans the text, for errors only.
  uint64_t line_of(int n, size_t index) const;
  // The words of entry `index` of order n, joined by spaces, for error messages.
  std::string ngram_text(int n, size_t index) const;
};

// Reads path (gzip-compressed or plain, told apart by content, not by name).
//
// Accepted, as KenLM accepts it: blank lines and `#` comment lines before `\data\`; blank lines
// anywhere after it; spaces or tabs between fields, `\r\n` line ends; a backoff of 0 on the
// highest order; `-inf` as a log10 probability (an impossible event); a missing `<unk>`, which
// is added with log10 probability -100 and backoff 0 (KenLM's `unknown_missing_logprob`); `<UNK>`
// as a spelling of `<unk>`.
// Rejected with ArpaFormatError naming file and line: anything else before `\data\`; missing or
// non-consecutive `ngram N=COUNT` lines; a missing, repeated or out-of-order `\N-grams:` header;
// a section holding more or fewer entries than declared; a field count other than
// 1 + N words (+ 1 backoff below the highest order); numbers that do not parse, NaN, +inf, a
// positive log10 probability (KenLM's default), a non-finite backoff, a non-zero backoff on the
// highest order; a word of an n-gram that is not a unigram; a duplicate unigram; a missing
// `<s>` or `</s>` (KenLM's default); a word that is not valid UTF-8; a missing `\end\`, or text
// after it; orders above kMaxOrder. Duplicate and context checks of higher orders happen when
// the model is built (ngram_model.cc), which reports them the same way.
ArpaContents read_arpa_file(const std::string& path);

// An ARPA number as a double: std::from_chars' general format after an optional '+' (so "inf"
// and "nan" in any case too). A value beyond double's range rounds as Python's float() rounds
// it: to +-inf, or to +-0 or a subnormal. False when text is not such a number.
bool parse_arpa_double(std::string_view text, double* out);

}  // namespace speechdecode

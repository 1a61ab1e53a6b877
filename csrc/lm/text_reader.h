// Reading text corpora for n-gram counting: lines of plain or gzip files, UTF-8 checking and
// repair, and splitting a line into LM tokens.
//
// The tokens are those of speechdecode.lm.counts.to_units, which calls Python's str.split():
// words are maximal runs of characters that are not Unicode whitespace in Python's sense
// (str.isspace: ASCII \t \n \v \f \r, space, the separators U+001C..U+001F, and U+0085, U+00A0,
// U+1680, U+2000..U+200A, U+2028, U+2029, U+202F, U+205F, U+3000). With character units every
// code point of a word is a token, and one boundary token separates consecutive words.
//
// Lines end at '\n' (as KenLM reads them; a '\r' before it is whitespace). Invalid UTF-8 is
// either an error or replaced exactly as Python's decoder with errors="replace" does: each
// maximal ill-formed subpart (Unicode 15, section 3.9, "U+FFFD substitution of maximal
// subparts") becomes one U+FFFD.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

struct gzFile_s;

namespace speechdecode {

enum class EncodingErrors { kStrict, kReplace };

// Reads one file line by line. zlib's gzread detects gzip from the first bytes and reads
// other files unchanged, so plain text, .gz files and concatenated gzip members all work.
class LineReader {
 public:
  // Throws InputFileError when the file cannot be opened.
  explicit LineReader(std::string path);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // The next line without its '\n', valid until the next call; false at the end of the file.
  // A last line without '\n' is still a line; an empty file has none.
  bool next(std::string_view* line);
  // 1-based number of the line last returned.
  int64_t line_number() const { return line_number_; }
  // File bytes consumed so far (compressed bytes for gzip input): progress against the file size.
  uint64_t bytes_consumed() const;
  const std::string& path() const { return path_; }

 private:
  bool fill();

  std::string path_;
  gzFile_s* file_ = nullptr;
  std::vector<char> buffer_;
  size_t begin_ = 0;  // first unread byte in buffer_
  size_t end_ = 0;    // one past the last valid byte in buffer_
  bool eof_ = false;
  int64_t line_number_ = 0;
};

// Offset of the first byte of the first ill-formed UTF-8 sequence in s, or npos.
size_t find_invalid_utf8(std::string_view s);

// s with every maximal ill-formed subpart replaced by U+FFFD, written to *out (overwritten).
void repair_utf8(std::string_view s, std::string* out);

// Byte length of the whitespace character starting at p (valid UTF-8, n bytes left), or 0.
inline size_t whitespace_length(const unsigned char* p, size_t n) {
  const unsigned char c = p[0];
  if (c < 0x80) return ((c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20)) ? 1 : 0;
  if (c == 0xC2) return (n >= 2 && (p[1] == 0x85 || p[1] == 0xA0)) ? 2 : 0;
  if (c == 0xE1) return (n >= 3 && p[1] == 0x9A && p[2] == 0x80) ? 3 : 0;  // U+1680
  if (c == 0xE3) return (n >= 3 && p[1] == 0x80 && p[2] == 0x80) ? 3 : 0;  // U+3000
  if (c != 0xE2 || n < 3) return 0;
  if (p[1] == 0x80) {
    const unsigned char d = p[2];
    return ((d >= 0x80 && d <= 0x8A) || d == 0xA8 || d == 0xA9 || d == 0xAF) ? 3 : 0;  // U+2000..
  }
  return (p[1] == 0x81 && p[2] == 0x9F) ? 3 : 0;  // U+205F
}

// Byte length of the UTF-8 sequence whose lead byte is c (valid input).
inline size_t sequence_length(unsigned char c) { return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4; }

// Calls on_word(std::string_view) for each whitespace-separated word of valid UTF-8 text, as
// Python's str.split() with no argument.
template <typename Fn>
void split_words(std::string_view text, Fn&& on_word) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  size_t start = 0;
  bool in_word = false;
  while (i < n) {
    const unsigned char c = p[i];
    size_t space = 0;
    size_t step = 1;
    if (c < 0x80) {
      space = (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20);
    } else {
      space = whitespace_length(p + i, n - i);
      step = space ? space : sequence_length(c);
    }
    if (space) {
      if (in_word) on_word(text.substr(start, i - start));
      in_word = false;
    } else if (!in_word) {
      in_word = true;
      start = i;
    }
    i += step;
  }
  if (in_word) on_word(text.substr(start, n - start));
}

// Calls on_char(std::string_view) for each code point of each word, and on_boundary() between
// consecutive words: to_units(text, "char", boundary) with the boundary left to the caller.
template <typename CharFn, typename BoundaryFn>
void split_chars(std::string_view text, CharFn&& on_char, BoundaryFn&& on_boundary) {
  bool first = true;
  split_words(text, [&](std::string_view word) {
    if (!first) on_boundary();
    first = false;
    const auto* p = reinterpret_cast<const unsigned char*>(word.data());
    for (size_t i = 0; i < word.size();) {
      const size_t len = sequence_length(p[i]);
      on_char(word.substr(i, len));
      i += len;
    }
  });
}

}  // namespace speechdecode

#include "lm/arpa_reader.h"

#include <fcntl.h>
#include <locale.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

#include "common/parallel.h"

namespace speechdecode {

// ---------------------------------------------------------------------------------------------
// FileText

FileText::FileText(FileText&& other) noexcept { *this = std::move(other); }

FileText& FileText::operator=(FileText&& other) noexcept {
  if (this != &other) {
    if (mapping_ != nullptr) munmap(mapping_, size_);
    data_ = other.data_;
    size_ = other.size_;
    mapping_ = other.mapping_;
    owned_ = std::move(other.owned_);
    other.data_ = "";
    other.size_ = 0;
    other.mapping_ = nullptr;
  }
  return *this;
}

FileText::~FileText() {
  if (mapping_ != nullptr) munmap(mapping_, size_);
}

namespace {
// The first buffer for data read through zlib, and how far a gzip trailer's size is believed.
constexpr size_t kFirstChunk = size_t{1} << 20;
constexpr size_t kTrailerTrust = 16;

// Doubles buffer's capacity, keeping its first `used` bytes.
void grow(std::unique_ptr<char[]>* buffer, size_t* capacity, size_t used) {
  std::unique_ptr<char[]> bigger(new char[*capacity * 2]);
  std::memcpy(bigger.get(), buffer->get(), used);
  *buffer = std::move(bigger);
  *capacity *= 2;
}

// Text never holds NUL bytes: stop at once on binary data (a device such as /dev/zero, a KenLM
// binary given as ARPA) instead of reading it all into memory.
void check_no_nul(const std::string& path, const char* data, size_t size, size_t at) {
  if (std::memchr(data, '\0', size) != nullptr) {
    throw ArpaFormatError(
        path, 0, "binary data (a NUL byte near byte " + std::to_string(at) + "): not an ARPA text file");
  }
}

// Decompresses the gzip file open as fd (closed on return) from its start, member after member
// (RFC 1952 allows several), into *buffer. inflate checks each member's CRC-32 and length. After a member
// only another member or zero padding (as tar leaves; Python's gzip allows it too) may follow: other bytes
// are an error, where zlib's gzread would ignore them.
void read_gzip_members(const std::string& path, int fd, std::unique_ptr<char[]>* buffer, size_t* capacity,
                       size_t* used) {
  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
    close(fd);
    throw FileReadError(path, ENOMEM, "cannot start zlib");
  }
  struct Closer {
    z_stream* zs;
    int fd;
    ~Closer() {
      inflateEnd(zs);
      close(fd);
    }
  } closer{&zs, fd};
  constexpr size_t kInput = size_t{1} << 18;
  std::unique_ptr<unsigned char[]> input(new unsigned char[kInput]);
  uint64_t read_bytes = 0;  // compressed bytes read so far
  bool eof = false, between_members = false;
  for (;;) {
    if (zs.avail_in == 0 && !eof) {
      ssize_t n;
      do {
        n = read(fd, input.get(), kInput);
      } while (n < 0 && errno == EINTR);
      if (n < 0) {
        const int err = errno;
        throw FileReadError(path, err, std::strerror(err));
      }
      eof = n == 0;
      zs.next_in = input.get();
      zs.avail_in = static_cast<uInt>(n);
      read_bytes += static_cast<uint64_t>(n);
    }
    if (between_members) {
      while (zs.avail_in > 0 && *zs.next_in == 0) {
        ++zs.next_in;
        --zs.avail_in;
      }
      if (zs.avail_in == 0) {
        if (eof) return;
        continue;
      }
      if (zs.avail_in >= 2 && (zs.next_in[0] != 0x1f || zs.next_in[1] != 0x8b)) {
        throw ArpaFormatError(path, 0,
                              "bytes after the gzip data (at byte " +
                                  std::to_string(read_bytes - zs.avail_in) +
                                  ") that are not another gzip member: a damaged or appended-to file");
      }
      inflateReset(&zs);
      between_members = false;
    }
    if (*used == *capacity) grow(buffer, capacity, *used);
    char* out = buffer->get() + *used;
    zs.next_out = reinterpret_cast<Bytef*>(out);
    zs.avail_out = static_cast<uInt>(std::min<size_t>(*capacity - *used, 1u << 30));
    const uInt room = zs.avail_out;
    const int ret = inflate(&zs, Z_NO_FLUSH);
    const size_t produced = room - zs.avail_out;
    check_no_nul(path, out, produced, *used);
    *used += produced;
    if (ret == Z_STREAM_END) {
      between_members = true;
      continue;
    }
    if (ret == Z_OK || (ret == Z_BUF_ERROR && (zs.avail_out == 0 || (zs.avail_in == 0 && !eof)))) continue;
    if (ret == Z_BUF_ERROR)
      throw ArpaFormatError(path, 0, "gzip data is truncated (the file ends inside a member)");
    throw ArpaFormatError(path, 0,
                          std::string("gzip data is corrupt (zlib: ") + (zs.msg ? zs.msg : "error") + ")");
  }
}

}  // namespace

FileText FileText::read(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    throw FileReadError(path, err, std::strerror(err));
  }
  struct stat info;
  unsigned char magic[2] = {0, 0};
  const bool is_file = fstat(fd, &info) == 0 && S_ISREG(info.st_mode);
  const ssize_t got = is_file ? pread(fd, magic, 2, 0) : -1;
  FileText text;
  if (is_file && !(got == 2 && magic[0] == 0x1f && magic[1] == 0x8b)) {
    // Plain text: map it (read-only, sequential).
    if (info.st_size > 0) {
      void* map = mmap(nullptr, static_cast<size_t>(info.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
      if (map != MAP_FAILED) {
        madvise(map, static_cast<size_t>(info.st_size), MADV_SEQUENTIAL);
        text.mapping_ = map;
        text.data_ = static_cast<const char*>(map);
        text.size_ = static_cast<size_t>(info.st_size);
        close(fd);
        // Text never holds NUL bytes (as for gzip data below): a word with one is binary data.
        const void* nul = std::memchr(text.data_, '\0', text.size_);
        if (nul != nullptr) {
          const char* at = static_cast<const char*>(nul);
          const uint64_t line = 1 + static_cast<uint64_t>(std::count(text.data_, at, '\n'));
          throw ArpaFormatError(path, line, "a NUL byte (binary data): not an ARPA text file");
        }
        return text;
      }
    }
  }
  // Gzip, or anything mmap refuses (a pipe, a device): zlib reads it, passing plain bytes through
  // unchanged. A gzip file goes member by member (read_gzip_members), which gzread cannot check.
  // A gzip file ends with its uncompressed size mod 2^32 (exact for one member under 4 GiB):
  // with it the buffer is allocated once. One byte more lets the loop see the end. The trailer
  // is only a hint: it is believed up to 16 times the compressed size (ARPA text compresses
  // 3-6x), so a corrupt or hostile trailer cannot make the first allocation large; beyond that
  // the buffer grows with the data actually decompressed.
  size_t capacity = kFirstChunk;
  if (is_file && info.st_size >= 18) {
    unsigned char trailer[4];
    if (pread(fd, trailer, 4, info.st_size - 4) == 4) {
      const uint32_t isize =
          trailer[0] | (trailer[1] << 8) | (trailer[2] << 16) | (uint32_t{trailer[3]} << 24);
      const size_t believable = static_cast<size_t>(info.st_size) * kTrailerTrust;
      capacity = std::max<size_t>(capacity, std::min<size_t>(size_t{isize} + 1, believable));
    }
  }
  std::unique_ptr<char[]> buffer(new char[capacity]);
  size_t used = 0;
  if (is_file && got == 2 && magic[0] == 0x1f && magic[1] == 0x8b) {
    read_gzip_members(path, fd, &buffer, &capacity, &used);  // closes fd
    text.owned_ = std::move(buffer);
    text.data_ = text.owned_.get();
    text.size_ = used;
    return text;
  }
  gzFile file = gzdopen(fd, "rb");
  if (file == nullptr) {
    close(fd);
    throw FileReadError(path, ENOMEM, "cannot start zlib");
  }
  gzbuffer(file, 1 << 18);
  for (;;) {
    if (used == capacity) grow(&buffer, &capacity, used);
    const unsigned want = static_cast<unsigned>(std::min<size_t>(capacity - used, 1u << 30));
    const int n = gzread(file, buffer.get() + used, want);
    if (n < 0) {
      const int err = errno;
      int zerr = 0;
      const std::string message = gzerror(file, &zerr);
      gzclose(file);
      if (zerr == Z_ERRNO) throw FileReadError(path, err, std::strerror(err));
      throw ArpaFormatError(path, 0, "gzip data is corrupt (zlib: " + message + ")");
    }
    if (n == 0) break;
    try {
      check_no_nul(path, buffer.get() + used, static_cast<size_t>(n), used);
    } catch (...) {
      gzclose(file);
      throw;
    }
    used += static_cast<size_t>(n);
  }
  int zerr = 0;
  const std::string message = gzerror(file, &zerr);
  gzclose(file);
  if (zerr != Z_OK)
    throw ArpaFormatError(path, 0, "gzip data is truncated or corrupt (zlib: " + message + ")");
  text.owned_ = std::move(buffer);
  text.data_ = text.owned_.get();
  text.size_ = used;
  return text;
}

namespace {

// ---------------------------------------------------------------------------------------------
// Tokens and numbers

// Field separators, as bytes.split() in Python: space, \t, \r, \v, \f (\n ends the line).
struct SpaceTable {
  bool space[256] = {};
  constexpr SpaceTable() {
    for (unsigned char c : {' ', '\t', '\r', '\v', '\f'}) space[c] = true;
  }
};
constexpr SpaceTable kSpaces;

inline bool is_space(char c) { return kSpaces.space[static_cast<unsigned char>(c)]; }

std::string_view trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && is_space(s[b])) ++b;
  while (e > b && is_space(s[e - 1])) --e;
  return s.substr(b, e - b);
}

// Splits line into at most `limit` fields; returns the number of fields, counting past the limit
// up to limit + 1 so that callers can tell "too many".
size_t split_fields(std::string_view line, std::string_view* out, size_t limit) {
  size_t n = 0;
  const char* p = line.data();
  const char* end = p + line.size();
  while (p < end) {
    while (p < end && is_space(*p)) ++p;
    if (p == end) break;
    const char* start = p;
    while (p < end && !is_space(*p)) ++p;
    if (n == limit) return n + 1;
    out[n++] = std::string_view(start, static_cast<size_t>(p - start));
  }
  return n;
}

// text without a leading '+' (one followed by '-' is kept, so that "+-1" is not a number).
std::string_view unsigned_plus(std::string_view text) {
  if (text.size() > 1 && text[0] == '+' && text[1] != '-') text.remove_prefix(1);
  return text;
}

// A decimal number as a float (parse_arpa_double's format). A value beyond float's range rounds
// through double: to +-inf, or to +-0 or a subnormal.
bool parse_number(std::string_view text, float* out) {
  const std::string_view digits = unsigned_plus(text);
  const char* e = digits.data() + digits.size();
  auto [ptr, ec] = std::from_chars(digits.data(), e, *out, std::chars_format::general);
  if (ec == std::errc::result_out_of_range) {
    double wide = 0;
    if (!parse_arpa_double(text, &wide)) return false;
    *out = static_cast<float>(wide);
    return true;
  }
  return ec == std::errc() && ptr == e;
}

bool parse_count(std::string_view text, uint64_t* out) {
  if (text.empty()) return false;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), *out, 10);
  return ec == std::errc() && ptr == text.data() + text.size();
}

bool valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    const unsigned c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    size_t extra;
    uint32_t code;
    if ((c & 0xE0) == 0xC0) {
      extra = 1;
      code = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2;
      code = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3;
      code = c & 0x07;
    } else {
      return false;
    }
    if (static_cast<size_t>(end - p) <= extra) return false;
    for (size_t k = 1; k <= extra; ++k) {
      if ((p[k] & 0xC0) != 0x80) return false;
      code = (code << 6) | (p[k] & 0x3F);
    }
    static constexpr uint32_t kMinimum[4] = {0, 0x80, 0x800, 0x10000};
    if (code < kMinimum[extra] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return false;
    p += extra + 1;
  }
  return true;
}

std::string quote(std::string_view s) {
  constexpr size_t kShown = 60;
  std::string out = "'";
  out.append(s.substr(0, kShown));
  if (s.size() > kShown) out += "...";
  return out + "'";
}

// ---------------------------------------------------------------------------------------------
// Lines

// Walks the lines of text[begin, end); `line` is the number of the line last returned.
struct LineCursor {
  const char* p;
  const char* end;
  uint64_t line;
  const char* line_start = nullptr;

  // The next line without its '\n'; false at the end of the range.
  bool next(std::string_view* out) {
    if (p >= end) return false;
    line_start = p;
    const void* nl = std::memchr(p, '\n', static_cast<size_t>(end - p));
    const char* stop = nl ? static_cast<const char*>(nl) : end;
    *out = std::string_view(p, static_cast<size_t>(stop - p));
    p = nl ? stop + 1 : end;
    ++line;
    return true;
  }
  void unread() {
    p = line_start;
    --line;
  }
  // The next line that is not blank, trimmed; false at the end of the range.
  bool next_nonblank(std::string_view* out) {
    while (next(out)) {
      *out = trim(*out);
      if (!out->empty()) return true;
    }
    return false;
  }
};

// ---------------------------------------------------------------------------------------------
// Entries

[[noreturn]] void fail_at(const ArpaContents& c, uint64_t line, const std::string& message) {
  throw ArpaFormatError(c.path, line, message);
}

float read_prob(const ArpaContents& c, uint64_t line, std::string_view field) {
  float value;
  if (!parse_number(field, &value))
    fail_at(c, line, "log10 probability " + quote(field) + " is not a number");
  if (std::isnan(value)) fail_at(c, line, "log10 probability " + quote(field) + " is NaN");
  if (value == std::numeric_limits<float>::infinity()) {
    fail_at(c, line, "log10 probability " + quote(field) + " is +inf");
  }
  if (value > 0) fail_at(c, line, "positive log10 probability " + quote(field) + " (a probability above 1)");
  return value;
}

float read_backoff(const ArpaContents& c, uint64_t line, std::string_view field) {
  float value;
  if (!parse_number(field, &value)) fail_at(c, line, "log10 backoff " + quote(field) + " is not a number");
  if (!std::isfinite(value)) fail_at(c, line, "log10 backoff " + quote(field) + " is not finite");
  return value;
}

WordId lookup(const ArpaContents& c, std::string_view word) {
  if (word == "<UNK>") return kUnkId;
  return c.vocab.find(word);
}

// Splits an entry line of order n and checks its shape and numbers; returns false for a blank line.
bool split_entry(const ArpaContents& c, int n, uint64_t line, std::string_view text, std::string_view* fields,
                 float* prob, float* backoff) {
  const size_t most = static_cast<size_t>(n) + 2;
  const size_t count = split_fields(text, fields, most);
  if (count == 0) return false;
  if (count < static_cast<size_t>(n) + 1 || count > most) {
    fail_at(c, line,
            "a " + std::to_string(n) + "-gram line holds a log10 probability, " + std::to_string(n) +
                (n == 1 ? " word" : " words") + " and an optional backoff; got " +
                (count > most ? "more than " + std::to_string(most) : std::to_string(count)) + " fields");
  }
  *prob = read_prob(c, line, fields[0]);
  *backoff = 0;
  if (count == most) {
    *backoff = read_backoff(c, line, fields[n + 1]);
    if (n == c.order() && *backoff != 0) {
      fail_at(c, line,
              "non-zero backoff " + quote(fields[n + 1]) + " on the highest order (" + std::to_string(n) +
                  "), which has no backoff");
    }
  }
  return true;
}

// Where a section of order n >= 2 stopped: at a line whose first field starts with '\' (left
// unread), or at the end of the range.
struct SectionEnd {
  uint64_t entries;
  uint64_t line;  // the '\' line, or the range's last line
};

// Reads n-gram lines of order n >= 2 into out. More than `limit` entries is an error, reported
// with overflow_message.
SectionEnd read_ngram_lines(const ArpaContents& c, int n, LineCursor& cursor, ArpaOrder* out, uint64_t limit,
                            const std::string& overflow_message) {
  std::string_view line;
  std::string_view fields[kMaxOrder + 2];
  uint64_t entries = 0;
  const bool with_backoff = n < c.order();
  while (cursor.next(&line)) {
    float prob, backoff;
    const char* first = line.data();
    const char* stop = first + line.size();
    while (first < stop && is_space(*first)) ++first;
    if (first < stop && *first == '\\') {
      cursor.unread();
      return {entries, cursor.line + 1};
    }
    if (!split_entry(c, n, cursor.line, line, fields, &prob, &backoff)) continue;
    if (entries == limit) fail_at(c, cursor.line, overflow_message);
    for (int k = 0; k < n; ++k) {
      const WordId id = lookup(c, fields[1 + k]);
      if (id == StringIds::kNotFound) {
        fail_at(c, cursor.line,
                "word " + quote(fields[1 + k]) + " is not a 1-gram (the 1-grams list the whole vocabulary)");
      }
      out->words.push_back(id);
    }
    out->probs.push_back(prob);
    if (with_backoff) out->backoffs.push_back(backoff);
    ++entries;
  }
  return {entries, cursor.line};
}

// ---------------------------------------------------------------------------------------------
// The parser

class ArpaParser {
  // A line start; `line` is the number of the line before it (a LineCursor's starting state).
  struct Mark {
    const char* at;
    uint64_t line;
    std::string_view text;
  };

 public:
  explicit ArpaParser(ArpaContents& contents)
      : c_(contents), cursor_{contents.text.data(), contents.text.data() + contents.text.size(), 0} {}

  void parse() {
    read_header();
    read_counts();
    read_unigrams();
    if (c_.order() < 2 || !read_ngrams_in_parallel()) {
      for (int n = 2; n <= c_.order(); ++n) read_section(n);
    }
    read_end();
  }

 private:
  [[noreturn]] void fail(const std::string& message) const { fail_at(c_, cursor_.line, message); }

  std::string declared_where(int n) const {
    return "line " + std::to_string(count_lines_[n - 1]) + " declares " + std::to_string(c_.counts[n - 1]) +
           " " + std::to_string(n) + "-grams";
  }

  std::string too_many(int n) const {
    return "more than the " + std::to_string(c_.counts[n - 1]) + " " + std::to_string(n) +
           "-grams that line " + std::to_string(count_lines_[n - 1]) + " declares";
  }

  // Entries take at least 4 bytes of text each: a header that claims more reserves no more.
  size_t plausible(int n) const {
    return static_cast<size_t>(std::min<uint64_t>(c_.counts[n - 1], (cursor_.end - cursor_.p) / 4 + 1));
  }

  void read_header() {
    std::string_view line;
    while (cursor_.next_nonblank(&line)) {
      if (line[0] == '#') continue;
      if (line != "\\data\\")
        fail("expected '\\data\\' (only blank and '#' lines may precede it), got " + quote(line));
      c_.data_line = cursor_.line;
      return;
    }
    fail("no '\\data\\' header: the file holds no ARPA model");
  }

  void read_counts() {
    std::string_view line;
    while (cursor_.next(&line)) {
      line = trim(line);
      if (line.empty()) {
        if (c_.counts.empty()) continue;
        return;
      }
      if (line[0] == '\\' && !c_.counts.empty()) {
        cursor_.unread();
        return;
      }
      const size_t n = c_.counts.size() + 1;
      const std::string expected = "expected 'ngram " + std::to_string(n) + "=COUNT'";
      if (line.substr(0, 6) != "ngram ") fail(expected + ", got " + quote(line));
      const size_t eq = line.find('=');
      uint64_t order = 0, count = 0;
      if (eq == std::string_view::npos || !parse_count(trim(line.substr(6, eq - 6)), &order) || order != n ||
          !parse_count(trim(line.substr(eq + 1)), &count)) {
        fail(expected + ", got " + quote(line));
      }
      if (n > static_cast<size_t>(kMaxOrder)) {
        fail("order " + std::to_string(n) + " is above the supported maximum of " +
             std::to_string(kMaxOrder));
      }
      if (n == 1 && count == 0) fail("'ngram 1=0': a model needs unigrams (at least <s> and </s>)");
      c_.counts.push_back(count);
      count_lines_.push_back(cursor_.line);
    }
    if (c_.counts.empty()) fail("the file ends after '\\data\\' without 'ngram N=COUNT' lines");
  }

  void read_section_header(int n) {
    std::string_view line;
    const std::string header = "\\" + std::to_string(n) + "-grams:";
    if (!cursor_.next_nonblank(&line)) fail("the file ends before '" + header + "'");
    if (line != header) fail("expected '" + header + "', got " + quote(line));
  }

  void read_unigrams() {
    read_section_header(1);
    const uint64_t section_line = cursor_.line;
    const size_t room = plausible(1) + 3;
    c_.vocab.reserve(room);
    for (const char* special : {"<unk>", "<s>", "</s>"}) c_.vocab.insert(special);
    c_.unigram_probs.assign(3, 0.0f);
    c_.unigram_backoffs.assign(3, 0.0f);
    c_.unigram_lines.assign(3, 0);
    c_.unigram_probs.reserve(room);
    c_.unigram_backoffs.reserve(room);
    c_.unigram_lines.reserve(room);
    std::string_view line;
    std::string_view fields[3];
    uint64_t entries = 0, end_line = cursor_.line;
    while (cursor_.next(&line)) {
      end_line = cursor_.line;
      const std::string_view text = trim(line);
      if (!text.empty() && text[0] == '\\') {
        cursor_.unread();
        break;
      }
      float prob, backoff;
      if (!split_entry(c_, 1, cursor_.line, line, fields, &prob, &backoff)) continue;
      if (entries == c_.counts[0]) fail(too_many(1));
      add_unigram(fields[1], prob, backoff);
      ++entries;
    }
    if (entries < c_.counts[0]) {
      fail_at(c_, end_line,
              "the 1-gram section (line " + std::to_string(section_line) + ") ends after " +
                  std::to_string(entries) + " entries, but " + declared_where(1));
    }
    for (WordId id : {kBosId, kEosId}) {
      if (c_.unigram_lines[id] == 0) {
        fail_at(c_, section_line,
                "the 1-grams have no '" + std::string(c_.vocab.string(id)) +
                    "' (KenLM requires both <s> and </s>)");
      }
    }
    c_.unk_in_file = c_.unigram_lines[kUnkId] != 0;
    if (!c_.unk_in_file) {
      // KenLM's Config::unknown_missing_logprob.
      c_.unigram_probs[kUnkId] = -100.0f;
      c_.unigram_backoffs[kUnkId] = 0.0f;
    }
  }

  void add_unigram(std::string_view word, float prob, float backoff) {
    WordId id = lookup(c_, word);
    if (id == StringIds::kNotFound) {
      if (!valid_utf8(word)) fail("word " + quote(word) + " is not valid UTF-8");
      id = c_.vocab.insert(word).first;
      c_.unigram_probs.push_back(prob);
      c_.unigram_backoffs.push_back(backoff);
      c_.unigram_lines.push_back(cursor_.line);
      return;
    }
    if (c_.unigram_lines[id] != 0) {
      fail("duplicate 1-gram " + quote(word) + " (first on line " + std::to_string(c_.unigram_lines[id]) +
           ")");
    }
    c_.unigram_probs[id] = prob;
    c_.unigram_backoffs[id] = backoff;
    c_.unigram_lines[id] = cursor_.line;
  }

  ArpaOrder& start_order() {
    ArpaOrder order;
    order.header_line = cursor_.line;
    order.header_offset = static_cast<size_t>(cursor_.line_start - c_.text.data());
    c_.orders.push_back(std::move(order));
    return c_.orders.back();
  }

  void check_count(int n, const SectionEnd& end, uint64_t header_line) const {
    if (end.entries < c_.counts[n - 1]) {
      fail_at(c_, end.line,
              "the " + std::to_string(n) + "-gram section (line " + std::to_string(header_line) +
                  ") ends after " + std::to_string(end.entries) + " entries, but " + declared_where(n));
    }
  }

  // Sections of order >= 2, one after the other.
  void read_section(int n) {
    read_section_header(n);
    ArpaOrder& order = start_order();
    const size_t room = plausible(n);
    order.words.reserve(room * n);
    order.probs.reserve(room);
    if (n < c_.order()) order.backoffs.reserve(room);
    const SectionEnd end = read_ngram_lines(c_, n, cursor_, &order, c_.counts[n - 1], too_many(n));
    check_count(n, end, order.header_line);
  }

  // The same, split into chunks of lines read on all cores once the vocabulary is known. Only a
  // file whose remaining section headers are all where they belong goes this way (any other takes
  // read_section, to fail exactly where a sequential read fails), and errors are reported in
  // file order, as a sequential read meets them.
  bool read_ngrams_in_parallel() {
    constexpr size_t kChunkBytes = size_t{1} << 20;
    std::vector<Mark> headers;  // the '\' lines, up to \end\ .
    std::vector<Mark> cuts;     // chunk boundaries, every kChunkBytes
    {
      LineCursor scan = cursor_;
      std::string_view line;
      const char* next_cut = scan.p + kChunkBytes;
      while (scan.next(&line)) {
        const std::string_view text = trim(line);
        if (!text.empty() && text[0] == '\\') {
          headers.push_back({scan.line_start, scan.line - 1, text});
          if (text == "\\end\\") break;
        } else if (scan.line_start >= next_cut) {
          cuts.push_back({scan.line_start, scan.line - 1, text});
          next_cut = scan.line_start + kChunkBytes;
        }
      }
    }
    const int order = c_.order();
    if (headers.size() != static_cast<size_t>(order)) return false;
    for (int n = 2; n <= order; ++n) {
      if (headers[n - 2].text != "\\" + std::to_string(n) + "-grams:") return false;
    }

    struct Chunk {
      int n;
      Mark begin;
      const char* end;
      ArpaOrder entries;
      std::exception_ptr error;
      uint64_t error_line;
    };
    std::vector<Chunk> chunks;
    size_t cut = 0;
    for (int n = 2; n <= order; ++n) {
      const Mark& header = headers[n - 2];
      const Mark& next = headers[n - 1];
      const void* header_end = std::memchr(header.at, '\n', static_cast<size_t>(next.at - header.at));
      Mark begin{static_cast<const char*>(header_end) + 1, header.line + 1, {}};
      while (cut < cuts.size() && cuts[cut].at < begin.at) ++cut;
      for (; cut < cuts.size() && cuts[cut].at < next.at; ++cut) {
        chunks.push_back(Chunk{n, begin, cuts[cut].at, ArpaOrder(), nullptr, 0});
        begin = cuts[cut];
      }
      chunks.push_back(Chunk{n, begin, next.at, ArpaOrder(), nullptr, 0});
    }
    parallel_for(static_cast<int64_t>(chunks.size()), resolve_num_threads(0), [&](int64_t i) {
      Chunk& chunk = chunks[i];
      LineCursor lines{chunk.begin.at, chunk.end, chunk.begin.line};
      try {
        read_ngram_lines(c_, chunk.n, lines, &chunk.entries, UINT64_MAX, std::string());
      } catch (const ArpaFormatError& e) {
        chunk.error = std::current_exception();
        chunk.error_line = e.line();
      }
    });

    size_t first = 0;
    for (int n = 2; n <= order; ++n) {
      size_t last = first;
      while (last < chunks.size() && chunks[last].n == n) ++last;
      // The first entry past the declared count, if any.
      const uint64_t declared = c_.counts[n - 1];
      uint64_t entries = 0;
      uint64_t overflow_line = 0;
      for (size_t i = first; i < last; ++i) {
        const uint64_t here = chunks[i].entries.probs.size();
        if (!overflow_line && entries + here > declared) {
          overflow_line = entry_line(chunks[i].begin, chunks[i].end, declared - entries);
        }
        entries += here;
      }
      for (size_t i = first; i < last; ++i) {
        if (!chunks[i].error) continue;
        if (!overflow_line || chunks[i].error_line < overflow_line) std::rethrow_exception(chunks[i].error);
        break;
      }
      if (overflow_line) fail_at(c_, overflow_line, too_many(n));
      cursor_ = LineCursor{headers[n - 2].at, cursor_.end, headers[n - 2].line};
      std::string_view header;
      cursor_.next(&header);
      ArpaOrder& out = start_order();
      check_count(n, SectionEnd{entries, headers[n - 1].line + 1}, out.header_line);
      out.words.reserve(entries * n);
      out.probs.reserve(entries);
      if (n < order) out.backoffs.reserve(entries);
      for (size_t i = first; i < last; ++i) {
        const ArpaOrder& part = chunks[i].entries;
        out.words.insert(out.words.end(), part.words.begin(), part.words.end());
        out.probs.insert(out.probs.end(), part.probs.begin(), part.probs.end());
        out.backoffs.insert(out.backoffs.end(), part.backoffs.begin(), part.backoffs.end());
        chunks[i].entries = ArpaOrder();
      }
      first = last;
    }
    cursor_ = LineCursor{headers[order - 1].at, cursor_.end, headers[order - 1].line};
    return true;
  }

  // Line of the k-th (from 0) entry line of text[begin.at, end).
  static uint64_t entry_line(const Mark& begin, const char* end, uint64_t k) {
    LineCursor lines{begin.at, end, begin.line};
    std::string_view line;
    uint64_t seen = 0;
    while (lines.next(&line)) {
      if (trim(line).empty()) continue;
      if (seen++ == k) break;
    }
    return lines.line;
  }

  void read_end() {
    std::string_view line;
    if (!cursor_.next_nonblank(&line)) fail("the file ends without '\\end\\'");
    if (line != "\\end\\") {
      if (line[0] == '\\') {
        fail("expected '\\end\\' after the " + std::to_string(c_.order()) + "-grams, got " + quote(line));
      }
      fail("expected '\\end\\', got " + quote(line));
    }
    if (cursor_.next_nonblank(&line)) fail("text after '\\end\\': " + quote(line));
  }

  ArpaContents& c_;
  LineCursor cursor_;
  std::vector<uint64_t> count_lines_;
};

}  // namespace

uint64_t ArpaContents::line_of(int n, size_t index) const {
  const ArpaOrder& order = orders[n - 2];
  const char* p = text.data() + order.header_offset;
  const char* end = text.data() + text.size();
  uint64_t line = order.header_line;
  size_t seen = 0;
  bool first = true;
  while (p < end) {
    const void* nl = std::memchr(p, '\n', static_cast<size_t>(end - p));
    const char* stop = nl ? static_cast<const char*>(nl) : end;
    if (!first) {
      ++line;
      if (!trim(std::string_view(p, static_cast<size_t>(stop - p))).empty()) {
        if (seen == index) return line;
        ++seen;
      }
    }
    first = false;
    p = nl ? stop + 1 : end;
  }
  return 0;
}

std::string ArpaContents::ngram_text(int n, size_t index) const {
  std::string out;
  const WordId* w = orders[n - 2].words.data() + index * n;
  for (int k = 0; k < n; ++k) {
    if (k) out += ' ';
    out.append(vocab.string(w[k]));
  }
  return out;
}

bool parse_arpa_double(std::string_view text, double* out) {
  const std::string_view digits = unsigned_plus(text);
  const char* e = digits.data() + digits.size();
  const auto [ptr, ec] = std::from_chars(digits.data(), e, *out, std::chars_format::general);
  if (ptr != e || (ec != std::errc() && ec != std::errc::result_out_of_range)) return false;
  if (ec == std::errc::result_out_of_range) {
    // std::from_chars leaves the value unset; strtod rounds to +-HUGE_VAL (inf), +-0 or a
    // subnormal. The C locale, whatever the process set: the decimal point is '.'.
    static const locale_t c_locale = newlocale(LC_ALL_MASK, "C", locale_t{});
    const std::string copy(digits);
    *out = strtod_l(copy.c_str(), nullptr, c_locale);
  }
  return true;
}

ArpaContents read_arpa_file(const std::string& path) {
  ArpaContents contents;
  contents.path = path;
  contents.text = FileText::read(path);
  ArpaParser(contents).parse();
  return contents;
}

}  // namespace speechdecode

#include "lm/text_reader.h"

#include <zlib.h>

#include <cerrno>
#include <cstring>

#include "common/errors.h"

namespace speechdecode {
namespace {

constexpr size_t kInitialBuffer = size_t{1} << 22;  // 4 MiB; doubled for longer lines
constexpr unsigned kGzBuffer = 1u << 18;            // zlib's own input buffer

// Length of the well-formed UTF-8 sequence at p (n >= 1 bytes left), or 0 with *subpart set to
// the length of the maximal ill-formed subpart there (>= 1). Table 3-7 of the Unicode standard:
// the second byte's range depends on the lead byte (no overlongs, surrogates, or > U+10FFFF).
inline size_t check_sequence(const unsigned char* p, size_t n, size_t* subpart) {
  const unsigned char c = p[0];
  if (c < 0x80) return 1;
  size_t len = 0;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    *subpart = 1;
    return 0;
  }
  size_t i = 1;
  for (; i < len && i < n; ++i) {
    const unsigned char d = p[i];
    if (d < (i == 1 ? lo : 0x80) || d > (i == 1 ? hi : 0xBF)) break;
  }
  if (i == len) return len;
  *subpart = i;
  return 0;
}

inline bool all_ascii8(const unsigned char* p) {
  uint64_t word;
  std::memcpy(&word, p, 8);
  return (word & 0x8080808080808080ull) == 0;
}

}  // namespace

LineReader::LineReader(std::string path) : path_(std::move(path)) {
  errno = 0;
  file_ = gzopen(path_.c_str(), "rb");
  if (file_ == nullptr) {
    throw InputFileError(path_, -1,
                         std::string("cannot open: ") + (errno ? std::strerror(errno) : "out of memory"));
  }
  gzbuffer(file_, kGzBuffer);
  buffer_.resize(kInitialBuffer);
}

LineReader::~LineReader() {
  if (file_ != nullptr) gzclose(file_);
}

uint64_t LineReader::bytes_consumed() const {
  const z_off_t offset = gzoffset(file_);
  return offset < 0 ? 0 : static_cast<uint64_t>(offset);
}

// Moves the unread tail to the front (growing the buffer when it is all one line) and reads
// more. False when nothing more could be read.
bool LineReader::fill() {
  if (eof_) return false;
  if (begin_ > 0) {
    std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  if (end_ == buffer_.size()) buffer_.resize(buffer_.size() * 2);
  const size_t room = std::min<size_t>(buffer_.size() - end_, size_t{1} << 30);
  const int got = gzread(file_, buffer_.data() + end_, static_cast<unsigned>(room));
  // At the end, zlib reports a gzip stream cut short (Z_BUF_ERROR) or a CRC / length mismatch in
  // its trailer only through gzerror: a cut corpus must not count as a shorter one.
  int code = Z_OK;
  const char* message = got <= 0 ? gzerror(file_, &code) : "";
  if (got < 0 || code != Z_OK) {
    throw InputFileError(path_, -1,
                         code == Z_ERRNO
                             ? std::string("read failed: ") + std::strerror(errno)
                             : std::string("gzip data is truncated or corrupt (zlib: ") + message + ")");
  }
  if (got == 0) {
    eof_ = true;
    return false;
  }
  end_ += static_cast<size_t>(got);
  return true;
}

bool LineReader::next(std::string_view* line) {
  size_t scanned = begin_;
  for (;;) {
    const void* newline = std::memchr(buffer_.data() + scanned, '\n', end_ - scanned);
    if (newline != nullptr) {
      const size_t at = static_cast<size_t>(static_cast<const char*>(newline) - buffer_.data());
      *line = std::string_view(buffer_.data() + begin_, at - begin_);
      begin_ = at + 1;
      ++line_number_;
      return true;
    }
    const size_t pending = end_ - begin_;
    if (!fill()) {
      if (pending == 0) return false;
      *line = std::string_view(buffer_.data() + begin_, pending);
      begin_ = end_;
      ++line_number_;
      return true;
    }
    scanned = begin_ + pending;
  }
}

size_t find_invalid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    if (i + 8 <= n && all_ascii8(p + i)) {
      i += 8;
      continue;
    }
    size_t subpart = 0;
    const size_t len = check_sequence(p + i, n - i, &subpart);
    if (len == 0) return i;
    i += len;
  }
  return std::string_view::npos;
}

void repair_utf8(std::string_view s, std::string* out) {
  static constexpr char kReplacement[] = "\xEF\xBF\xBD";
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  out->clear();
  out->reserve(n + 8);
  size_t i = 0;
  while (i < n) {
    size_t subpart = 0;
    const size_t len = check_sequence(p + i, n - i, &subpart);
    if (len > 0) {
      out->append(s.data() + i, len);
      i += len;
    } else {
      out->append(kReplacement, 3);
      i += subpart;
    }
  }
}

}  // namespace speechdecode

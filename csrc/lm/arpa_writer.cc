#include "lm/arpa_writer.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/errors.h"
#include "common/parallel.h"

namespace speechdecode {
namespace {

// Rows formatted by one work item (about 1 MB of text).
constexpr int64_t kRowsPerChunk = 1 << 15;
// Chunks formatted (and compressed) in parallel before they are written in order.
constexpr int64_t kChunksPerBatchPerThread = 2;
// Decimal exponents printed positionally, as lmplz's double-conversion converter is set up
// (decimal_in_shortest_low = -6, decimal_in_shortest_high = 21); others in exponent form.
constexpr int kPositionalMinExponent = -6;
constexpr int kPositionalMaxExponent = 21;

std::string error_text(int error_number) { return std::strerror(error_number); }

// An open temporary file beside the target; removed unless commit() renames it into place.
class TemporaryFile {
 public:
  explicit TemporaryFile(const std::string& path) : path_(path) {
    const size_t slash = path.rfind('/');
    const std::string directory = slash == std::string::npos ? std::string() : path.substr(0, slash + 1);
    const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
    std::string name = directory + "." + base + ".XXXXXX.tmp";
    std::vector<char> buffer(name.begin(), name.end());
    buffer.push_back('\0');
    fd_ = ::mkstemps(buffer.data(), 4);
    if (fd_ < 0) {
      const int error = errno;
      throw FileWriteError(path, error, "cannot create a temporary file beside it: " + error_text(error));
    }
    temporary_.assign(buffer.data());
  }

  ~TemporaryFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!temporary_.empty()) ::unlink(temporary_.c_str());
  }

  TemporaryFile(const TemporaryFile&) = delete;
  TemporaryFile& operator=(const TemporaryFile&) = delete;

  void write(const char* data, size_t size) {
    while (size > 0) {
      const ssize_t written = ::write(fd_, data, size);
      if (written < 0) {
        if (errno == EINTR) continue;
        fail("cannot write");
      }
      data += written;
      size -= static_cast<size_t>(written);
    }
  }

  void commit() {
    if (::fsync(fd_) != 0) fail("cannot sync");
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail("cannot close");
    if (::rename(temporary_.c_str(), path_.c_str()) != 0) fail("cannot rename the temporary file over it");
    temporary_.clear();
  }

 private:
  [[noreturn]] void fail(const std::string& what) {
    const int error = errno;
    throw FileWriteError(path_, error, what + ": " + error_text(error));
  }

  std::string path_;
  std::string temporary_;
  int fd_ = -1;
};

// One complete gzip member holding `text`.
std::string gzip_member(const std::string& text) {
  z_stream stream;
  std::memset(&stream, 0, sizeof(stream));
  // windowBits 15 + 16: a gzip header and trailer around the deflate stream.
  if (deflateInit2(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    throw std::runtime_error("zlib: deflateInit2 failed");
  }
  std::string out(deflateBound(&stream, text.size()) + 32, '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  stream.avail_in = static_cast<uInt>(text.size());
  stream.next_out = reinterpret_cast<Bytef*>(&out[0]);
  stream.avail_out = static_cast<uInt>(out.size());
  const int status = deflate(&stream, Z_FINISH);
  const size_t produced = out.size() - stream.avail_out;
  deflateEnd(&stream);
  if (status != Z_STREAM_END) throw std::runtime_error("zlib: deflate did not finish");
  out.resize(produced);
  return out;
}

class Output {
 public:
  Output(const std::string& path, bool gzip) : file_(path), gzip_(gzip) {}

  // Pieces are written in order; with gzip each becomes one member, compressed in parallel.
  void write(std::vector<std::string>& pieces, int threads) {
    if (gzip_) {
      parallel_for(static_cast<int64_t>(pieces.size()), threads,
                   [&](int64_t i) { pieces[i] = gzip_member(pieces[i]); });
    }
    for (const std::string& piece : pieces) file_.write(piece.data(), piece.size());
  }

  void write(std::string piece) {
    std::vector<std::string> one(1, std::move(piece));
    write(one, 1);
  }

  void commit() { file_.commit(); }

 private:
  TemporaryFile file_;
  bool gzip_;
};

void append_row(std::string& text, const std::vector<std::string>& words, const ArpaOrderView& v, int n,
                int64_t i) {
  char number[64];
  char* end = format_arpa_float(v.log10_probs[i], number);
  text.append(number, end);
  text.push_back('\t');
  const int32_t* row = v.rows + i * n;
  for (int j = 0; j < n; ++j) {
    if (j) text.push_back(' ');
    text.append(words[row[j]]);
  }
  if (v.backoffs) {
    text.push_back('\t');
    end = format_arpa_float(v.backoffs[i], number);
    text.append(number, end);
  }
  text.push_back('\n');
}

}  // namespace

char* format_arpa_float(double value, char* out) {
  const float f = static_cast<float>(value);
  if (std::isnan(f)) {
    std::memcpy(out, "NaN", 3);  // no sign, whatever the NaN's sign bit
    return out + 3;
  }
  char* o = out;
  if (std::signbit(f)) *o++ = '-';  // -0 included: "-0"
  if (std::isinf(f)) {
    std::memcpy(o, "inf", 3);
    return o + 3;
  }
  if (f == 0) {
    *o++ = '0';
    return o;
  }
  // The shortest digits that read back to f (the closest such, ties to even), from to_chars in
  // scientific form: "d.ddde-07" gives the digits and the decimal exponent.
  char scientific[32];
  const auto format = std::chars_format::scientific;
  const char* end = std::to_chars(scientific, scientific + sizeof(scientific), std::fabs(f), format).ptr;
  char digits[16];
  int count = 0;
  const char* p = scientific;
  for (; p < end && *p != 'e'; ++p) {
    if (*p != '.') digits[count++] = *p;
  }
  int exponent = 0;  // of the first digit: value = d.ddd * 10^exponent
  std::from_chars(p + 1 + (p[1] == '+'), end, exponent);
  if (exponent < kPositionalMinExponent || exponent >= kPositionalMaxExponent) {
    // "d.ddde-7", "1e21": exponent without '+' or leading zeros.
    *o++ = digits[0];
    if (count > 1) {
      *o++ = '.';
      for (int i = 1; i < count; ++i) *o++ = digits[i];
    }
    *o++ = 'e';
    return std::to_chars(o, o + 8, exponent).ptr;
  }
  if (exponent >= 0) {
    for (int i = 0; i <= exponent; ++i) *o++ = i < count ? digits[i] : '0';
    if (count > exponent + 1) {
      *o++ = '.';
      for (int i = exponent + 1; i < count; ++i) *o++ = digits[i];
    }
  } else {
    *o++ = '0';
    *o++ = '.';
    for (int i = 0; i < -exponent - 1; ++i) *o++ = '0';
    for (int i = 0; i < count; ++i) *o++ = digits[i];
  }
  return o;
}

void write_arpa_file(const std::string& path, const std::vector<std::string>& words,
                     const std::vector<ArpaOrderView>& orders, int num_threads) {
  const int order = static_cast<int>(orders.size());
  if (order < 1) throw TensorError("ngrams", "at least one order", "none");
  int64_t total = 0;
  for (const auto& v : orders) total += v.size;
  const int threads = total < 4 * kRowsPerChunk ? 1 : resolve_num_threads(num_threads);
  const int64_t vocab = static_cast<int64_t>(words.size());
  for (int n = 1; n <= order; ++n) {
    const ArpaOrderView& v = orders[n - 1];
    const int64_t chunks = (v.size + kRowsPerChunk - 1) / kRowsPerChunk;
    parallel_for(chunks, threads, [&](int64_t c) {
      const int64_t end = std::min(v.size, (c + 1) * kRowsPerChunk) * n;
      for (int64_t k = c * kRowsPerChunk * n; k < end; ++k) {
        if (v.rows[k] < 0 || v.rows[k] >= vocab) {
          throw TensorError("ngrams[" + std::to_string(n - 1) + "]",
                            "word ids in [0, " + std::to_string(vocab) + ") (indices into words)",
                            std::to_string(v.rows[k]) + " at [" + std::to_string(k / n) + ", " +
                                std::to_string(k % n) + "]");
        }
      }
    });
  }

  const bool gzip = path.size() >= 3 && path.compare(path.size() - 3, 3, ".gz") == 0;
  Output out(path, gzip);
  std::string header = "\\data\\\n";
  for (int n = 1; n <= order; ++n)
    header += "ngram " + std::to_string(n) + "=" + std::to_string(orders[n - 1].size) + "\n";
  out.write(std::move(header));
  const int64_t batch = std::max<int64_t>(1, threads * kChunksPerBatchPerThread);
  for (int n = 1; n <= order; ++n) {
    const ArpaOrderView& v = orders[n - 1];
    out.write("\n\\" + std::to_string(n) + "-grams:\n");
    const int64_t chunks = (v.size + kRowsPerChunk - 1) / kRowsPerChunk;
    for (int64_t first = 0; first < chunks; first += batch) {
      const int64_t count = std::min(batch, chunks - first);
      std::vector<std::string> pieces(count);
      parallel_for(count, threads, [&](int64_t k) {
        const int64_t begin = (first + k) * kRowsPerChunk, end = std::min(v.size, begin + kRowsPerChunk);
        std::string& text = pieces[k];
        text.reserve(static_cast<size_t>(end - begin) * (24 + 8 * n));
        for (int64_t i = begin; i < end; ++i) append_row(text, words, v, n, i);
      });
      out.write(pieces, threads);
    }
  }
  out.write("\n\\end\\\n");
  out.commit();
}

}  // namespace speechdecode

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

// Writes to a file descriptor the caller opened (Python applies the output rule: temporary
// file, rename, special files in place); errors name the output.
class FdWriter {
 public:
  FdWriter(int fd, const std::string& name) : fd_(fd), name_(name) {}

  void write(const char* data, size_t size) {
    while (size > 0) {
      const ssize_t written = ::write(fd_, data, size);
      if (written < 0) {
        if (errno == EINTR) continue;
        const int error = errno;
        throw FileWriteError(name_, error, "cannot write: " + error_text(error));
      }
      data += written;
      size -= static_cast<size_t>(written);
    }
  }

 private:
  int fd_;
  std::string name_;
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
  Output(int fd, const std::string& name, bool gzip) : file_(fd, name), gzip_(gzip) {}

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

 private:
  FdWriter file_;
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

namespace {

void check_ids(const ArpaOrderView& v, int n, int64_t vocab, int threads) {
  const int64_t chunks = (v.size + kRowsPerChunk - 1) / kRowsPerChunk;
  parallel_for(chunks, threads, [&](int64_t c) {
    const int64_t end = std::min(v.size, (c + 1) * kRowsPerChunk) * n;
    for (int64_t k = c * kRowsPerChunk * n; k < end; ++k) {
      if (v.rows[k] < 0 || v.rows[k] >= vocab) {
        throw TensorError(
            "ngrams[" + std::to_string(n - 1) + "]",
            "word ids in [0, " + std::to_string(vocab) + ") (indices into words)",
            std::to_string(v.rows[k]) + " at [" + std::to_string(k / n) + ", " + std::to_string(k % n) + "]");
      }
    }
  });
}

int writer_threads(const std::vector<int64_t>& sizes, int num_threads) {
  int64_t total = 0;
  for (int64_t size : sizes) total += size;
  return total < 4 * kRowsPerChunk ? 1 : resolve_num_threads(num_threads);
}

}  // namespace

struct ArpaStreamWriter::State {
  State(int fd, const std::string& name, bool gzip, const std::vector<std::string>& words,
        const std::vector<int64_t>& sizes, int threads)
      : out(fd, name, gzip), words(words), sizes(sizes), threads(threads) {}
  Output out;
  const std::vector<std::string>& words;
  std::vector<int64_t> sizes;
  int threads;
  int next = 1;  // the order write_order takes next
};

ArpaStreamWriter::ArpaStreamWriter(int fd, const std::string& name, bool gzip,
                                   const std::vector<std::string>& words, const std::vector<int64_t>& sizes,
                                   int num_threads)
    : state_(nullptr) {
  if (sizes.empty()) throw TensorError("ngrams", "at least one order", "none");
  state_ = new State(fd, name, gzip, words, sizes, writer_threads(sizes, num_threads));
  std::string header = "\\data\\\n";
  for (size_t n = 1; n <= sizes.size(); ++n)
    header += "ngram " + std::to_string(n) + "=" + std::to_string(sizes[n - 1]) + "\n";
  state_->out.write(std::move(header));
}

ArpaStreamWriter::~ArpaStreamWriter() { delete state_; }

void ArpaStreamWriter::write_order(int n, const ArpaOrderView& v) {
  State& s = *state_;
  if (n != s.next || n > static_cast<int>(s.sizes.size()) || v.size != s.sizes[n - 1]) {
    throw std::logic_error("ArpaStreamWriter: order " + std::to_string(n) + " of size " +
                           std::to_string(v.size) + " out of turn");
  }
  ++s.next;
  s.out.write("\n\\" + std::to_string(n) + "-grams:\n");
  const int64_t batch = std::max<int64_t>(1, s.threads * kChunksPerBatchPerThread);
  const int64_t chunks = (v.size + kRowsPerChunk - 1) / kRowsPerChunk;
  for (int64_t first = 0; first < chunks; first += batch) {
    const int64_t count = std::min(batch, chunks - first);
    std::vector<std::string> pieces(count);
    parallel_for(count, s.threads, [&](int64_t k) {
      const int64_t begin = (first + k) * kRowsPerChunk, end = std::min(v.size, begin + kRowsPerChunk);
      std::string& text = pieces[k];
      text.reserve(static_cast<size_t>(end - begin) * (24 + 8 * n));
      for (int64_t i = begin; i < end; ++i) append_row(text, s.words, v, n, i);
    });
    s.out.write(pieces, s.threads);
  }
}

void ArpaStreamWriter::finish() {
  if (state_->next != static_cast<int>(state_->sizes.size()) + 1) {
    throw std::logic_error("ArpaStreamWriter: finished before the last order");
  }
  state_->out.write("\n\\end\\\n");
}

void write_arpa_file(int fd, const std::string& name, bool gzip, const std::vector<std::string>& words,
                     const std::vector<ArpaOrderView>& orders, int num_threads) {
  std::vector<int64_t> sizes;
  for (const auto& v : orders) sizes.push_back(v.size);
  if (sizes.empty()) throw TensorError("ngrams", "at least one order", "none");
  const int threads = writer_threads(sizes, num_threads);
  const int64_t vocab = static_cast<int64_t>(words.size());
  for (int n = 1; n <= static_cast<int>(orders.size()); ++n) check_ids(orders[n - 1], n, vocab, threads);
  ArpaStreamWriter writer(fd, name, gzip, words, sizes, num_threads);
  for (int n = 1; n <= static_cast<int>(orders.size()); ++n) writer.write_order(n, orders[n - 1]);
  writer.finish();
}

}  // namespace speechdecode

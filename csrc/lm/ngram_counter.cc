#include "lm/ngram_counter.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <limits>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <utility>

#include "common/errors.h"
#include "common/hash.h"
#include "common/parallel.h"
#include "common/string_ids.h"
#include "lm/external_sort.h"

namespace speechdecode {
namespace {

constexpr uint32_t kPad = std::numeric_limits<uint32_t>::max();  // after a record's last id
constexpr int32_t kUnkId = 0, kBosId = 1, kEosId = 2;
constexpr int32_t kBosInText = -1, kEosInText = -2;  // <s> / </s> written in the corpus
constexpr uint64_t kMinTableRecords = 1024;
constexpr uint64_t kInitialTableRecords = uint64_t{1} << 16;
constexpr uint64_t kProgressBytes = uint64_t{4} << 20;
constexpr uint64_t kProgressRecords = uint64_t{1} << 22;
constexpr size_t kChunkRecords = size_t{1} << 16;  // records hashed per batch
constexpr size_t kPrefetchDistance = 16;           // records between prefetch and insertion
constexpr uint32_t kMaxLoadPercent = 70;
constexpr size_t kParallelSortRecords = size_t{1} << 18;  // below: one std::sort
constexpr uint32_t kSortBuckets = 1u << 16;

// ---------------------------------------------------------------------------------------------
// Hashing (of id records; token strings go through StringIds).

// Maps a hash to [0, n) with its high bits (Lemire's multiply-shift), so n need not be a power of 2.
inline uint64_t reduce(uint64_t hash, uint64_t n) {
  return static_cast<uint64_t>((static_cast<unsigned __int128>(hash) * n) >> 64);
}

// ---------------------------------------------------------------------------------------------
// Vocabulary: token bytes -> id, with ids in order of first appearance as Vocabulary.add gives.

class Vocab {
 public:
  explicit Vocab(const CountOptions& options)
      : ids_{kUnkId, kBosInText, kEosInText}, words_{"<unk>", "<s>", "</s>"} {
    for (const std::string& w : words_) seen_.insert(w);
    if (options.has_limit_vocab) {
      limited_ = true;
      for (const std::string& w : options.limit_vocab) allowed_.insert(w);
    }
  }

  // The id of a token (negative: <s> or </s>, which the caller rejects).
  int32_t id(std::string_view token) {
    const auto [index, inserted] = seen_.insert(token);
    if (!inserted) return ids_[index];
    int32_t id = kUnkId;
    if (!limited_ || allowed_.find(token) != StringIds::kNotFound) {
      if (words_.size() >= static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
        throw std::runtime_error("vocabulary: more than 2^31 - 1 distinct tokens");
      }
      words_.emplace_back(token);
      id = static_cast<int32_t>(words_.size() - 1);
    }
    ids_.push_back(id);
    return id;
  }

  // Character units: the id of one code point (1-4 bytes of valid UTF-8), through a direct cache.
  int32_t char_id(std::string_view ch) {
    const auto* p = reinterpret_cast<const unsigned char*>(ch.data());
    uint32_t cp = p[0];
    if (ch.size() == 2) cp = ((p[0] & 0x1Fu) << 6) | (p[1] & 0x3Fu);
    if (ch.size() == 3) cp = ((p[0] & 0x0Fu) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3Fu);
    if (ch.size() == 4)
      cp = ((p[0] & 0x07u) << 18) | ((p[1] & 0x3Fu) << 12) | ((p[2] & 0x3Fu) << 6) | (p[3] & 0x3Fu);
    if (char_ids_.empty()) char_ids_.assign(0x110000, kUnset);
    int32_t& cached = char_ids_[cp];
    if (cached == kUnset) cached = id(ch);
    return cached;
  }

  std::vector<std::string> take_words() { return std::move(words_); }

 private:
  static constexpr int32_t kUnset = std::numeric_limits<int32_t>::min();
  StringIds seen_;            // every token met, in order of first appearance
  std::vector<int32_t> ids_;  // the id of each token of seen_
  StringIds allowed_;
  bool limited_ = false;
  std::vector<std::string> words_;
  std::vector<int32_t> char_ids_;
};

// ---------------------------------------------------------------------------------------------
// Input: files -> sentences -> a chunk of token ids with record start positions.

// Token ids of whole sentences "<s> w1 ... wk </s>", each followed by N - 1 kPad so that the
// record at any real position p is ids[p .. p + N); starts lists those positions.
struct Chunk {
  std::vector<uint32_t> ids;
  std::vector<size_t> starts;
  uint64_t bytes_consumed = 0;  // input bytes read up to the end of this chunk
};

class SentenceSource {
 public:
  SentenceSource(const CountOptions& options, const std::vector<std::string>& paths, Vocab* vocab,
                 CountStats* stats)
      : options_(options), paths_(paths), vocab_(vocab), stats_(stats) {}

  // Fills chunk with the next sentences (about kChunkRecords records); false when none are left.
  bool next(Chunk* chunk) {
    chunk->ids.clear();
    chunk->starts.clear();
    std::string_view line;
    while (chunk->starts.size() < kChunkRecords) {
      if (!reader_) {
        if (file_ == paths_.size()) break;
        reader_ = std::make_unique<LineReader>(paths_[file_]);
      }
      if (!reader_->next(&line)) {
        done_bytes_ += file_size(paths_[file_]);
        reader_.reset();
        ++file_;
        continue;
      }
      add_sentence(line, chunk);
    }
    chunk->bytes_consumed = bytes_consumed();
    return !chunk->starts.empty();
  }

  uint64_t bytes_consumed() const { return done_bytes_ + (reader_ ? reader_->bytes_consumed() : 0); }

  static uint64_t file_size(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
  }

 private:
  void add_sentence(std::string_view line, Chunk* chunk) {
    const size_t bad = find_invalid_utf8(line);
    if (bad != std::string_view::npos) {
      if (options_.encoding_errors == EncodingErrors::kStrict) invalid_utf8(line, bad);
      repair_utf8(line, &repaired_);
      line = repaired_;
    }
    auto& ids = chunk->ids;
    auto push = [&](int32_t id) {
      chunk->starts.push_back(ids.size());
      ids.push_back(static_cast<uint32_t>(id));
    };
    const size_t first = ids.size();
    push(kBosId);
    if (options_.units == CountUnits::kWord) {
      split_words(line, [&](std::string_view word) {
        const int32_t id = vocab_->id(word);
        if (id < 0) special_word(word);
        push(id);
      });
    } else {
      split_chars(
          line, [&](std::string_view ch) { push(vocab_->char_id(ch)); },
          [&] { push(vocab_->char_id(options_.word_boundary)); });
    }
    push(kEosId);
    stats_->lines += 1;
    stats_->tokens += ids.size() - first - 2;
    ids.insert(ids.end(), static_cast<size_t>(options_.order - 1), kPad);
  }

  [[noreturn]] void invalid_utf8(std::string_view line, size_t at) const {
    static const char* kHex = "0123456789abcdef";
    const auto byte = static_cast<unsigned char>(line[at]);
    throw InputFileError(reader_->path(), reader_->line_number(),
                         std::string("invalid UTF-8 (byte 0x") + kHex[byte >> 4] + kHex[byte & 15] +
                             " at column " + std::to_string(at + 1) +
                             "); pass encoding_errors=\"replace\" to substitute U+FFFD");
  }

  [[noreturn]] void special_word(std::string_view word) const {
    throw InputFileError(reader_->path(), reader_->line_number(),
                         std::string(word) +
                             " in the text: <s> and </s> are added around each line and may not "
                             "appear in it");
  }

  const CountOptions& options_;
  const std::vector<std::string>& paths_;
  Vocab* vocab_;
  CountStats* stats_;
  std::unique_ptr<LineReader> reader_;
  size_t file_ = 0;
  uint64_t done_bytes_ = 0;
  std::string repaired_;
};

// Runs a SentenceSource on its own thread, a few chunks ahead of the thread that counts them:
// reading and tokenising take about as long as counting. The source (and the vocabulary it
// fills) belongs to the reading thread until the pipeline is destroyed.
class ChunkPipeline {
 public:
  explicit ChunkPipeline(SentenceSource* source) : source_(source) {
    for (auto& chunk : chunks_) free_.push_back(&chunk);
    thread_ = std::thread([this] { produce(); });
  }
  ~ChunkPipeline() { stop(); }
  ChunkPipeline(const ChunkPipeline&) = delete;
  ChunkPipeline& operator=(const ChunkPipeline&) = delete;

  // The next chunk in order (nullptr at the end); the previous one goes back to the reader.
  // Rethrows the reader's exception.
  const Chunk* next() {
    std::unique_lock<std::mutex> lock(mutex_);
    if (current_ != nullptr) {
      free_.push_back(current_);
      current_ = nullptr;
      changed_.notify_all();
    }
    changed_.wait(lock, [&] { return !full_.empty() || finished_; });
    if (full_.empty()) {
      if (error_) std::rethrow_exception(error_);
      return nullptr;
    }
    current_ = full_.front();
    full_.pop_front();
    changed_.notify_all();
    return current_;
  }

  // Stops the reader and waits for it.
  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
      changed_.notify_all();
    }
    if (thread_.joinable()) thread_.join();
  }

 private:
  void produce() {
    for (;;) {
      Chunk* chunk = nullptr;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [&] { return !free_.empty() || stopping_; });
        if (stopping_) break;
        chunk = free_.front();
        free_.pop_front();
      }
      bool more = false;
      std::exception_ptr error;
      try {
        more = source_->next(chunk);
      } catch (...) {
        error = std::current_exception();
      }
      std::lock_guard<std::mutex> lock(mutex_);
      if (more) {
        full_.push_back(chunk);
      } else {
        error_ = error;
        break;
      }
      changed_.notify_all();
    }
    std::lock_guard<std::mutex> lock(mutex_);
    finished_ = true;
    changed_.notify_all();
  }

  SentenceSource* source_;
  Chunk chunks_[3];
  std::deque<Chunk*> free_, full_;
  Chunk* current_ = nullptr;
  std::mutex mutex_;
  std::condition_variable changed_;
  bool stopping_ = false;
  bool finished_ = false;
  std::exception_ptr error_;
  std::thread thread_;
};

// ---------------------------------------------------------------------------------------------
// Records: N ids (kPad after the end) and a 64-bit count kept as two 32-bit halves, so a record
// is 4 (N + 2) bytes with no padding.

template <int N>
struct Record {
  uint32_t w[N];
  uint32_t c[2];

  uint64_t count() const {
    uint64_t v;
    std::memcpy(&v, c, 8);
    return v;
  }
  void set_count(uint64_t v) { std::memcpy(c, &v, 8); }
  bool empty() const { return (c[0] | c[1]) == 0; }  // a free hash table slot
  int length() const {
    int n = 0;
    while (n < N && w[n] != kPad) ++n;
    return n;
  }
};

template <int N>
inline bool same_key(const uint32_t* a, const uint32_t* b) {
  return std::memcmp(a, b, sizeof(uint32_t) * N) == 0;
}

template <int N>
inline bool key_less(const uint32_t* a, const uint32_t* b) {
  for (int i = 0; i < N; ++i) {
    if (a[i] != b[i]) return a[i] < b[i];
  }
  return false;
}

template <int N>
inline uint64_t hash_key(const uint32_t* w) {
  uint64_t h = 0;
  int i = 0;
  for (; i + 1 < N; i += 2) {
    uint64_t x;
    std::memcpy(&x, w + i, 8);
    h = (h ^ x) * 0x9E3779B97F4A7C15ull;
    h = (h << 27) | (h >> 37);
  }
  if (i < N) h = (h ^ w[i]) * 0x9E3779B97F4A7C15ull;
  return mix64(h);
}

// Sorts records by key. Large arrays are first partitioned in place on the high bits of the
// first id (American flag sort: one counting pass, then cycles of swaps), and the buckets are
// sorted on all hardware threads, largest first.
template <int N>
void sort_records(Record<N>* begin, Record<N>* end) {
  auto less = [](const Record<N>& a, const Record<N>& b) { return key_less<N>(a.w, b.w); };
  const size_t n = static_cast<size_t>(end - begin);
  const int threads = resolve_num_threads(0);
  if (n < kParallelSortRecords || threads == 1) {
    std::sort(begin, end, less);
    return;
  }
  uint32_t max_first = 0;
  for (const Record<N>* r = begin; r != end; ++r) max_first = std::max(max_first, r->w[0]);
  int shift = 0;
  while ((max_first >> shift) >= kSortBuckets) ++shift;
  const size_t buckets = (max_first >> shift) + 1;
  auto bucket = [shift](const Record<N>& r) { return r.w[0] >> shift; };
  std::vector<size_t> start(buckets + 1, 0);
  for (const Record<N>* r = begin; r != end; ++r) ++start[bucket(*r) + 1];
  for (size_t b = 0; b < buckets; ++b) start[b + 1] += start[b];
  std::vector<size_t> next(start.begin(), start.end() - 1);
  for (size_t b = 0; b < buckets; ++b) {
    while (next[b] < start[b + 1]) {
      const size_t home = bucket(begin[next[b]]);
      if (home == b) {
        ++next[b];
      } else {
        std::swap(begin[next[b]], begin[next[home]++]);
      }
    }
  }
  std::vector<size_t> order(buckets);
  for (size_t b = 0; b < buckets; ++b) order[b] = b;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return start[a + 1] - start[a] > start[b + 1] - start[b]; });
  parallel_for(static_cast<int64_t>(buckets), threads, [&](int64_t i) {
    const size_t b = order[static_cast<size_t>(i)];
    std::sort(begin + start[b], begin + start[b + 1], less);
  });
}

// Anonymous memory that starts zeroed and can be zeroed again without touching it. On Linux it
// is backed by transparent huge pages where the system allows them: a table probed at random
// then takes far fewer TLB misses and page faults.
class ZeroedMemory {
 public:
  explicit ZeroedMemory(size_t bytes) : bytes_(round_up(std::max<size_t>(bytes, 1), kHugePage) + kHugePage) {
    base_ = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base_ == MAP_FAILED) throw std::bad_alloc();
    const auto address = reinterpret_cast<uintptr_t>(base_);
    data_ = reinterpret_cast<void*>(round_up(address, kHugePage));
#ifdef MADV_HUGEPAGE
    ::madvise(data_, bytes_ - kHugePage, MADV_HUGEPAGE);
#endif
  }
  ~ZeroedMemory() { ::munmap(base_, bytes_); }
  ZeroedMemory(const ZeroedMemory&) = delete;
  ZeroedMemory& operator=(const ZeroedMemory&) = delete;

  void* data() const { return data_; }

  void zero() {
#ifdef __linux__
    // Private anonymous pages read back as zero after MADV_DONTNEED.
    if (::madvise(base_, bytes_, MADV_DONTNEED) == 0) return;
#endif
    std::memset(data_, 0, bytes_ - kHugePage);
  }

 private:
  static constexpr size_t kHugePage = size_t{2} << 20;
  static size_t round_up(size_t x, size_t to) { return (x + to - 1) / to * to; }

  size_t bytes_;
  void* base_ = nullptr;
  void* data_ = nullptr;
};

// The order of records for sorting and merging (lm/external_sort.h): by key, counts added.
template <int N>
struct RecordTraits {
  static bool less(const Record<N>& a, const Record<N>& b) { return key_less<N>(a.w, b.w); }
  static bool same(const Record<N>& a, const Record<N>& b) { return same_key<N>(a.w, b.w); }
  static void combine(Record<N>& into, const Record<N>& from) { into.set_count(into.count() + from.count()); }
};

// ---------------------------------------------------------------------------------------------
// Sorted unique records -> counts of every order (the prefix pass described in the header).

// Writes all of [data, data + bytes) to fd; throws std::runtime_error naming what and the reason.
void write_all(int fd, const void* data, size_t bytes, const char* what) {
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t n = ::write(fd, p, std::min<size_t>(bytes, size_t{1} << 30));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      throw std::runtime_error(std::string("cannot write the counted ") + what + ": " + std::strerror(errno));
    p += n;
    bytes -= static_cast<size_t>(n);
  }
}

template <int N>
class PrefixCounts {
 public:
  PrefixCounts(CountResult* out, const std::vector<int>& fds) : out_(out), fds_(fds) {
    out_->ngrams.assign(N, {});
    out_->counts.assign(N, {});
    out_->rows.assign(N, 0);
  }

  void operator()(const Record<N>& r) {
    const int len = r.length();
    const uint64_t c = r.count();
    int same = 0;  // length of the common prefix with the previous record
    if (prev_len_ > 0) {
      while (same < N && r.w[same] == prev_[same]) ++same;
      for (int k = same; k < prev_len_; ++k) emit(k);
    }
    for (int k = 0; k < same; ++k) pending_[k] += c;
    for (int k = same; k < len; ++k) pending_[k] = c;
    std::memcpy(prev_, r.w, sizeof(prev_));
    prev_len_ = len;
  }

  void finish() {
    for (int k = 0; k < prev_len_; ++k) emit(k);
    prev_len_ = 0;
    if (!fds_.empty()) {
      for (int k = 0; k < N; ++k) flush(k);
    }
  }

  // Sizes the output for the n sorted unique records that will follow (one pass, no copies);
  // written to files, the output is buffered in kOutputRows rows per order instead.
  void reserve(const Record<N>* records, uint64_t n) {
    if (!fds_.empty()) return;
    uint64_t groups[N] = {};
    for (uint64_t i = 0; i < n; ++i) {
      int same = 0;
      if (i > 0) {
        while (same < N && records[i].w[same] == records[i - 1].w[same]) ++same;
      }
      const int len = records[i].length();
      for (int k = same; k < len; ++k) ++groups[k];
    }
    for (int k = 0; k < N; ++k) {
      out_->ngrams[k].reserve(groups[k] * (k + 1));
      out_->counts[k].reserve(groups[k]);
    }
  }

 private:
  // The (k+1)-gram prefix of the previous record is complete.
  void emit(int k) {
    auto& grams = out_->ngrams[k];
    for (int i = 0; i <= k; ++i) grams.push_back(static_cast<int32_t>(prev_[i]));
    out_->counts[k].push_back(static_cast<int64_t>(pending_[k]));
    ++out_->rows[k];
    if (!fds_.empty() && out_->counts[k].size() >= NgramCounter::kOutputRows) flush(k);
  }

  // Writes order k+1's buffered rows to its files and empties the buffers.
  void flush(int k) {
    auto& grams = out_->ngrams[k];
    auto& counts = out_->counts[k];
    write_all(fds_[2 * k], grams.data(), grams.size() * sizeof(int32_t), "n-grams");
    write_all(fds_[2 * k + 1], counts.data(), counts.size() * sizeof(int64_t), "counts");
    grams.clear();
    counts.clear();
  }

  CountResult* out_;
  const std::vector<int>& fds_;
  uint32_t prev_[N] = {};
  uint64_t pending_[N] = {};
  int prev_len_ = 0;
};

// ---------------------------------------------------------------------------------------------
// The hash table of records, with the memory policy of the header.

template <int N>
class RecordCounter {
 public:
  RecordCounter(uint64_t memory_bytes, std::string tmp_dir, CountStats* stats)
      : max_capacity_(memory_bytes / sizeof(Record<N>)),
        stats_(stats),
        runs_(std::move(tmp_dir), memory_bytes) {
    allocate(std::min(max_capacity_, kInitialTableRecords));
  }

  void prefetch(uint64_t hash) const { prefetch_slot(reduce(hash, capacity_)); }

  void add(const uint32_t* key, uint64_t hash) {
    uint64_t i = reduce(hash, capacity_);
    for (;;) {
      Record<N>& r = table_[i];
      if (r.empty()) {
        std::memcpy(r.w, key, sizeof(r.w));
        r.set_count(1);
        if (++size_ >= limit_) make_room();
        return;
      }
      if (same_key<N>(r.w, key)) {
        r.set_count(r.count() + 1);
        return;
      }
      if (++i == capacity_) i = 0;
    }
  }

  // Sends every distinct record, sorted and with its total count, to sink; frees the table.
  template <typename Sink>
  void finish(Sink&& sink, const std::function<void()>& tick) {
    if (runs_.empty()) {
      const uint64_t n = compact_and_sort();
      sink.reserve(table_, n);
      for (uint64_t i = 0; i < n; ++i) {
        sink(table_[i]);
        if ((i + 1) % kProgressRecords == 0) tick();
      }
      release();
      stats_->merge_passes = 0;
      return;
    }
    if (size_ > 0) spill();
    release();
    stats_->merge_passes = runs_.merge(sink, kProgressRecords, tick);
  }

 private:
  void allocate(uint64_t capacity) {
    memory_ = std::make_unique<ZeroedMemory>(capacity * sizeof(Record<N>));
    table_ = static_cast<Record<N>*>(memory_->data());
    capacity_ = capacity;
    size_ = 0;
    limit_ = std::max<uint64_t>(1, capacity_ * kMaxLoadPercent / 100);
    stats_->table_bytes = std::max<uint64_t>(stats_->table_bytes, capacity * sizeof(Record<N>));
  }

  void prefetch_slot(uint64_t i) const { __builtin_prefetch(&table_[i], 1, 1); }

  void release() {
    memory_.reset();
    table_ = nullptr;
    capacity_ = size_ = limit_ = 0;
  }

  void clear() {
    memory_->zero();
    size_ = 0;
  }

  // Grows the table (doubling, or to what the budget leaves beside the old table, if that is
  // at least 1.25 times larger) while old and new fit the budget together; otherwise spills a
  // run and continues in the largest table the budget holds.
  void make_room() {
    const uint64_t grown = std::min(capacity_ * 2, max_capacity_ - capacity_);
    if (grown >= capacity_ + capacity_ / 4) {
      const std::unique_ptr<ZeroedMemory> old_memory = std::move(memory_);
      const Record<N>* old = table_;
      const uint64_t old_capacity = capacity_;
      const uint64_t kept = size_;
      allocate(grown);
      // Blocks of old slots: hash and prefetch the new slots of a block, then insert it.
      constexpr uint64_t kBlock = 32;
      uint64_t slots[kBlock];
      for (uint64_t first = 0; first < old_capacity; first += kBlock) {
        const uint64_t count = std::min(kBlock, old_capacity - first);
        for (uint64_t j = 0; j < count; ++j) {
          const Record<N>& r = old[first + j];
          slots[j] = r.empty() ? 0 : reduce(hash_key<N>(r.w), capacity_);
          prefetch_slot(slots[j]);
        }
        for (uint64_t j = 0; j < count; ++j) {
          const Record<N>& r = old[first + j];
          if (r.empty()) continue;
          uint64_t i = slots[j];
          while (!table_[i].empty()) {
            if (++i == capacity_) i = 0;
          }
          table_[i] = r;
        }
      }
      size_ = kept;
      return;
    }
    spill();
    if (capacity_ < max_capacity_) {
      release();
      allocate(max_capacity_);
    } else {
      clear();
    }
  }

  // Moves the records to the front of the table and sorts them; returns how many there are.
  uint64_t compact_and_sort() {
    uint64_t n = 0;
    for (uint64_t i = 0; i < capacity_; ++i) {
      if (!table_[i].empty()) table_[n++] = table_[i];
    }
    sort_records<N>(table_, table_ + n);
    return n;
  }

  void spill() {
    const uint64_t n = compact_and_sort();
    runs_.add(table_, n);
    ++stats_->runs;
    size_ = 0;
  }

  uint64_t max_capacity_;
  CountStats* stats_;
  std::unique_ptr<ZeroedMemory> memory_;
  Record<N>* table_ = nullptr;  // in memory_; a record with count 0 is an empty slot
  uint64_t capacity_ = 0;
  uint64_t size_ = 0;
  uint64_t limit_ = 0;
  SortedRuns<Record<N>, RecordTraits<N>> runs_;  // spilled tables
};

std::string default_tmp_dir() {
  const char* env = std::getenv("TMPDIR");
  return env != nullptr && *env != '\0' ? env : "/tmp";
}

template <int N>
CountResult count_order(const CountOptions& options, const std::vector<std::string>& paths,
                        CountStats stats) {
  Vocab vocab(options);
  CountStats read_stats;  // lines and tokens, written by the reading thread
  SentenceSource source(options, paths, &vocab, &read_stats);
  RecordCounter<N> counter(options.memory_bytes,
                           options.tmp_dir.empty() ? default_tmp_dir() : options.tmp_dir, &stats);
  {
    ChunkPipeline pipeline(&source);
    std::vector<uint64_t> hashes;
    uint64_t reported = 0;
    while (const Chunk* chunk = pipeline.next()) {
      const size_t n = chunk->starts.size();
      const uint32_t* ids = chunk->ids.data();
      hashes.resize(n);
      for (size_t r = 0; r < n; ++r) hashes[r] = hash_key<N>(ids + chunk->starts[r]);
      for (size_t r = 0; r < n; ++r) {
        if (r + kPrefetchDistance < n) counter.prefetch(hashes[r + kPrefetchDistance]);
        counter.add(ids + chunk->starts[r], hashes[r]);
      }
      if (options.progress && chunk->bytes_consumed >= reported + kProgressBytes) {
        reported = chunk->bytes_consumed;
        options.progress(reported);
      }
    }
  }
  stats.lines = read_stats.lines;
  stats.tokens = read_stats.tokens;
  const uint64_t total = stats.input_bytes;
  if (options.progress) options.progress(total);
  std::function<void()> tick = [&] {
    if (options.progress) options.progress(total);
  };
  CountResult result;
  PrefixCounts<N> prefixes(&result, options.output_fds);
  counter.finish(prefixes, tick);
  prefixes.finish();
  result.words = vocab.take_words();
  result.stats = stats;
  return result;
}

template <int N>
CountResult dispatch(int order, const CountOptions& options, const std::vector<std::string>& paths,
                     const CountStats& stats) {
  if constexpr (N > NgramCounter::kMaxOrder) {
    throw std::invalid_argument("order: unsupported");
  } else {
    if (order == N) return count_order<N>(options, paths, stats);
    return dispatch<N + 1>(order, options, paths, stats);
  }
}

bool single_code_point(const std::string& s) {
  return !s.empty() && find_invalid_utf8(s) == std::string::npos &&
         sequence_length(static_cast<unsigned char>(s[0])) == s.size();
}

}  // namespace

uint64_t NgramCounter::min_memory(int order) {
  return kMinTableRecords * 4 * static_cast<uint64_t>(std::max(order, 1) + 2);
}

NgramCounter::NgramCounter(CountOptions options) : options_(std::move(options)) {
  const int n = options_.order;
  if (n < 1 || n > kMaxOrder) {
    throw std::invalid_argument("order: expected an integer in [1, " + std::to_string(kMaxOrder) + "], got " +
                                std::to_string(n));
  }
  if (options_.units == CountUnits::kChar) {
    const std::string& b = options_.word_boundary;
    if (!single_code_point(b) ||
        whitespace_length(reinterpret_cast<const unsigned char*>(b.data()), b.size()) > 0) {
      throw std::invalid_argument("word_boundary: expected one character that is not whitespace, got '" + b +
                                  "'");
    }
  }
  if (!options_.output_fds.empty() && options_.output_fds.size() != 2 * static_cast<size_t>(n)) {
    throw std::invalid_argument("output_fds: expected 2 * order = " + std::to_string(2 * n) +
                                " file descriptors, got " + std::to_string(options_.output_fds.size()));
  }
  if (options_.memory_bytes < min_memory(n)) {
    throw std::invalid_argument("memory: expected at least " + std::to_string(min_memory(n)) +
                                " bytes for order " + std::to_string(n) + ", got " +
                                std::to_string(options_.memory_bytes));
  }
}

CountResult NgramCounter::count(const std::vector<std::string>& paths) const {
  CountStats stats;
  for (const std::string& path : paths) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0)
      throw InputFileError(path, -1, std::string("cannot open: ") + std::strerror(errno));
    if (S_ISDIR(st.st_mode)) throw InputFileError(path, -1, "cannot open: is a directory");
    stats.input_bytes += static_cast<uint64_t>(st.st_size);
  }
  return dispatch<1>(options_.order, options_, paths, stats);
}

}  // namespace speechdecode

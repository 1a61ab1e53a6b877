// External sorting: sorted runs of fixed-size records spilled to disk, then merged.
//
// SortedRuns<Record, Traits> keeps runs (arrays the caller has sorted in memory) in one temporary
// file, unlinked as soon as it is created so that the system reclaims it however the process
// ends. merge() reads them back k ways through a binary min-heap, each run through a buffer; when
// there are more runs than the memory budget gives buffers for, intermediate passes merge groups
// of runs into a second file first. Records with equal keys are combined as they meet, so the
// sink sees every key once, in order. The n-gram counter (ngram_counter.cc) spills its hash table
// here.
//
// Traits, for a trivially copyable Record:
//   static bool less(const Record& a, const Record& b);      // the sort order of keys
//   static bool same(const Record& a, const Record& b);      // equal keys
//   static void combine(Record& into, const Record& from);   // into takes from's value too
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace speechdecode {

// A temporary file in dir, unlinked at once: appends at the end, reads at any offset. Throws
// std::runtime_error naming the stage (n-gram counting, its only user), dir and the system's
// reason when it cannot be created, written (a full disk) or read back.
class TempFile {
 public:
  explicit TempFile(const std::string& dir);
  ~TempFile();
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  uint64_t size() const { return size_; }
  void append(const void* data, uint64_t bytes);
  void read(uint64_t offset, void* data, uint64_t bytes) const;

 private:
  [[noreturn]] void fail(const std::string& what) const;

  std::string dir_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

template <typename Record, typename Traits>
class SortedRuns {
  static_assert(std::is_trivially_copyable_v<Record>, "records are written to disk as bytes");

 public:
  // The least memory a merge buffer gets; merges read at most budget / kMinBuffer - 1 runs at once.
  static constexpr uint64_t kMinBuffer = 4096;

  // Runs go to a temporary file in dir; merging reads them through budget_bytes of buffers.
  SortedRuns(std::string dir, uint64_t budget_bytes) : dir_(std::move(dir)), budget_(budget_bytes) {}

  bool empty() const { return runs_.empty(); }

  // Appends records [sorted, sorted + count), in Traits::less order, as one run.
  void add(const Record* sorted, uint64_t count) {
    if (!file_) file_ = std::make_unique<TempFile>(dir_);
    const uint64_t offset = file_->size();
    file_->append(sorted, count * sizeof(Record));
    runs_.push_back({offset, count});
  }

  // Sends every distinct record of all runs to sink(const Record&), in order, equal records
  // combined, calling tick() every tick_records records; deletes the runs. Returns the number
  // of passes over the data (the last one included).
  template <typename Sink>
  uint64_t merge(Sink&& sink, uint64_t tick_records, const std::function<void()>& tick) {
    uint64_t passes = 0;
    // Each merge reads fan_in runs through buffers of budget / (fan_in + 1) bytes (the last one
    // for the output of intermediate passes).
    const uint64_t max_fan_in = std::max<uint64_t>(2, budget_ / kMinBuffer - 1);
    while (runs_.size() > max_fan_in) {
      auto next = std::make_unique<TempFile>(dir_);
      std::vector<Run> merged;
      const size_t buffer_records = budget_ / (max_fan_in + 1) / sizeof(Record);
      for (size_t first = 0; first < runs_.size(); first += max_fan_in) {
        const size_t last = std::min<size_t>(runs_.size(), first + max_fan_in);
        Writer writer(next.get(), buffer_records);
        merge_runs(std::vector<Run>(runs_.begin() + first, runs_.begin() + last), buffer_records, writer,
                   tick_records, tick);
        merged.push_back(writer.finish());
      }
      file_ = std::move(next);
      runs_ = std::move(merged);
      ++passes;
    }
    const size_t buffer_records = budget_ / (runs_.size() + 1) / sizeof(Record);
    merge_runs(runs_, buffer_records, sink, tick_records, tick);
    ++passes;
    file_.reset();
    runs_.clear();
    return passes;
  }

 private:
  struct Run {
    uint64_t offset;  // in bytes
    uint64_t records;
  };

  // Sequential reader of one run through a buffer.
  class Reader {
   public:
    Reader(const TempFile& file, Run run, size_t buffer_records)
        : file_(file),
          next_offset_(run.offset),
          left_(run.records),
          buffer_(std::max<size_t>(1, buffer_records)) {
      refill();
    }
    const Record& head() const { return buffer_[pos_]; }
    // Moves to the next record; false at the end of the run.
    bool advance() {
      if (++pos_ < filled_) return true;
      return refill();
    }

   private:
    bool refill() {
      filled_ = static_cast<size_t>(std::min<uint64_t>(left_, buffer_.size()));
      pos_ = 0;
      if (filled_ == 0) return false;
      file_.read(next_offset_, buffer_.data(), filled_ * sizeof(Record));
      next_offset_ += filled_ * sizeof(Record);
      left_ -= filled_;
      return true;
    }

    const TempFile& file_;
    uint64_t next_offset_;
    uint64_t left_;
    std::vector<Record> buffer_;
    size_t pos_ = 0;
    size_t filled_ = 0;
  };

  // Buffered appender of one new run.
  class Writer {
   public:
    Writer(TempFile* file, size_t buffer_records) : file_(file), start_(file->size()) {
      buffer_.reserve(std::max<size_t>(1, buffer_records));
    }
    void operator()(const Record& r) {
      buffer_.push_back(r);
      if (buffer_.size() == buffer_.capacity()) flush();
    }
    Run finish() {
      flush();
      return {start_, (file_->size() - start_) / sizeof(Record)};
    }

   private:
    void flush() {
      file_->append(buffer_.data(), buffer_.size() * sizeof(Record));
      buffer_.clear();
    }
    TempFile* file_;
    uint64_t start_;
    std::vector<Record> buffer_;
  };

  // Merges runs of file_, combining equal records; sink receives every distinct record once, in
  // order. The runs' current records sit in a binary min-heap; advancing the smallest replaces
  // the top and sifts it down once.
  template <typename Sink>
  void merge_runs(const std::vector<Run>& runs, size_t buffer_records, Sink&& sink, uint64_t tick_records,
                  const std::function<void()>& tick) const {
    struct Head {
      const Record* record;
      Reader* reader;
    };
    std::vector<std::unique_ptr<Reader>> readers;
    std::vector<Head> heap;
    for (const Run& run : runs) {
      if (run.records == 0) continue;
      readers.push_back(std::make_unique<Reader>(*file_, run, buffer_records));
      heap.push_back({&readers.back()->head(), readers.back().get()});
    }
    auto sift_down = [&heap](size_t i) {
      const size_t n = heap.size();
      const Head moving = heap[i];
      for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && Traits::less(*heap[child + 1].record, *heap[child].record)) ++child;
        if (!Traits::less(*heap[child].record, *moving.record)) break;
        heap[i] = heap[child];
        i = child;
      }
      heap[i] = moving;
    };
    for (size_t i = heap.size() / 2; i-- > 0;) sift_down(i);
    auto advance_top = [&] {
      Head& top = heap.front();
      if (top.reader->advance()) {
        top.record = &top.reader->head();
      } else {
        top = heap.back();
        heap.pop_back();
      }
      if (!heap.empty()) sift_down(0);
    };
    uint64_t emitted = 0;
    while (!heap.empty()) {
      Record current = *heap.front().record;
      advance_top();
      while (!heap.empty() && Traits::same(*heap.front().record, current)) {
        Traits::combine(current, *heap.front().record);
        advance_top();
      }
      sink(current);
      if (++emitted % tick_records == 0) tick();
    }
  }

  std::string dir_;
  uint64_t budget_;
  std::unique_ptr<TempFile> file_;
  std::vector<Run> runs_;
};

}  // namespace speechdecode

// Exact n-gram counting of text corpora of any size in bounded memory.
//
// Output: the counts of every n-gram of orders 1..N in the sentences "<s> w1 ... wk </s>" (one
// <s>), exactly as speechdecode.lm.counts.count_sentences computes them: word ids <unk> = 0,
// <s> = 1, </s> = 2, then words in order of first appearance; words outside a limiting
// vocabulary count as <unk>; per order, unique id rows sorted lexicographically with counts.
//
// Algorithm. One record per token position instead of one table per order: the record at
// position i of a padded sentence of length L is the n-gram starting there, cut at the sentence
// end, ids[i .. i + min(N, L - i)). Every occurrence of an n-gram (n <= N) starting at i is the
// n-prefix of the record at i, so the count of an n-gram is the sum of the counts of the records
// it prefixes. Records are counted in one open-addressing hash table (linear probing, keys of N
// ids padded with kPad after a sentence end), one insertion per token instead of N. At the end the
// unique records are sorted lexicographically and one pass adds up every prefix group: the
// k-prefixes of a sorted sequence are themselves sorted, so all orders come out sorted at once.
//
// Memory. The table grows (doubling) while the old and the new table fit in memory_bytes
// together; when it cannot grow, its records are sorted and written as a run to a temporary
// file, and counting continues in an empty table of the largest size the budget allows. The
// temporary file is unlinked as soon as it is created, so nothing is left behind even when the
// process is killed. At the end the runs are merged k ways (in several passes when there are
// more runs than the budget gives read buffers for), equal records are combined, and the merged
// stream goes through the same prefix pass; lm/external_sort.h keeps and merges the runs. The
// budget covers the table and the merge buffers; the vocabulary, about 10 MiB of I/O buffers
// (4.4 MB more for character units) and the result arrays (or, written to output_fds, their
// buffers) come on top. Counting is exact
// whatever the budget.
//
// Threads: one reads, validates and tokenises the files (and owns the vocabulary) a few chunks
// ahead of the calling thread, which counts; sorting a large table uses all hardware threads.
//
// This follows the counting stage of KenLM's lmplz (Heafield et al., "Scalable Modified
// Kneser-Ney Language Model Estimation", ACL 2013, section 3.1: combine duplicates in a hash
// table, sort, spill, merge), extended so that one table also yields the lower orders' raw counts.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "lm/text_reader.h"

namespace speechdecode {

enum class CountUnits { kWord, kChar };

struct CountOptions {
  int order = 3;  // N, 1..NgramCounter::kMaxOrder
  CountUnits units = CountUnits::kWord;
  // With character units: the token between words, one code point that is not whitespace.
  std::string word_boundary = "|";
  // Words (or characters) that keep their identity; others become <unk>. Unused if !has_limit_vocab.
  bool has_limit_vocab = false;
  std::vector<std::string> limit_vocab;
  uint64_t memory_bytes = uint64_t{1} << 30;
  std::string tmp_dir;  // where runs are spilled; empty: $TMPDIR, else /tmp
  EncodingErrors encoding_errors = EncodingErrors::kStrict;
  // Empty: the counts are returned in CountResult::ngrams / counts. Otherwise 2 * order open file
  // descriptors, for each order n in turn one for its n-grams (int32 ids, row-major) and one for
  // its counts (int64): the prefix pass writes them there, in pieces of kOutputRows rows, instead
  // of holding them (the counts then take a few MiB of buffers beside the budget, whatever their
  // size). Written at each descriptor's current offset; the caller closes them.
  std::vector<int> output_fds;
  // Called with the input bytes consumed so far, about every 4 MiB and during merging; it may
  // throw to abort counting (temporary files are still released).
  std::function<void(uint64_t)> progress;
};

struct CountStats {
  uint64_t lines = 0;         // sentences read
  uint64_t tokens = 0;        // tokens in them, without <s> and </s>
  uint64_t input_bytes = 0;   // total size of the input files
  uint64_t runs = 0;          // sorted runs spilled to disk (0: everything fit in memory)
  uint64_t merge_passes = 0;  // passes over the runs, the last one included
  uint64_t table_bytes = 0;   // largest hash table held
};

struct CountResult {
  std::vector<std::string> words;  // by id
  // Per order n (index n - 1): M_n * n ids, row-major, rows sorted; counts M_n.
  std::vector<std::vector<int32_t>> ngrams;
  std::vector<std::vector<int64_t>> counts;
  std::vector<uint64_t> rows;  // M_n per order (also with output_fds)
  CountStats stats;
};

class NgramCounter {
 public:
  static constexpr int kMaxOrder = 16;
  // Rows of one order buffered before they are written to CountOptions::output_fds.
  static constexpr uint64_t kOutputRows = uint64_t{1} << 15;

  // Throws std::invalid_argument for a bad option (order, boundary, memory below min_memory).
  explicit NgramCounter(CountOptions options);

  // Counts the sentences of the files, in order, as one corpus. Throws InputFileError for a file
  // that cannot be read, invalid UTF-8 (strict mode) or <s> / </s> in the text, naming file and
  // line; std::runtime_error when a temporary file or an output_fds file cannot be written.
  // Takes no Python lock.
  CountResult count(const std::vector<std::string>& paths) const;

  // The smallest memory_bytes accepted for this order: a hash table of 1024 records.
  static uint64_t min_memory(int order);

 private:
  CountOptions options_;
};

}  // namespace speechdecode

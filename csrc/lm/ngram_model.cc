#include "lm/ngram_model.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <type_traits>

#include "common/errors.h"
#include "common/parallel.h"
#include "lm/kenlm_binary.h"
#include "lm/ngram_lookup.h"

namespace speechdecode {

using ngram_hash::NgramHasher;
using ngram_lookup::has_extension;
using ngram_lookup::LookupStep;

namespace {

// Probabilities are <= 0, so their sign bit is free: clear means "some longer n-gram ends with
// this one". value() restores the probability.
inline float value(float stored) { return -std::fabs(stored); }
inline bool extends_left(float stored) { return !std::signbit(stored); }
inline void mark_extends_left(float& stored) { stored = std::fabs(stored); }

// A backoff of -0.0 marks an n-gram that is nobody's context (ngram_lookup::has_extension).
inline void mark_extension(float& backoff) {
  if (!has_extension(backoff)) backoff = 0.0f;
}
inline float initial_backoff(float backoff) { return backoff == 0.0f ? -0.0f : backoff; }

// 1.5 slots per entry, as KenLM's default probing_multiplier.
inline size_t slots_for(size_t entries) { return entries + entries / 2 + 1; }

// Sentences scored per parallel work item, and the least work worth a second thread.
constexpr int64_t kSentencesPerItem = 64;
constexpr int64_t kRowsPerItem = 1024;
constexpr int64_t kMinWordsPerThread = 1 << 14;
// Words of score_batch whose table slots are requested ahead of the word being scored (up to
// order - 1 slots each; measured best among 4, 8 and 16 on the KJV 5-gram).
constexpr int kWordsAhead = 4;
// Rows of score_words whose slots are requested ahead of the row being scored.
constexpr int kRowsAhead = 4;

// Python's bytes.split() separators: space, \t, \n, \r, \v, \f.
inline bool is_ascii_space(char c) {
  const unsigned char u = static_cast<unsigned char>(c);
  return u == ' ' || (u >= '\t' && u <= '\r');
}

// Two different stored n-grams got the same key: the builder starts again with another seed.
struct KeyCollision {};

}  // namespace

// ---------------------------------------------------------------------------------------------
// State

bool NgramModel::State::operator==(const State& other) const {
  if (length != other.length) return false;
  for (int i = 0; i < length; ++i) {
    if (words[i] != other.words[i]) return false;
  }
  return true;
}

size_t NgramModel::State::hash() const {
  uint64_t h = mix64(length);
  for (int i = 0; i < length; ++i) h = mix64(h ^ words[i]);
  return static_cast<size_t>(h);
}

// ---------------------------------------------------------------------------------------------
// Building the tables from an ARPA file's contents

class NgramModel::Builder {
 public:
  explicit Builder(ArpaContents& contents) : c_(contents), order_(contents.order()) {}

  NgramModel build() {
    constexpr int kSeeds = 16;
    for (uint64_t attempt = 0; attempt < kSeeds; ++attempt) {
      NgramModel model;
      try {
        fill(&model, 0x5eed0000u + attempt * 0x9e3779b97f4a7c15ull);
      } catch (const KeyCollision&) {
        continue;
      }
      model.vocab_ = std::move(c_.vocab);
      return model;
    }
    throw std::runtime_error(c_.path + ": " + std::to_string(kSeeds) +
                             " hash seeds all gave two n-grams the same 64-bit key");
  }

 private:
  // Per order n >= 2 while building: the words of entries added to fill missing suffixes (after
  // the file's entries), and the entry stored in each slot, to compare words on every key match.
  struct Scratch {
    std::vector<WordId> extra_words;
    std::vector<uint32_t> slot_entry;
    size_t size = 0;
  };

  const WordId* words_of(int n, size_t entry) const {
    const ArpaOrder& o = c_.orders[n - 2];
    const size_t in_file = o.probs.size();
    if (entry < in_file) return o.words.data() + entry * n;
    return scratch_[n - 2].extra_words.data() + (entry - in_file) * n;
  }

  uint64_t key_of(const WordId* words, int n) const {
    uint64_t h = model_->hasher_.start(words[n - 1]);
    for (int k = n - 2; k >= 0; --k) h = NgramHasher::extend(h, words[k]);
    return NgramHasher::key(h);
  }

  template <typename Slots>
  static size_t probe(const Slots& slots, uint64_t key) {
    const size_t size = slots.size();
    size_t i = static_cast<size_t>((static_cast<unsigned __int128>(key) * size) >> 64);
    while (slots[i].key != key && slots[i].key != 0) {
      if (++i == size) i = 0;
    }
    return i;
  }

  // The slot of order-n n-gram `words` in its table, or SIZE_MAX; throws KeyCollision when the
  // slot's key matches but its words do not.
  size_t find(int n, const WordId* words) const {
    const uint64_t key = key_of(words, n);
    const auto& slots = model_->middle_[n - 2].slots;
    const size_t i = probe(slots, key);
    if (slots[i].key == 0) return SIZE_MAX;
    if (!std::equal(words, words + n, words_of(n, scratch_[n - 2].slot_entry[i]))) throw KeyCollision{};
    return i;
  }

  void fill(NgramModel* model, uint64_t seed) {
    model_ = model;
    model->order_ = order_;
    model->counts_ = c_.counts;
    model->hasher_.seed = seed;
    const size_t vocab = c_.vocab.size();
    model->unigrams_.resize(vocab);
    for (size_t id = 0; id < vocab; ++id) {
      model->unigrams_[id] = {value(c_.unigram_probs[id]), initial_backoff(c_.unigram_backoffs[id])};
    }
    scratch_.assign(order_ > 1 ? order_ - 1 : 0, Scratch());
    model->middle_.resize(order_ > 2 ? order_ - 2 : 0);
    // The tables of different orders are independent until suffixes are completed: fill them on
    // all cores, and raise their errors in the order a sequential build would meet them.
    std::vector<std::exception_ptr> insert_errors(order_ + 1);
    parallel_for(order_ - 1, resolve_num_threads(0), [&](int64_t k) {
      const int n = static_cast<int>(k) + 2;
      try {
        if (n < order_) {
          insert_file_entries(n, model->middle_[n - 2].slots);
        } else {
          insert_file_entries(n, model->longest_.slots);
        }
      } catch (...) {
        insert_errors[n] = std::current_exception();
      }
    });
    for (int n = 2; n <= order_; ++n) {
      if (insert_errors[n]) std::rethrow_exception(insert_errors[n]);
      const size_t entries = c_.orders[n - 2].probs.size();
      for (size_t i = 0; i < entries; ++i) complete_suffix(n, c_.orders[n - 2].words.data() + i * n);
      for (size_t i = 0; i < entries; ++i) mark_context(n, i);
    }
  }

  template <typename Entry>
  void insert_file_entries(int n, ngram_memory::HugeVector<Entry>& slots) {
    const ArpaOrder& o = c_.orders[n - 2];
    const size_t entries = o.probs.size();
    Scratch& s = scratch_[n - 2];
    slots.assign(slots_for(entries), Entry{});
    s.slot_entry.assign(slots.size(), 0);
    for (size_t i = 0; i < entries; ++i) {
      const WordId* words = o.words.data() + i * n;
      const uint64_t key = key_of(words, n);
      const size_t slot = probe(slots, key);
      if (slots[slot].key != 0) {
        const size_t first = s.slot_entry[slot];
        if (!std::equal(words, words + n, words_of(n, first))) throw KeyCollision{};
        throw ArpaFormatError(c_.path, c_.line_of(n, i),
                              "duplicate " + std::to_string(n) + "-gram '" + c_.ngram_text(n, i) +
                                  "' (first on line " + std::to_string(c_.line_of(n, first)) + ")");
      }
      slots[slot].key = key;
      slots[slot].prob = value(o.probs[i]);
      if constexpr (std::is_same_v<Entry, MiddleEntry>) slots[slot].backoff = initial_backoff(o.backoffs[i]);
      s.slot_entry[slot] = static_cast<uint32_t>(i);
    }
    s.size = entries;
  }

  // Stores an order-m n-gram that the file lacks (m < order), growing the table if needed.
  size_t insert_extra(int m, const WordId* words, float prob) {
    auto& slots = model_->middle_[m - 2].slots;
    Scratch& s = scratch_[m - 2];
    if (5 * (s.size + 1) > 4 * slots.size()) grow(m);
    const uint64_t key = key_of(words, m);
    const size_t slot = probe(slots, key);
    slots[slot] = MiddleEntry{key, prob, -0.0f};
    s.slot_entry[slot] = static_cast<uint32_t>(c_.orders[m - 2].probs.size() + s.extra_words.size() / m);
    s.extra_words.insert(s.extra_words.end(), words, words + m);
    ++s.size;
    return slot;
  }

  void grow(int m) {
    auto& slots = model_->middle_[m - 2].slots;
    Scratch& s = scratch_[m - 2];
    ngram_memory::HugeVector<MiddleEntry> bigger(slots_for(slots.size()));
    std::vector<uint32_t> entry(bigger.size(), 0);
    for (size_t i = 0; i < slots.size(); ++i) {
      if (slots[i].key == 0) continue;
      const size_t slot = probe(bigger, slots[i].key);
      bigger[slot] = slots[i];
      entry[slot] = s.slot_entry[i];
    }
    slots.swap(bigger);
    s.slot_entry.swap(entry);
  }

  // Marks the suffix w2..wn of the order-n n-gram `words` as extended to the left; when the file
  // lacks it (and maybe shorter suffixes), stores them with the backed-off probability, summed
  // in the order KenLM's loader sums it, so that lookups reach the n-gram.
  void complete_suffix(int n, const WordId* words) {
    const int m = n - 1;
    if (m == 1) {
      mark_extends_left(model_->unigrams_[words[n - 1]].prob);
      return;
    }
    size_t slot = find(m, words + 1);
    if (slot != SIZE_MAX) {
      mark_extends_left(model_->middle_[m - 2].slots[slot].prob);
      return;
    }
    int basis = m - 1;
    size_t basis_slot = SIZE_MAX;
    for (; basis >= 2; --basis) {
      basis_slot = find(basis, words + n - basis);
      if (basis_slot != SIZE_MAX) break;
    }
    float* below_prob = basis >= 2 ? &model_->middle_[basis - 2].slots[basis_slot].prob
                                   : &model_->unigrams_[words[n - 1]].prob;
    float prob = value(*below_prob);
    for (int len = basis + 1; len <= m; ++len) {
      const WordId* suffix = words + n - len;
      if (len == 2) {
        float& backoff = model_->unigrams_[suffix[0]].backoff;
        prob += backoff;
        mark_extension(backoff);
      } else {
        const size_t context = find(len - 1, suffix);
        if (context != SIZE_MAX) {
          float& backoff = model_->middle_[len - 3].slots[context].backoff;
          prob += backoff;
          mark_extension(backoff);
        }
      }
      // Growing the order-len table leaves below_prob (order len - 1) where it is.
      const size_t added = insert_extra(len, suffix, value(prob));
      mark_extends_left(*below_prob);
      below_prob = &model_->middle_[len - 2].slots[added].prob;
    }
    mark_extends_left(*below_prob);
  }

  // The context w1..wn-1 of entry i of order n must be stored; it is marked as extending.
  void mark_context(int n, size_t i) {
    const WordId* words = c_.orders[n - 2].words.data() + i * n;
    if (n == 2) {
      mark_extension(model_->unigrams_[words[0]].backoff);
      return;
    }
    const size_t slot = find(n - 1, words);
    // The context must be one of the file's (n-1)-grams: one added to fill a missing suffix of
    // another n-gram does not count (read_arpa refuses the same file).
    const bool in_file = slot != SIZE_MAX && scratch_[n - 3].slot_entry[slot] < c_.orders[n - 3].probs.size();
    if (!in_file) {
      std::string context(c_.vocab.string(words[0]));
      for (int k = 1; k < n - 1; ++k) context += " " + std::string(c_.vocab.string(words[k]));
      throw ArpaFormatError(c_.path, c_.line_of(n, i),
                            "the context '" + context + "' of the " + std::to_string(n) + "-gram '" +
                                c_.ngram_text(n, i) + "' is not a " + std::to_string(n - 1) +
                                "-gram (KenLM requires it too)");
    }
    mark_extension(model_->middle_[n - 3].slots[slot].backoff);
  }

  ArpaContents& c_;
  const int order_;
  NgramModel* model_ = nullptr;
  std::vector<Scratch> scratch_;
};

NgramModel NgramModel::from_arpa(const std::string& path) {
  NgramModel model = [&] {
    ArpaContents contents = read_arpa_file(path);
    return Builder(contents).build();
  }();
#if defined(__GLIBC__)
  // The file's text and the parsed arrays (several times the model's size) were just freed;
  // glibc keeps freed heap memory mapped unless asked to give it back.
  malloc_trim(0);
#endif
  return model;
}

NgramModel NgramModel::from_kenlm_binary(const std::string& path) {
  NgramModel model;
  model.binary_ = kenlm::KenlmBinary::open(path);
  model.order_ = model.binary_->order();
  model.counts_ = model.binary_->layout().counts;
  return model;
}

NgramModel NgramModel::load(const std::string& path) {
  char head[64];
  size_t got = 0;
  if (FILE* f = std::fopen(path.c_str(), "rb")) {
    got = std::fread(head, 1, sizeof head, f);
    std::fclose(f);
  }
  // A file that cannot be opened is reported by from_arpa, as before.
  if (kenlm::has_binary_magic(head, got)) return from_kenlm_binary(path);
  return from_arpa(path);
}

// ---------------------------------------------------------------------------------------------
// Vocabulary

size_t NgramModel::vocab_size() const { return binary_ ? binary_->vocab_size() : vocab_.size(); }

std::string_view NgramModel::word(WordId id) const { return binary_ ? binary_->word(id) : vocab_.string(id); }

WordId NgramModel::word_id(std::string_view word) const {
  const WordId id = binary_ ? binary_->find(word) : vocab_.find(word);
  return id == StringIds::kNotFound ? kUnkId : id;
}

bool NgramModel::contains(std::string_view word) const {
  return (binary_ ? binary_->find(word) : vocab_.find(word)) != StringIds::kNotFound;
}

void NgramModel::append_word_ids(std::string_view sentence, std::vector<WordId>* ids) const {
  const char* p = sentence.data();
  const char* end = p + sentence.size();
  while (p < end) {
    while (p < end && is_ascii_space(*p)) ++p;
    const char* start = p;
    while (p < end && !is_ascii_space(*p)) ++p;
    if (p > start) ids->push_back(word_id(std::string_view(start, static_cast<size_t>(p - start))));
  }
}

std::vector<WordId> NgramModel::word_ids(std::string_view sentence) const {
  std::vector<WordId> ids;
  append_word_ids(sentence, &ids);
  return ids;
}

size_t NgramModel::memory_bytes() const {
  if (binary_) return binary_->file_bytes();
  size_t bytes = vocab_.memory_bytes() + unigrams_.capacity() * sizeof(Unigram) +
                 longest_.slots.capacity() * sizeof(LongestEntry) + counts_.capacity() * sizeof(uint64_t);
  for (const auto& table : middle_) bytes += table.slots.capacity() * sizeof(MiddleEntry);
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// Queries

NgramModel::State NgramModel::begin_sentence_state() const {
  if (binary_) return binary_->begin_sentence_state();
  State s;
  if (order_ > 1) {
    s.length = 1;
    s.words[0] = kBosId;
    s.backoff[0] = unigrams_[kBosId].backoff;
  }
  return s;
}

NgramModel::State NgramModel::null_context_state() const { return State(); }

void NgramModel::probes_for(WordId w, const WordId* history, int depth, bool with_context, bool prefetch,
                            Probes* out) const {
  out->word = w;
  // Nothing ends in w beyond the unigram: the lookup reads no table, so nothing is fetched.
  const bool longer = prefetch && extends_left(unigrams_[w].prob);
  uint64_t h = hasher_.start(w);
  for (int i = 0; i < depth; ++i) {
    h = NgramHasher::extend(h, history[i]);
    out->keys[i] = NgramHasher::key(h);
    if (!longer) continue;
    if (i + 2 == order_) {
      longest_.prefetch(out->keys[i]);
    } else {
      middle_[i].prefetch(out->keys[i]);
    }
  }
  if (!with_context || depth < 2) return;
  h = hasher_.start(history[0]);
  for (int i = 0; i + 2 <= depth; ++i) {
    h = NgramHasher::extend(h, history[i + 1]);
    out->context_keys[i] = NgramHasher::key(h);
    if (prefetch) middle_[i].prefetch(out->context_keys[i]);
  }
}

NgramModel::FullScore NgramModel::score_word(const State& in, WordId w, State* out) const {
  if (binary_) return binary_->score_word(in, w, out);
  Probes p;
  probes_for(w, in.words, in.length, false, false, &p);
  return score_word(in, p, out);
}

struct NgramModel::ProbingSteps {
  const NgramModel& model;
  const Probes& p;

  LookupStep unigram() const {
    const Unigram& u = model.unigrams_[p.word];
    return {true, extends_left(u.prob), value(u.prob), u.backoff};
  }
  LookupStep middle(int i) const {
    const MiddleEntry* e = model.middle_[i].find(p.keys[i]);
    if (e == nullptr) return {};
    return {true, extends_left(e->prob), value(e->prob), e->backoff};
  }
  bool longest(int i, float* prob) const {
    const LongestEntry* e = model.longest_.find(p.keys[i]);
    if (e != nullptr) *prob = value(e->prob);
    return e != nullptr;
  }
};

NgramModel::FullScore NgramModel::score_word(const State& in, const Probes& p, State* out) const {
  ProbingSteps steps{*this, p};
  return ngram_lookup::score_state(steps, order_, in, p.word, out);
}

NgramModel::FullScore NgramModel::score_context(const WordId* context, int length, WordId w,
                                                WordId* out_context, int* out_length) const {
  if (binary_) return binary_->score_context(context, length, w, out_context, out_length);
  Probes p;
  probes_for(w, context, length, true, false, &p);
  return score_context(context, length, p, out_context, out_length);
}

NgramModel::FullScore NgramModel::score_context(const WordId* context, int length, const Probes& p,
                                                WordId* out_context, int* out_length) const {
  ProbingSteps steps{*this, p};
  const ngram_lookup::Match m = ngram_lookup::longest_match(steps, order_, length, nullptr);
  FullScore result{0.0f, static_cast<uint8_t>(m.length), p.word == kUnkId};
  float prob = m.prob;
  // Backoffs of the contexts longer than the match, shortest first: context[0], then
  // context[1] context[0], ... Every stored context's suffixes are stored, so the first missing
  // one (or one that nothing extends to the left) ends the chain.
  if (result.ngram_length <= length) {
    const Unigram& newest = unigrams_[context[0]];
    if (result.ngram_length == 1) prob += newest.backoff;
    bool more = extends_left(newest.prob);
    for (int j = 2; j <= length && more; ++j) {
      if (j < result.ngram_length) continue;
      const MiddleEntry* e = middle_[j - 2].find(p.context_keys[j - 2]);
      if (e == nullptr) break;
      prob += e->backoff;
      more = extends_left(e->prob);
    }
  }
  result.log10_prob = prob;
  for (int j = m.keep - 1; j >= 1; --j) out_context[j] = context[j - 1];
  out_context[0] = p.word;
  *out_length = m.keep;
  return result;
}

template <typename Fn>
void NgramModel::walk_sentence(const WordId* ids, size_t count, bool bos, bool eos, Fn&& on_score) const {
  State states[2] = {bos ? begin_sentence_state() : null_context_state(), State()};
  int cur = 0;
  for (size_t i = 0; i < count; ++i, cur ^= 1) on_score(score_word(states[cur], ids[i], &states[cur ^ 1]));
  if (eos) on_score(score_word(states[cur], kEosId, &states[cur ^ 1]));
}

float NgramModel::score_sentence(const WordId* ids, size_t count, bool bos, bool eos) const {
  float total = 0.0f;
  walk_sentence(ids, count, bos, eos, [&](const FullScore& s) { total += s.log10_prob; });
  return total;
}

std::vector<NgramModel::FullScore> NgramModel::full_scores(const WordId* ids, size_t count, bool bos,
                                                           bool eos) const {
  std::vector<FullScore> scores;
  scores.reserve(count + 1);
  walk_sentence(ids, count, bos, eos, [&](const FullScore& s) { scores.push_back(s); });
  return scores;
}

void NgramModel::score_packed(const WordId* ids, const int64_t* offsets, int64_t first, int64_t last,
                              bool bos, bool eos, double* out) const {
  if (binary_) {
    binary_->score_packed(bos ? begin_sentence_state() : null_context_state(), ids, offsets, first, last, bos,
                          eos, out);
    return;
  }
  // Every key of a word is known before its first probe, so the slots of all its orders are
  // requested kWordsAhead words ahead (a pipeline of one lookup per stage, as the binaries use,
  // measured slower on these tables).
  const int max_depth = order_ - 1;
  // The word kWordsAhead positions ahead (through sentence boundaries) has the first slots of its
  // n-grams requested while this one is scored.
  int64_t ahead_b = first, ahead_i = 0;
  auto prefetch_ahead = [&]() {
    while (ahead_b < last && ahead_i == offsets[ahead_b + 1] - offsets[ahead_b] + (eos ? 1 : 0)) {
      ++ahead_b;
      ahead_i = 0;
    }
    if (ahead_b >= last) return;
    const WordId* sentence = ids + offsets[ahead_b];
    const int64_t length = offsets[ahead_b + 1] - offsets[ahead_b];
    const WordId w = ahead_i < length ? sentence[ahead_i] : kEosId;
    const int depth = static_cast<int>(std::min<int64_t>(max_depth, ahead_i + (bos ? 1 : 0)));
    if (depth > 0 && extends_left(unigrams_[w].prob)) {
      uint64_t h = hasher_.start(w);
      for (int i = 0; i < depth; ++i) {
        const int64_t j = ahead_i - 1 - i;
        h = NgramHasher::extend(h, j >= 0 ? sentence[j] : kBosId);
        if (i + 2 == order_) {
          longest_.prefetch(NgramHasher::key(h));
        } else {
          middle_[i].prefetch(NgramHasher::key(h));
        }
      }
    }
    ++ahead_i;
  };
  for (int k = 0; k < kWordsAhead; ++k) prefetch_ahead();
  for (int64_t b = first; b < last; ++b) {
    const WordId* sentence = ids + offsets[b];
    const int64_t length = offsets[b + 1] - offsets[b];
    State states[2] = {bos ? begin_sentence_state() : null_context_state(), State()};
    float total = 0.0f;
    int cur = 0;
    for (int64_t i = 0; i < length + (eos ? 1 : 0); ++i, cur ^= 1) {
      prefetch_ahead();
      total += score_word(states[cur], i < length ? sentence[i] : kEosId, &states[cur ^ 1]).log10_prob;
    }
    out[b] = total;
  }
}

void NgramModel::score_batch(const WordId* ids, const int64_t* offsets, int64_t count, bool bos, bool eos,
                             int num_threads, double* out) const {
  const WordId vocab = static_cast<WordId>(vocab_size());
  for (int64_t b = 0; b < count; ++b) {
    if (offsets[b] > offsets[b + 1] || offsets[b] < 0) {
      throw TensorError("offsets", "non-decreasing offsets from 0",
                        std::to_string(offsets[b]) + ", " + std::to_string(offsets[b + 1]) + " at [" +
                            std::to_string(b) + "]");
    }
    for (int64_t i = offsets[b]; i < offsets[b + 1]; ++i) {
      if (ids[i] >= vocab) {
        throw TensorError("sentences", "word ids in [0, " + std::to_string(vocab) + ")",
                          std::to_string(static_cast<int32_t>(ids[i])) + " at [" + std::to_string(b) + ", " +
                              std::to_string(i - offsets[b]) + "]");
      }
    }
  }
  const int64_t words = count > 0 ? offsets[count] - offsets[0] : 0;
  const int64_t items = (count + kSentencesPerItem - 1) / kSentencesPerItem;
  const int threads = words < kMinWordsPerThread ? 1 : resolve_num_threads(num_threads);
  parallel_for(items, threads, [&](int64_t item) {
    score_packed(ids, offsets, item * kSentencesPerItem, std::min(count, (item + 1) * kSentencesPerItem), bos,
                 eos, out);
  });
}

void NgramModel::score_batch(const std::vector<std::string_view>& sentences, bool bos, bool eos,
                             int num_threads, double* out) const {
  const int64_t count = static_cast<int64_t>(sentences.size());
  size_t bytes = 0;
  for (const auto& s : sentences) bytes += s.size();
  const int64_t items = (count + kSentencesPerItem - 1) / kSentencesPerItem;
  // About 6 bytes per word of text.
  const int threads = bytes < 6 * kMinWordsPerThread ? 1 : resolve_num_threads(num_threads);
  parallel_for(items, threads, [&](int64_t item) {
    const int64_t first = item * kSentencesPerItem;
    const int64_t last = std::min(count, first + kSentencesPerItem);
    // The item's sentences as one packed batch: ids and offsets indexed by sentence - first.
    thread_local std::vector<WordId> ids;
    thread_local std::vector<int64_t> offsets;
    ids.clear();
    offsets.assign(1, 0);
    for (int64_t b = first; b < last; ++b) {
      append_word_ids(sentences[b], &ids);
      offsets.push_back(static_cast<int64_t>(ids.size()));
    }
    score_packed(ids.data(), offsets.data(), 0, last - first, bos, eos, out + first);
  });
}

int NgramModel::checked_state_length(const int32_t* row, int64_t r) const {
  const int columns = order_ - 1;
  const int64_t vocab = static_cast<int64_t>(vocab_size());
  int length = 0;
  while (length < columns && row[length] >= 0) {
    if (row[length] >= vocab) {
      throw TensorError(
          "states", "word ids in [0, " + std::to_string(vocab) + ") followed by -1 padding",
          std::to_string(row[length]) + " at [" + std::to_string(r) + ", " + std::to_string(length) + "]");
    }
    ++length;
  }
  for (int j = length; j < columns; ++j) {
    if (row[j] != -1) {
      throw TensorError(
          "states", "word ids in [0, " + std::to_string(vocab) + ") followed by -1 padding",
          std::to_string(row[j]) + " at [" + std::to_string(r) + ", " + std::to_string(j) + "]");
    }
  }
  return length;
}

void NgramModel::score_words(const int32_t* states, const int32_t* words, int64_t count, int num_threads,
                             float* probs, int32_t* next_states) const {
  const int columns = order_ - 1;
  const int64_t vocab = static_cast<int64_t>(vocab_size());
  for (int64_t r = 0; r < count; ++r) {
    checked_state_length(states + r * columns, r);
    if (words[r] < 0 || words[r] >= vocab) {
      throw TensorError("word_ids", "word ids in [0, " + std::to_string(vocab) + ")",
                        std::to_string(words[r]) + " at [" + std::to_string(r) + "]");
    }
  }
  const int64_t items = (count + kRowsPerItem - 1) / kRowsPerItem;
  const int threads = count < kMinWordsPerThread ? 1 : resolve_num_threads(num_threads);
  parallel_for(items, threads, [&](int64_t item) {
    const int64_t first = item * kRowsPerItem;
    const int64_t last = std::min(count, first + kRowsPerItem);
    // Rows are independent: the keys of the row kRowsAhead ahead are computed and their slots
    // prefetched while this row is scored (a ring of kRowsAhead rows' keys).
    WordId context[kRowsAhead][kMaxOrder];
    int lengths[kRowsAhead];
    Probes probes[kRowsAhead];
    auto prepare = [&](int64_t r) {
      const int k = static_cast<int>(r % kRowsAhead);
      const int32_t* row = states + r * columns;
      int length = 0;
      while (length < columns && row[length] >= 0) {
        context[k][length] = static_cast<WordId>(row[length]);
        ++length;
      }
      lengths[k] = length;
      if (binary_ == nullptr)
        probes_for(static_cast<WordId>(words[r]), context[k], length, true, true, &probes[k]);
    };
    for (int64_t r = first; r < std::min(last, first + kRowsAhead); ++r) prepare(r);
    WordId next[kMaxOrder];
    for (int64_t r = first; r < last; ++r) {
      const int k = static_cast<int>(r % kRowsAhead);
      int next_length = 0;
      probs[r] =
          binary_ ? score_context(context[k], lengths[k], static_cast<WordId>(words[r]), next, &next_length)
                        .log10_prob
                  : score_context(context[k], lengths[k], probes[k], next, &next_length).log10_prob;
      int32_t* out = next_states + r * columns;
      for (int j = 0; j < next_length; ++j) out[j] = static_cast<int32_t>(next[j]);
      for (int j = next_length; j < columns; ++j) out[j] = -1;
      if (r + kRowsAhead < last) prepare(r + kRowsAhead);
    }
  });
}

}  // namespace speechdecode

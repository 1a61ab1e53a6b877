// The keys of word-id sequences that index the n-gram model's probing tables, built on the core's
// one hash (common/hash.h). mix64 is a bijection on 64-bit integers, so a sequence key collides
// with another only through the combining step, with probability ~2^-64.
#pragma once

#include <cstdint>

#include "common/hash.h"
#include "lm/arpa_reader.h"

namespace speechdecode {
namespace ngram_hash {

// Keys of word-id sequences read from the most recent word backwards: an n-gram w1..wn has key
// extend(...extend(start(wn), wn-1)..., w1), so the keys of all n-grams ending in the same word
// come out of one chain, as the backed-off lookups need them. The seed changes every key; the
// loader picks another seed if two stored n-grams ever share one.
struct NgramHasher {
  uint64_t seed = 0;

  uint64_t start(WordId w) const {
    return mix64(seed + (static_cast<uint64_t>(w) + 1) * 0x9e3779b97f4a7c15ull);
  }
  static uint64_t extend(uint64_t h, WordId w) {
    return mix64(h + (static_cast<uint64_t>(w) + 1) * 0xc2b2ae3d27d4eb4full);
  }
  // Table keys reserve 0 for empty slots.
  static uint64_t key(uint64_t h) { return h | static_cast<uint64_t>(h == 0); }
};

}  // namespace ngram_hash
}  // namespace speechdecode

// Hashing for the n-gram model: a 64-bit mixer, a byte-string hash for words, and the keys of
// word-id sequences that index the probing tables.
//
// mix64 is the finaliser of Steele, Lea and Flood's SplitMix64 (OOPSLA 2014) with the
// constants of Stafford's "variant 13"; it is a bijection on 64-bit integers, so a sequence
// key collides with another only through the combining step, with probability ~2^-64.
#pragma once

#include <cstdint>
#include <cstring>

#include "lm/arpa_reader.h"

namespace speechdecode {
namespace ngram_hash {

inline uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

// Hash of a byte string: 8-byte chunks folded in by multiply-xorshift, the last 1..8 bytes read
// as two overlapping words (or three single bytes), one mix64 at the end. Words are short, so
// the common case is a single step.
inline uint64_t hash_bytes(const char* data, size_t size) {
  uint64_t h = (static_cast<uint64_t>(size) + 1) * 0x9e3779b97f4a7c15ull;
  while (size > 8) {
    uint64_t chunk;
    std::memcpy(&chunk, data, 8);
    h = (h ^ chunk) * 0xff51afd7ed558ccdull;
    h ^= h >> 32;
    data += 8;
    size -= 8;
  }
  uint64_t tail = 0;
  if (size >= 4) {
    uint32_t head, last;
    std::memcpy(&head, data, 4);
    std::memcpy(&last, data + size - 4, 4);
    tail = (static_cast<uint64_t>(head) << 32) | last;
  } else if (size > 0) {
    const auto* u = reinterpret_cast<const unsigned char*>(data);
    tail = (static_cast<uint64_t>(u[0]) << 16) | (static_cast<uint64_t>(u[size / 2]) << 8) | u[size - 1];
  }
  return mix64(h ^ tail);
}

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

// The one in-memory hash of the C++ core: a 64-bit mixer and a byte-string hash, with the byte
// comparison that goes with them. (File formats bring their own: KenLM binaries are keyed by
// KenLM's MurmurHash64A, lm/kenlm_binary.h.)
//
// mix64 is the finaliser of Steele, Lea and Flood's SplitMix64 (OOPSLA 2014) with the
// constants of Stafford's "variant 13"; it is a bijection on 64-bit integers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace speechdecode {

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

// The first and the last sizeof(Word) bytes of a[0, n) and b[0, n) agree (n >= sizeof(Word)).
template <typename Word>
inline bool same_ends(const char* a, const char* b, size_t n) {
  Word a0, a1, b0, b1;
  std::memcpy(&a0, a, sizeof(Word));
  std::memcpy(&a1, a + n - sizeof(Word), sizeof(Word));
  std::memcpy(&b0, b, sizeof(Word));
  std::memcpy(&b1, b + n - sizeof(Word), sizeof(Word));
  return ((a0 ^ b0) | (a1 ^ b1)) == 0;
}

// a[0, n) == b[0, n), without a library call for the short strings words are.
inline bool equal_bytes(const char* a, const char* b, size_t n) {
  if (n > 16) return std::memcmp(a, b, n) == 0;
  if (n >= 8) return same_ends<uint64_t>(a, b, n);
  if (n >= 4) return same_ends<uint32_t>(a, b, n);
  for (size_t i = 0; i < n; ++i) {
    if (a[i] != b[i]) return false;
  }
  return true;
}

}  // namespace speechdecode

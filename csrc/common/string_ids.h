// StringIds: the one string-to-id map of the C++ core (vocabularies of ARPA files, models and
// the counter). Ids are dense, 0, 1, 2, ... in order of insertion, and map back to their
// strings. Strings live in one buffer; an open-addressing table (linear probing, load <= 1/2)
// holds id + 1 and 32 more bits of the string's hash (common/hash.h), and a slot whose bits match
// has its bytes compared, so lookups are exact.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

namespace speechdecode {

class StringIds {
 public:
  static constexpr uint32_t kNotFound = 0xFFFFFFFFu;

  // The id of s, or kNotFound.
  uint32_t find(std::string_view s) const;
  // The id of s, and true when s was absent and got the next id.
  std::pair<uint32_t, bool> insert(std::string_view s);
  std::string_view string(uint32_t id) const {
    return std::string_view(chars_.data() + offsets_[id], offsets_[id + 1] - offsets_[id]);
  }
  size_t size() const { return offsets_.size() - 1; }
  void reserve(size_t strings);
  size_t memory_bytes() const;

 private:
  void rehash(size_t slots);
  void place(uint64_t hash, uint32_t id);

  std::vector<char> chars_;
  std::vector<uint64_t> offsets_{0};
  std::vector<uint64_t> slots_;  // (hash & kTagBits) | (id + 1); 0 = empty
};

}  // namespace speechdecode

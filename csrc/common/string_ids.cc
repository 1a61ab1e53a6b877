#include "common/string_ids.h"

#include "common/hash.h"

namespace speechdecode {
namespace {

constexpr uint64_t kTagBits = 0xFFFFFFFF00000000ull;

}  // namespace

void StringIds::reserve(size_t strings) {
  chars_.reserve(strings * 8);
  offsets_.reserve(strings + 1);
  size_t slots = 16;
  while (slots < 2 * strings) slots *= 2;
  if (slots > slots_.size()) rehash(slots);
}

void StringIds::place(uint64_t hash, uint32_t id) {
  const size_t mask = slots_.size() - 1;
  size_t i = hash & mask;
  while (slots_[i] != 0) i = (i + 1) & mask;
  slots_[i] = (hash & kTagBits) | (static_cast<uint64_t>(id) + 1);
}

void StringIds::rehash(size_t slots) {
  slots_.assign(slots, 0);
  for (uint32_t id = 0; id < size(); ++id) {
    const std::string_view s = string(id);
    place(hash_bytes(s.data(), s.size()), id);
  }
}

uint32_t StringIds::find(std::string_view s) const {
  if (slots_.empty()) return kNotFound;
  const uint64_t h = hash_bytes(s.data(), s.size());
  const uint64_t tag = h & kTagBits;
  const size_t mask = slots_.size() - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    const uint64_t slot = slots_[i];
    if (slot == 0) return kNotFound;
    if ((slot & kTagBits) == tag) {
      const uint32_t id = static_cast<uint32_t>(slot & ~kTagBits) - 1;
      const uint64_t begin = offsets_[id];
      if (offsets_[id + 1] - begin == s.size() && equal_bytes(chars_.data() + begin, s.data(), s.size())) {
        return id;
      }
    }
  }
}

std::pair<uint32_t, bool> StringIds::insert(std::string_view s) {
  const uint32_t found = find(s);
  if (found != kNotFound) return {found, false};
  if (2 * (size() + 1) > slots_.size()) rehash(slots_.empty() ? 16 : 2 * slots_.size());
  const uint32_t id = static_cast<uint32_t>(size());
  chars_.insert(chars_.end(), s.begin(), s.end());
  offsets_.push_back(chars_.size());
  place(hash_bytes(s.data(), s.size()), id);
  return {id, true};
}

size_t StringIds::memory_bytes() const {
  return chars_.capacity() + offsets_.capacity() * sizeof(uint64_t) + slots_.capacity() * sizeof(uint64_t);
}

}  // namespace speechdecode

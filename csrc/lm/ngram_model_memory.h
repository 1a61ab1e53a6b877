// Memory for the n-gram tables: large arrays on 2 MiB-aligned anonymous mappings marked
// MADV_HUGEPAGE, so that random lookups into a table of many megabytes miss the TLB far less
// often (a query is a chain of dependent random loads; with 4 KiB pages each of them also pays
// for a page walk, which is slow in virtual machines). Small arrays use the ordinary allocator.
// Where transparent huge pages are off, the mapping simply stays in 4 KiB pages.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <vector>

namespace speechdecode {
namespace ngram_memory {

constexpr size_t kHugePage = size_t{2} << 20;
constexpr size_t kPage = 4096;

inline size_t round_up(size_t bytes, size_t to) { return (bytes + to - 1) / to * to; }

inline void* map_huge(size_t bytes) {
  const size_t used = round_up(bytes, kPage);
  const size_t total = used + kHugePage;
  void* raw = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  const uintptr_t begin = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (begin + kHugePage - 1) / kHugePage * kHugePage;
  if (aligned > begin) munmap(raw, aligned - begin);
  const size_t tail = total - (aligned - begin) - used;
  if (tail > 0) munmap(reinterpret_cast<void*>(aligned + used), tail);
#ifdef MADV_HUGEPAGE
  madvise(reinterpret_cast<void*>(aligned), used, MADV_HUGEPAGE);
#endif
  return reinterpret_cast<void*>(aligned);
}

template <typename T>
struct HugePageAllocator {
  using value_type = T;

  HugePageAllocator() = default;
  template <typename U>
  HugePageAllocator(const HugePageAllocator<U>&) {}

  T* allocate(size_t n) {
    const size_t bytes = n * sizeof(T);
    if (bytes >= kHugePage) return static_cast<T*>(map_huge(bytes));
    return std::allocator<T>().allocate(n);
  }
  void deallocate(T* p, size_t n) {
    const size_t bytes = n * sizeof(T);
    if (bytes >= kHugePage) {
      munmap(p, round_up(bytes, kPage));
    } else {
      std::allocator<T>().deallocate(p, n);
    }
  }
  template <typename U>
  bool operator==(const HugePageAllocator<U>&) const {
    return true;
  }
  template <typename U>
  bool operator!=(const HugePageAllocator<U>&) const {
    return false;
  }
};

template <typename T>
using HugeVector = std::vector<T, HugePageAllocator<T>>;

}  // namespace ngram_memory
}  // namespace speechdecode

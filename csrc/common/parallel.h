// A minimal fork-join helper: run fn(item) for item in [0, count) on up to num_threads
// std::threads with dynamic scheduling (an atomic counter), so uneven items balance.
//
// Exceptions thrown by fn are captured; after all threads join, the one raised by the
// smallest item index is rethrown, so the reported error does not depend on scheduling.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <limits>
#include <mutex>
#include <thread>
#include <vector>

namespace speechdecode {

inline int resolve_num_threads(int64_t requested) {
  if (requested > 0) return static_cast<int>(std::min<int64_t>(requested, 1024));
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

template <typename Fn>
void parallel_for(int64_t count, int num_threads, Fn&& fn) {
  const int workers = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(num_threads, count)));
  std::atomic<int64_t> next{0};
  std::mutex error_mutex;
  int64_t error_item = std::numeric_limits<int64_t>::max();
  std::exception_ptr error;

  auto work = [&]() {
    for (int64_t item = next.fetch_add(1); item < count; item = next.fetch_add(1)) {
      try {
        fn(item);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (item < error_item) {
          error_item = item;
          error = std::current_exception();
        }
      }
    }
  };

  if (workers == 1) {
    work();
  } else {
    std::vector<std::thread> threads;
    threads.reserve(workers - 1);
    for (int i = 1; i < workers; ++i) threads.emplace_back(work);
    work();
    for (auto& t : threads) t.join();
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace speechdecode

#pragma once

// Runs independent work items on a few threads (layers of one image: each is an inflate and
// thousands of file writes, so a few at once keep both the CPU and the disk busy).

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <thread>
#include <vector>

namespace nodeagent::image {

// Layers one import or unpack handles at once.
inline constexpr size_t kParallelLayers = 3;

// Calls fn(0) ... fn(count - 1), at most `workers` at once (the caller's thread is one of
// them), and returns when all are done. fn must not throw.
template <typename Fn>
void ForEachInParallel(size_t count, size_t workers, const Fn& fn) {
  workers = std::max<size_t>(1, std::min(count, workers));
  std::atomic<size_t> next{0};
  auto drain = [&] {
    for (size_t i = next++; i < count; i = next++) fn(i);
  };
  std::vector<std::thread> threads;
  for (size_t w = 1; w < workers; ++w) threads.emplace_back(drain);
  drain();
  for (std::thread& t : threads) t.join();
}

}  // namespace nodeagent::image

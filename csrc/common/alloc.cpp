// The cache behind empty_output (alloc.h): blocks of whole 2 MiB units, handed to one tensor at a
// time and returned by the tensor's deleter.
//
// - allocate(n), n >= 1 MiB: the smallest idle block of at least n bytes and at most 1.25 x n
//   (rounded up to 2 MiB) is reused; otherwise a new block comes from torch's CPU allocation
//   function, its 2 MiB-aligned interior marked MADV_HUGEPAGE (one fault per 2 MiB where the kernel
//   has huge pages to give).
// - The deleter puts the block back, newest last. Idle bytes are bounded by the limit
//   (INPAINT_FAST_OUTPUT_CACHE_MB, default 1024): beyond it the longest-idle blocks are freed.
//   empty_output_cache() frees every idle block. 0 turns the cache off: every output is then a fresh
//   allocation of torch's CPU allocator, with the huge-page hint.
// - Thread-safe (one mutex; blocks are freed outside it). The cache object is never destroyed, so
//   tensors that outlive static destruction still have somewhere to return.
// - With the profiler's memory recording on, each hand-out and return is reported as the CPU
//   allocator reports its own, so peak-memory measurements count these tensors.
#include "common/alloc.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace inpaint_fast {
namespace {

constexpr size_t kUnit = size_t(2) << 20;     // block sizes are whole 2 MiB units
constexpr size_t kMinCached = size_t(1) << 20;  // smaller outputs: torch's CPU allocator

struct Block {
  void* ptr;
  size_t size;  // capacity
  size_t used;  // bytes of the tensor holding it (reported to the profiler)
};

int64_t limit_from_env() {
  const char* text = std::getenv("INPAINT_FAST_OUTPUT_CACHE_MB");
  if (text == nullptr || *text == '\0') return int64_t(1024) << 20;
  char* end = nullptr;
  const long long mb = std::strtoll(text, &end, 10);
  TORCH_CHECK(end != text && *end == '\0' && mb >= 0, "INPAINT_FAST_OUTPUT_CACHE_MB must be a whole number of MiB >= 0 "
              "(0 turns the cache of the fused CPU ops' outputs off), got '", text, "'");
  return static_cast<int64_t>(std::min(mb, 1LL << 40)) << 20;
}

void hint_huge_pages(void* ptr, size_t size) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  const uintptr_t begin = reinterpret_cast<uintptr_t>(ptr);
  const uintptr_t first = (begin + kUnit - 1) & ~(kUnit - 1);
  const uintptr_t last = (begin + size) & ~(kUnit - 1);
  if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
#endif
}

class OutputCache final : public c10::Allocator {
 public:
  OutputCache() : limit_(limit_from_env()) {}

  static OutputCache& instance() {
    static OutputCache* cache = new OutputCache();  // never destroyed (see the file comment)
    return *cache;
  }

  c10::DataPtr allocate(size_t n) override {
    if (n < kMinCached) return c10::GetCPUAllocator()->allocate(n);
    if (limit_ == 0) {  // the cache off: a fresh buffer on every call, with the huge-page hint
      c10::DataPtr buffer = c10::GetCPUAllocator()->allocate(n);
      hint_huge_pages(buffer.get(), n);
      return buffer;
    }
    const size_t size = (n + kUnit - 1) / kUnit * kUnit;
    Block* block = take(size);
    if (block == nullptr) block = fresh(size);
    block->used = n;
    account(block, static_cast<int64_t>(n));
    return {block->ptr, block, &OutputCache::give_back, c10::Device(c10::DeviceType::CPU)};
  }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

  // Frees every idle block.
  void empty() {
    std::vector<Block*> freed;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      freed.swap(idle_);
      for (Block* b : freed) idle_bytes_ -= static_cast<int64_t>(b->size);
      evictions_ += static_cast<int64_t>(freed.size());
    }
    release(freed);
  }

  std::vector<int64_t> stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return {limit_, idle_bytes_, used_bytes_, hits_, misses_, evictions_};
  }

 private:
  static void give_back(void* context) { instance().put(static_cast<Block*>(context)); }

  // The smallest idle block of ``size`` to 1.25 x ``size`` bytes, taken out of the cache; nullptr on a miss.
  Block* take(size_t size) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto best = idle_.end();
    for (auto it = idle_.begin(); it != idle_.end(); ++it) {
      const size_t s = (*it)->size;
      if (s >= size && s <= size + size / 4 && (best == idle_.end() || s < (*best)->size)) best = it;
    }
    if (best == idle_.end()) {
      ++misses_;
      return nullptr;
    }
    Block* block = *best;
    idle_.erase(best);
    idle_bytes_ -= static_cast<int64_t>(block->size);
    ++hits_;
    return block;
  }

  Block* fresh(size_t size) {
    void* ptr = nullptr;
    try {
      ptr = c10::alloc_cpu(size);
    } catch (const c10::Error&) {
      empty();  // the idle blocks are the only memory this cache can give back; then try once more
      ptr = c10::alloc_cpu(size);
    }
    hint_huge_pages(ptr, size);
    return new Block{ptr, size, 0};
  }

  void put(Block* block) {
    account(block, -static_cast<int64_t>(block->used));
    std::vector<Block*> evicted;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      idle_.push_back(block);
      idle_bytes_ += static_cast<int64_t>(block->size);
      while (idle_bytes_ > limit_) {
        evicted.push_back(idle_.front());
        idle_bytes_ -= static_cast<int64_t>(idle_.front()->size);
        idle_.erase(idle_.begin());
        ++evictions_;
      }
    }
    release(evicted);
  }

  static void release(const std::vector<Block*>& blocks) {
    for (Block* b : blocks) {
      c10::free_cpu(b->ptr);
      delete b;
    }
  }

  // Bytes handed to (delta > 0) or returned by (delta < 0) a tensor, reported to the profiler.
  void account(Block* block, int64_t delta) {
    int64_t used = 0, held = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      used_bytes_ += delta;
      used = used_bytes_;
      held = used_bytes_ + idle_bytes_;
    }
    if (c10::memoryProfilingEnabled()) {
      c10::reportMemoryUsageToProfiler(block->ptr, delta, static_cast<size_t>(used), static_cast<size_t>(held),
                                       c10::Device(c10::DeviceType::CPU));
    }
  }

  const int64_t limit_;
  std::mutex mutex_;
  std::vector<Block*> idle_;  // least recently returned first
  int64_t idle_bytes_ = 0, used_bytes_ = 0, hits_ = 0, misses_ = 0, evictions_ = 0;
};

}  // namespace

c10::Allocator* output_allocator() {
  return &OutputCache::instance();
}

std::vector<int64_t> output_cache_stats() {
  return OutputCache::instance().stats();
}

void empty_output_cache() {
  OutputCache::instance().empty();
}

}  // namespace inpaint_fast

TORCH_LIBRARY_FRAGMENT(inpaint_fast, m) {
  m.def("output_cache_stats() -> int[]", &inpaint_fast::output_cache_stats);
  m.def("empty_output_cache() -> ()", &inpaint_fast::empty_output_cache);
}

// XLA FFI handlers of the bilinear sampling kernel, for JAX on CPU.
//
// Handlers for float32 and float64 buffers, with int32 attributes `padding`
// (0: "zeros", 1: "border") and `coordinates` (how the points give theirs:
// 0 in pixels, 1 normalized, 2 normalized with `align_corners`):
// - KerasStnBilinearSample(images, points) -> outputs
// - KerasStnBilinearGradImages(images, points, upstream) -> grad_images
// - KerasStnBilinearGradPoints(images, points, upstream) -> grad_points
// - KerasStnBilinearGradBoth(images, points, upstream)
//   -> (grad_images, grad_points), in one pass
// Work is split over XLA's intra-op thread pool.

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>

#include "bilinear_sampling.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace keras_stn {
namespace {

// The shape of a call, from images `(batch, *spatial, channels)` and points
// `(batch, points, rank)`.
SamplingShape ShapeOf(const ffi::AnyBuffer& images,
                      const ffi::AnyBuffer& points, int32_t padding,
                      int32_t coordinates) {
  const auto image_dims = images.dimensions();
  const auto point_dims = points.dimensions();
  SamplingShape shape;
  shape.rank = static_cast<int>(image_dims.size()) - 2;
  shape.batch = image_dims[0];
  shape.channels = image_dims[image_dims.size() - 1];
  shape.points = point_dims[1];
  for (int axis = 0; axis < shape.rank; ++axis) {
    shape.sizes[axis] = image_dims[shape.rank - axis];  // x, y[, z]
  }
  shape.padding = static_cast<Padding>(padding);
  shape.coordinates = static_cast<Coordinates>(coordinates);
  return shape;
}

// Runs `work(begin, end)` over `[0, count)` in about one range per thread,
// and waits for all of them. The work is a function of its own: inlined
// among the threads' code, its loops compiled 35% slower.
//
// The pool is the one XLA runs its thunks on, so its threads may all be
// inside handlers like this one (two samplings of one step run side by side,
// or two steps in flight), none free to start a scheduled range. Waiting
// for scheduled ranges would then wait forever; instead every thread,
// the caller included, claims ranges from a shared counter until none is
// left, and the caller waits only for ranges that other threads claimed and
// are running. A scheduled task that starts late finds nothing to claim:
// it holds the shared state, not the caller's stack.
void ParallelFor(ffi::ThreadPool& pool, int64_t count, int64_t min_per_range,
                 const std::function<void(int64_t, int64_t)>& work) {
  const int64_t threads = std::max<int64_t>(1, pool.num_threads());
  const int64_t ranges = std::clamp<int64_t>(
      count / std::max<int64_t>(1, min_per_range), 1, threads);
  if (ranges == 1) {
    work(0, count);
    return;
  }
  struct Ranges {
    const std::function<void(int64_t, int64_t)>* work;
    int64_t count;
    int64_t ranges;
    std::atomic<int64_t> next{0};
    std::atomic<int64_t> unfinished;
    std::mutex mutex;
    std::condition_variable done;
  };
  auto state = std::make_shared<Ranges>();
  state->work = &work;
  state->count = count;
  state->ranges = ranges;
  state->unfinished.store(ranges);
  const auto claim_ranges = [](Ranges& state) {
    for (int64_t range = state.next.fetch_add(1); range < state.ranges;
         range = state.next.fetch_add(1)) {
      (*state.work)(state.count * range / state.ranges,
                    state.count * (range + 1) / state.ranges);
      if (state.unfinished.fetch_sub(1) == 1) {
        std::lock_guard<std::mutex> lock(state.mutex);
        state.done.notify_one();
      }
    }
  };
  for (int64_t range = 1; range < ranges; ++range) {
    pool.Schedule([state, claim_ranges] { claim_ranges(*state); });
  }
  claim_ranges(*state);
  std::unique_lock<std::mutex> lock(state->mutex);
  state->done.wait(lock, [&] { return state->unfinished.load() == 0; });
}

// Calls `work(T())` with `T` the images' element type, float or double.
template <typename Work>
ffi::Error WithElementType(const ffi::AnyBuffer& images, Work&& work) {
  switch (images.element_type()) {
    case ffi::DataType::F32:
      work(float());
      return ffi::Error::Success();
    case ffi::DataType::F64:
      work(double());
      return ffi::Error::Success();
    default:
      return ffi::Error::InvalidArgument(
          "keras-stn's sampling kernel takes float32 or float64 images");
  }
}

ffi::Error Sample(ffi::ThreadPool pool, ffi::AnyBuffer images,
                  ffi::AnyBuffer points, ffi::Result<ffi::AnyBuffer> outputs,
                  int32_t padding, int32_t coordinates) {
  const SamplingShape shape = ShapeOf(images, points, padding, coordinates);
  return WithElementType(images, [&](auto element) {
    using T = decltype(element);
    WithSampler<T>(shape, [&](const auto& sampler) {
      ParallelFor(pool, shape.batch * shape.points, PointsPerRange(shape),
                  [&](int64_t begin, int64_t end) {
                    sampler.Forward(images.typed_data<T>(),
                                    PointArrays<const T>::Interleaved(
                                        points.typed_data<T>(), shape.rank),
                                    outputs->typed_data<T>(), begin, end);
                  });
    });
  });
}

// The images' gradient (result 0) if `kImages`, and the points' (the next
// result) if `kPoints`.
template <bool kImages, bool kPoints>
ffi::Error Gradients(ffi::ThreadPool pool, ffi::AnyBuffer images,
                     ffi::AnyBuffer points, ffi::AnyBuffer upstream,
                     ffi::RemainingRets results, int32_t padding,
                     int32_t coordinates) {
  void* gradients[2] = {nullptr, nullptr};  // images', points'
  int result = 0;
  for (const int which : {0, 1}) {
    if (which == 0 ? !kImages : !kPoints) continue;
    auto gradient = results.get<ffi::AnyBuffer>(result++);
    if (gradient.has_error()) return gradient.error();
    gradients[which] = (*gradient)->untyped_data();
  }
  const SamplingShape shape = ShapeOf(images, points, padding, coordinates);
  return WithElementType(images, [&](auto element) {
    using T = decltype(element);
    WithSampler<T>(shape, [&](const auto& sampler) {
      const auto work = [&](int64_t begin, int64_t end) {
        sampler.template Backward<kImages, kPoints>(
            images.typed_data<T>(),
            PointArrays<const T>::Interleaved(points.typed_data<T>(),
                                              shape.rank),
            upstream.typed_data<T>(),
            PointArrays<T>::Interleaved(static_cast<T*>(gradients[1]),
                                        shape.rank),
            static_cast<T*>(gradients[0]), begin, end);
      };
      if (!kImages) {
        ParallelFor(pool, shape.batch * shape.points, PointsPerRange(shape),
                    work);
      } else {
        // Whole examples per range: their images' gradients do not overlap.
        ParallelFor(pool, shape.batch, 1, [&](int64_t begin, int64_t end) {
          work(begin * shape.points, end * shape.points);
        });
      }
    });
  });
}

}  // namespace
}  // namespace keras_stn

XLA_FFI_DEFINE_HANDLER_SYMBOL(KerasStnBilinearSample, keras_stn::Sample,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<int32_t>("padding")
                                  .Attr<int32_t>("coordinates"));

// A gradient handler: images, points and upstream in, its gradients out.
#define KERAS_STN_GRADIENT_HANDLER(name, images, points)      \
  XLA_FFI_DEFINE_HANDLER_SYMBOL(                              \
      name, (keras_stn::Gradients<images, points>),           \
      ffi::Ffi::Bind()                                        \
          .Ctx<ffi::ThreadPool>()                             \
          .Arg<ffi::AnyBuffer>()                              \
          .Arg<ffi::AnyBuffer>()                              \
          .Arg<ffi::AnyBuffer>()                              \
          .RemainingRets()                                    \
          .Attr<int32_t>("padding")                           \
          .Attr<int32_t>("coordinates"));

KERAS_STN_GRADIENT_HANDLER(KerasStnBilinearGradImages, true, false)
KERAS_STN_GRADIENT_HANDLER(KerasStnBilinearGradPoints, false, true)
KERAS_STN_GRADIENT_HANDLER(KerasStnBilinearGradBoth, true, true)

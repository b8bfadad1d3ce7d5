// XLA FFI handlers of the bilinear sampling kernel, for JAX on CPU.
//
// Handlers, each for float32 and float64 buffers, with an int32 attribute
// `padding` (0: "zeros", 1: "border"):
// - KerasStnBilinearSample(images, points) -> outputs
// - KerasStnBilinearGradPoints(images, points, upstream) -> grad_points
// - KerasStnBilinearGradImages(images, points, upstream) -> grad_images
// - KerasStnBilinearGradBoth(images, points, upstream)
//   -> (grad_images, grad_points), in one pass
// Work is split over XLA's intra-op thread pool.

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>

#include "bilinear_sampling.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace keras_stn {
namespace {

// The shape of a call, from images `(batch, *spatial, channels)` and points
// `(batch, points, rank)`.
SamplingShape ShapeOf(const ffi::AnyBuffer& images,
                      const ffi::AnyBuffer& points, int32_t padding) {
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
  return shape;
}

// Runs `work(begin, end)` over `[0, count)` in about one range per thread,
// and waits for all of them.
template <typename Work>
void ParallelFor(ffi::ThreadPool& pool, int64_t count, int64_t min_per_range,
                 Work work) {
  const int64_t threads = std::max<int64_t>(1, pool.num_threads());
  const int64_t ranges = std::clamp<int64_t>(
      count / std::max<int64_t>(1, min_per_range), 1, threads);
  if (ranges == 1) {
    work(0, count);
    return;
  }
  std::mutex mutex;
  std::condition_variable done;
  std::atomic<int64_t> pending(ranges - 1);
  for (int64_t range = 1; range < ranges; ++range) {
    pool.Schedule([&, range] {
      work(count * range / ranges, count * (range + 1) / ranges);
      if (pending.fetch_sub(1) == 1) {
        std::lock_guard<std::mutex> lock(mutex);
        done.notify_one();
      }
    });
  }
  work(0, count / ranges);
  std::unique_lock<std::mutex> lock(mutex);
  done.wait(lock, [&] { return pending.load() == 0; });
}

// Points per range below which threads cost more than they save: about
// 32k pixel reads.
int64_t PointsPerRange(const SamplingShape& shape) {
  return std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(1, shape.channels));
}

template <typename T>
ffi::Error Sample(ffi::ThreadPool pool, ffi::AnyBuffer images,
                  ffi::AnyBuffer points, ffi::Result<ffi::AnyBuffer> outputs,
                  int32_t padding) {
  const SamplingShape shape = ShapeOf(images, points, padding);
  WithSampler<T>(shape, [&](const auto& sampler) {
    ParallelFor(pool, shape.batch * shape.points, PointsPerRange(shape),
                [&](int64_t begin, int64_t end) {
                  sampler.Forward(images.typed_data<T>(),
                                  points.typed_data<T>(),
                                  outputs->typed_data<T>(), begin, end);
                });
  });
  return ffi::Error::Success();
}

// The gradients that the null `grad_points` or `grad_images` does not skip.
template <typename T>
ffi::Error Backward(ffi::ThreadPool& pool, const ffi::AnyBuffer& images,
                    const ffi::AnyBuffer& points,
                    const ffi::AnyBuffer& upstream, T* grad_points,
                    T* grad_images, int32_t padding) {
  const SamplingShape shape = ShapeOf(images, points, padding);
  WithSampler<T>(shape, [&](const auto& sampler) {
    const auto work = [&](int64_t begin, int64_t end) {
      sampler.Backward(images.typed_data<T>(), points.typed_data<T>(),
                       upstream.typed_data<T>(), grad_points, grad_images,
                       begin, end);
    };
    if (grad_images == nullptr) {
      ParallelFor(pool, shape.batch * shape.points, PointsPerRange(shape),
                  work);
    } else {
      // Whole examples per range: their images' gradients do not overlap.
      ParallelFor(pool, shape.batch, 1, [&](int64_t begin, int64_t end) {
        work(begin * shape.points, end * shape.points);
      });
    }
  });
  return ffi::Error::Success();
}

template <typename T>
ffi::Error GradPoints(ffi::ThreadPool pool, ffi::AnyBuffer images,
                      ffi::AnyBuffer points, ffi::AnyBuffer upstream,
                      ffi::Result<ffi::AnyBuffer> grad_points,
                      int32_t padding) {
  return Backward<T>(pool, images, points, upstream,
                     grad_points->typed_data<T>(), nullptr, padding);
}

template <typename T>
ffi::Error GradImages(ffi::ThreadPool pool, ffi::AnyBuffer images,
                      ffi::AnyBuffer points, ffi::AnyBuffer upstream,
                      ffi::Result<ffi::AnyBuffer> grad_images,
                      int32_t padding) {
  return Backward<T>(pool, images, points, upstream, nullptr,
                     grad_images->typed_data<T>(), padding);
}

template <typename T>
ffi::Error GradBoth(ffi::ThreadPool pool, ffi::AnyBuffer images,
                    ffi::AnyBuffer points, ffi::AnyBuffer upstream,
                    ffi::Result<ffi::AnyBuffer> grad_images,
                    ffi::Result<ffi::AnyBuffer> grad_points,
                    int32_t padding) {
  return Backward<T>(pool, images, points, upstream,
                     grad_points->typed_data<T>(),
                     grad_images->typed_data<T>(), padding);
}

// Calls `kernel<float>` or `kernel<double>` as the images' dtype says.
#define KERAS_STN_DISPATCH(kernel, images, ...)                            \
  switch ((images).element_type()) {                                      \
    case ffi::DataType::F32:                                              \
      return kernel<float>(__VA_ARGS__);                                  \
    case ffi::DataType::F64:                                              \
      return kernel<double>(__VA_ARGS__);                                 \
    default:                                                              \
      return ffi::Error::InvalidArgument(                                 \
          "keras-stn's sampling kernel takes float32 or float64 images"); \
  }

ffi::Error SampleAnyDtype(ffi::ThreadPool pool, ffi::AnyBuffer images,
                          ffi::AnyBuffer points,
                          ffi::Result<ffi::AnyBuffer> outputs,
                          int32_t padding) {
  KERAS_STN_DISPATCH(Sample, images, pool, images, points, outputs, padding)
}

ffi::Error GradPointsAnyDtype(ffi::ThreadPool pool, ffi::AnyBuffer images,
                              ffi::AnyBuffer points, ffi::AnyBuffer upstream,
                              ffi::Result<ffi::AnyBuffer> grad_points,
                              int32_t padding) {
  KERAS_STN_DISPATCH(GradPoints, images, pool, images, points, upstream,
                     grad_points, padding)
}

ffi::Error GradImagesAnyDtype(ffi::ThreadPool pool, ffi::AnyBuffer images,
                              ffi::AnyBuffer points, ffi::AnyBuffer upstream,
                              ffi::Result<ffi::AnyBuffer> grad_images,
                              int32_t padding) {
  KERAS_STN_DISPATCH(GradImages, images, pool, images, points, upstream,
                     grad_images, padding)
}

ffi::Error GradBothAnyDtype(ffi::ThreadPool pool, ffi::AnyBuffer images,
                            ffi::AnyBuffer points, ffi::AnyBuffer upstream,
                            ffi::Result<ffi::AnyBuffer> grad_images,
                            ffi::Result<ffi::AnyBuffer> grad_points,
                            int32_t padding) {
  KERAS_STN_DISPATCH(GradBoth, images, pool, images, points, upstream,
                     grad_images, grad_points, padding)
}

}  // namespace
}  // namespace keras_stn

XLA_FFI_DEFINE_HANDLER_SYMBOL(KerasStnBilinearSample,
                              keras_stn::SampleAnyDtype,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<int32_t>("padding"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(KerasStnBilinearGradPoints,
                              keras_stn::GradPointsAnyDtype,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<int32_t>("padding"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(KerasStnBilinearGradImages,
                              keras_stn::GradImagesAnyDtype,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<int32_t>("padding"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(KerasStnBilinearGradBoth,
                              keras_stn::GradBothAnyDtype,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<int32_t>("padding"));

// A C interface to the bilinear sampling kernel, for callers that hand it
// raw buffers (keras-stn's torch backend, through ctypes).
//
// Images `(batch, *spatial, channels)`, points `(batch, points, rank)`,
// outputs and upstream gradients `(batch, points, channels)`, contiguous,
// float32 (`dtype` 0) or float64 (`dtype` 1); `sizes` holds the images'
// shape, `rank + 2` numbers. `padding` and `coordinates` are the codes of
// `bilinear_sampling.h`. Work is split over `threads` threads, kept between
// calls (`worker_pool.h`).
//
// - KerasStnBilinearSample(...) -> 0, or -1 for an unknown dtype
// - KerasStnBilinearGradients(...) fills the gradients whose buffers are
//   not null -> 0, or -1

#include <algorithm>
#include <cstdint>
#include <functional>

#include "bilinear_sampling.h"
#include "worker_pool.h"

namespace keras_stn {
namespace {

SamplingShape ShapeOf(int rank, const int64_t* sizes, int64_t points,
                      int padding, int coordinates) {
  SamplingShape shape;
  shape.rank = rank;
  shape.batch = sizes[0];
  shape.channels = sizes[rank + 1];
  shape.points = points;
  for (int axis = 0; axis < rank; ++axis) {
    shape.sizes[axis] = sizes[rank - axis];  // x, y[, z]
  }
  shape.padding = static_cast<Padding>(padding);
  shape.coordinates = static_cast<Coordinates>(coordinates);
  return shape;
}

// Runs `work(begin, end)` over `[0, count)` in up to `threads` ranges, one
// on the calling thread and the others on `WorkerPool`'s workers, and waits
// for all of them. The work is a function of its own: inlined among the
// threads' code, its loops compiled 35% slower.
void ParallelFor(int threads, int64_t count, int64_t min_per_range,
                 const std::function<void(int64_t, int64_t)>& work) {
  const int64_t ranges = std::clamp<int64_t>(
      count / std::max<int64_t>(1, min_per_range), 1, std::max(1, threads));
  if (ranges == 1) {
    work(0, count);
    return;
  }
  WorkerPool::Instance().Run(ranges, [&](int64_t range) {
    work(count * range / ranges, count * (range + 1) / ranges);
  });
}

template <typename T>
void Sample(const SamplingShape& shape, const void* images, const void* points,
            void* outputs, int threads) {
  WithSampler<T>(shape, [&](const auto& sampler) {
    ParallelFor(threads, shape.batch * shape.points, PointsPerRange(shape),
                [&](int64_t begin, int64_t end) {
                  sampler.Forward(static_cast<const T*>(images),
                                  PointArrays<const T>::Interleaved(
                                      static_cast<const T*>(points), shape.rank),
                                  static_cast<T*>(outputs), begin, end);
                });
  });
}

template <typename T, bool kImages, bool kPoints>
void Gradients(const SamplingShape& shape, const void* images,
               const void* points, const void* upstream, void* grad_images,
               void* grad_points, int threads) {
  WithSampler<T>(shape, [&](const auto& sampler) {
    const auto work = [&](int64_t begin, int64_t end) {
      sampler.template Backward<kImages, kPoints>(
          static_cast<const T*>(images),
          PointArrays<const T>::Interleaved(static_cast<const T*>(points),
                                            shape.rank),
          static_cast<const T*>(upstream),
          PointArrays<T>::Interleaved(static_cast<T*>(grad_points), shape.rank),
          static_cast<T*>(grad_images), begin, end);
    };
    if (!kImages) {
      ParallelFor(threads, shape.batch * shape.points, PointsPerRange(shape),
                  work);
    } else {
      // Whole examples per range: their images' gradients do not overlap.
      ParallelFor(threads, shape.batch,
                  std::max<int64_t>(1, PointsPerRange(shape) / shape.points),
                  [&](int64_t begin, int64_t end) {
                    work(begin * shape.points, end * shape.points);
                  });
    }
  });
}

template <typename T>
void GradientsOf(const SamplingShape& shape, const void* images,
                 const void* points, const void* upstream, void* grad_images,
                 void* grad_points, int threads) {
  const auto run = grad_images == nullptr ? Gradients<T, false, true>
                   : grad_points == nullptr ? Gradients<T, true, false>
                                            : Gradients<T, true, true>;
  run(shape, images, points, upstream, grad_images, grad_points, threads);
}

}  // namespace
}  // namespace keras_stn

extern "C" {

int KerasStnBilinearSample(int dtype, const void* images, const void* points,
                           void* outputs, int rank, const int64_t* sizes,
                           int64_t points_per_example, int padding,
                           int coordinates, int threads) {
  const auto shape = keras_stn::ShapeOf(rank, sizes, points_per_example,
                                        padding, coordinates);
  if (dtype == 0) {
    keras_stn::Sample<float>(shape, images, points, outputs, threads);
  } else if (dtype == 1) {
    keras_stn::Sample<double>(shape, images, points, outputs, threads);
  } else {
    return -1;
  }
  return 0;
}

int KerasStnBilinearGradients(int dtype, const void* images,
                              const void* points, const void* upstream,
                              void* grad_images, void* grad_points, int rank,
                              const int64_t* sizes, int64_t points_per_example,
                              int padding, int coordinates, int threads) {
  const auto shape = keras_stn::ShapeOf(rank, sizes, points_per_example,
                                        padding, coordinates);
  if (dtype == 0) {
    keras_stn::GradientsOf<float>(shape, images, points, upstream,
                                  grad_images, grad_points, threads);
  } else if (dtype == 1) {
    keras_stn::GradientsOf<double>(shape, images, points, upstream,
                                   grad_images, grad_points, threads);
  } else {
    return -1;
  }
  return 0;
}

}  // extern "C"

// Bilinear (trilinear for volumes) sampling of channels-last images at
// pixel coordinates: forward pass and both gradients, for CPU kernels.
//
// The numbers of the generic `keras.ops` sampler in
// `keras_stn/ops/grid_sample.py` (`_sample_pixels`), with its rule for NaN and
// infinite points (`keras_stn/ops/nonfinite.py`), for "zeros" and "border"
// padding:
// - along each axis a point reads the pixels `floor(c)` and `floor(c) + 1`
//   with weights `floor(c) + 1 - c` and `c - floor(c)`; a pixel's weight is
//   the product of its weights along the axes, and pixels outside the image
//   are not read (so a NaN or infinite pixel reaches only the outputs that
//   read it);
// - the corners are summed in the generic sampler's order, the last axis
//   fastest, with weights multiplied in the order x, y, z;
// - "border" clamps a coordinate to `[0, size - 1]`, with a zero gradient
//   where it clamps, including exactly on the edge;
// - a point with a NaN coordinate samples NaN and passes no gradient; with
//   "zeros", a point with no pixel within reach along some axis (infinite
//   ones included) samples 0 and passes no gradient.
//
// Work is split into ranges of points, whole examples where the images'
// gradient (a scatter-add, whose examples do not overlap) is computed, so
// that a caller can run ranges on threads.

#ifndef KERAS_STN_OPS_KERNELS_BILINEAR_SAMPLING_H_
#define KERAS_STN_OPS_KERNELS_BILINEAR_SAMPLING_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace keras_stn {

enum class Padding : int { kZeros = 0, kBorder = 1 };

constexpr int kMaxRank = 3;

// The sizes of a sampling call. Images are `(batch, [depth,] height, width,
// channels)`, points `(batch, points, rank)` with `x, y[, z]` last, outputs
// and their gradients `(batch, points, channels)`.
struct SamplingShape {
  int64_t batch = 0;
  int64_t points = 0;
  int64_t channels = 0;
  int rank = 0;
  int64_t sizes[kMaxRank] = {1, 1, 1};  // x, y[, z]
  Padding padding = Padding::kZeros;

  int64_t pixels() const {
    int64_t pixels = 1;
    for (int axis = 0; axis < rank; ++axis) pixels *= sizes[axis];
    return pixels;
  }
};

// The two pixels that a point reads along one axis.
template <typename T>
struct AxisTaps {
  int64_t index[2];
  T weight[2];
  bool inside[2];
  // The derivative of the coordinate used by that of the point: 0 where
  // "border" padding clamps it.
  T slope;
};

// What a point reads along one axis. Returns false where it reads no pixel
// of the image ("zeros" padding, the coordinate at least a pixel outside).
template <typename T>
inline bool FindAxisTaps(T coordinate, int64_t size, Padding padding,
                         AxisTaps<T>* taps) {
  taps->slope = 1;
  if (padding == Padding::kBorder) {
    const T high = static_cast<T>(size - 1);
    if (!(coordinate > 0)) {
      coordinate = 0;
      taps->slope = 0;
    } else if (!(coordinate < high)) {
      coordinate = high;
      taps->slope = 0;
    }
  } else if (!(coordinate >= -1 && coordinate < static_cast<T>(size))) {
    return false;
  }
  const T low = std::floor(coordinate);
  const int64_t index = static_cast<int64_t>(low);
  taps->index[0] = index;
  taps->index[1] = index + 1;
  taps->weight[0] = (low + 1) - coordinate;
  taps->weight[1] = coordinate - low;
  taps->inside[0] = index >= 0 && index < size;
  taps->inside[1] = index + 1 >= 0 && index + 1 < size;
  return true;
}

// What a point reads: its taps along every axis, or why it reads nothing.
enum class PointKind { kSampled, kInvalid, kOutside };

// A sampling call's sizes, with the rank fixed at compile time so that the
// loops over axes and corners unroll.
template <typename T, int Rank>
class Sampler {
 public:
  explicit Sampler(const SamplingShape& shape)
      : shape_(shape), pixels_(shape.pixels()) {
    int64_t stride = 1;
    for (int axis = 0; axis < Rank; ++axis) {
      strides_[axis] = stride;
      stride *= shape.sizes[axis];
    }
  }

  PointKind FindTaps(const T* point, AxisTaps<T>* taps) const {
    for (int axis = 0; axis < Rank; ++axis) {
      if (std::isnan(point[axis])) return PointKind::kInvalid;
    }
    for (int axis = 0; axis < Rank; ++axis) {
      if (!FindAxisTaps(point[axis], shape_.sizes[axis], shape_.padding,
                        &taps[axis])) {
        return PointKind::kOutside;
      }
    }
    return PointKind::kSampled;
  }

  // The corners of a point inside the image, in the generic sampler's order
  // (the first axis slowest).
  struct Corners {
    static constexpr int count = 1 << Rank;
    // Whether the corner is inside the image; a corner outside has weight
    // 0 and offset 0, and reads nothing.
    bool inside[1 << Rank];
    // Pixels from the example's first.
    int64_t offset[1 << Rank];
    T weight[1 << Rank];
    // d(weight) / d(coordinate along each axis): the other axes' weights,
    // with the sign of this axis' tap.
    T derivative[1 << Rank][Rank];
  };

  // Finds the corners, with their weights' derivatives if `derivatives`.
  void FindCorners(const AxisTaps<T>* taps, bool derivatives,
                   Corners* corners) const {
    for (int corner = 0; corner < (1 << Rank); ++corner) {
      bool inside = true;
      int64_t offset = 0;
      T weight = 1;
      for (int axis = 0; axis < Rank; ++axis) {
        const int choice = Choice(corner, axis);
        inside = inside && taps[axis].inside[choice];
        offset += taps[axis].index[choice] * strides_[axis];
        weight = axis == 0 ? taps[axis].weight[choice]
                           : weight * taps[axis].weight[choice];
      }
      const int k = corner;
      corners->inside[k] = inside;
      corners->offset[k] = inside ? offset : 0;
      corners->weight[k] = inside ? weight : T(0);
      if (!derivatives) continue;
      for (int axis = 0; axis < Rank; ++axis) {
        T slope = Choice(corner, axis) ? T(1) : T(-1);
        for (int other = 0; other < Rank; ++other) {
          if (other != axis) slope *= taps[other].weight[Choice(corner, other)];
        }
        corners->derivative[k][axis] = inside ? slope : T(0);
      }
    }
  }

  static int Choice(int corner, int axis) {
    return (corner >> (Rank - 1 - axis)) & 1;
  }

  // Calls `visit(point, example)` for points `[begin, end)`, with the
  // example each belongs to (one division per example, not per point).
  template <typename Visit>
  void ForEachPoint(int64_t begin, int64_t end, Visit&& visit) const {
    for (int64_t p = begin; p < end;) {
      const int64_t example = p / shape_.points;
      const int64_t example_end =
          std::min(end, (example + 1) * shape_.points);
      for (; p < example_end; ++p) visit(p, example);
    }
  }

  // Outputs of points `[begin, end)` (counted over the whole batch).
  void Forward(const T* images, const T* points, T* outputs, int64_t begin,
               int64_t end) const {
    const int64_t channels = shape_.channels;
    AxisTaps<T> taps[Rank];
    Corners corners;
    ForEachPoint(begin, end, [&](int64_t p, int64_t b) {
      T* output = outputs + p * channels;
      const PointKind kind = FindTaps(points + p * Rank, taps);
      if (kind != PointKind::kSampled) {
        const T fill = kind == PointKind::kInvalid
                           ? std::numeric_limits<T>::quiet_NaN()
                           : T(0);
        for (int64_t c = 0; c < channels; ++c) output[c] = fill;
        return;
      }
      FindCorners(taps, /*derivatives=*/false, &corners);
      const T* example = images + b * pixels_ * channels;
      for (int64_t c = 0; c < channels; ++c) {
        T sum = 0;
        for (int k = 0; k < corners.count; ++k) {
          const T value = example[corners.offset[k] * channels + c];
          sum += (corners.inside[k] ? value : T(0)) * corners.weight[k];
        }
        output[c] = sum;
      }
    });
  }

  // The gradients for points `[begin, end)`, given the outputs' gradient:
  // the points' (unless `grad_points` is null) and the images' (unless
  // `grad_images` is null; then the range must hold whole examples, whose
  // gradients it sets).
  void Backward(const T* images, const T* points, const T* upstream,
                T* grad_points, T* grad_images, int64_t begin,
                int64_t end) const {
    const int64_t channels = shape_.channels;
    const int64_t example_size = pixels_ * channels;
    if (grad_images != nullptr) {
      std::memset(grad_images + begin / shape_.points * example_size, 0,
                  (end - begin) / shape_.points * example_size * sizeof(T));
    }
    AxisTaps<T> taps[Rank];
    Corners corners;
    ForEachPoint(begin, end, [&](int64_t p, int64_t b) {
      T grad[Rank] = {};
      if (FindTaps(points + p * Rank, taps) == PointKind::kSampled) {
        FindCorners(taps, grad_points != nullptr, &corners);
        const T* up = upstream + p * channels;
        if (grad_images != nullptr) {
          T* example = grad_images + b * example_size;
          for (int k = 0; k < corners.count; ++k) {
            T* pixel = example + corners.offset[k] * channels;
            const T weight = corners.weight[k];
            for (int64_t c = 0; c < channels; ++c) {
              pixel[c] += corners.inside[k] ? weight * up[c] : T(0);
            }
          }
        }
        if (grad_points != nullptr) {
          const T* example = images + b * example_size;
          for (int k = 0; k < corners.count; ++k) {
            const T* pixel = example + corners.offset[k] * channels;
            T dot = 0;
            for (int64_t c = 0; c < channels; ++c) {
              dot += (corners.inside[k] ? pixel[c] : T(0)) * up[c];
            }
            for (int axis = 0; axis < Rank; ++axis) {
              grad[axis] += dot * corners.derivative[k][axis];
            }
          }
          for (int axis = 0; axis < Rank; ++axis) {
            grad[axis] *= taps[axis].slope;
          }
        }
      }
      if (grad_points != nullptr) {
        for (int axis = 0; axis < Rank; ++axis) {
          grad_points[p * Rank + axis] = grad[axis];
        }
      }
    });
  }

 private:
  SamplingShape shape_;
  int64_t pixels_;
  int64_t strides_[Rank];
};

// Calls `work(sampler)` with the `Sampler` of the shape's rank.
template <typename T, typename Work>
void WithSampler(const SamplingShape& shape, Work&& work) {
  if (shape.rank == 3) {
    work(Sampler<T, 3>(shape));
  } else {
    work(Sampler<T, 2>(shape));
  }
}

}  // namespace keras_stn

#endif  // KERAS_STN_OPS_KERNELS_BILINEAR_SAMPLING_H_

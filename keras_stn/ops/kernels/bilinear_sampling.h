// Bilinear (trilinear for volumes) sampling of channels-last images at
// points given in pixels or in normalized coordinates: forward pass and both
// gradients, for CPU kernels.
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
// Points inside the image take a path that tests no corner. Work is split
// into ranges of points, whole examples where the images'
// gradient (a scatter-add, whose examples do not overlap) is computed, so
// that a caller can run ranges on threads.

#ifndef KERAS_STN_OPS_KERNELS_BILINEAR_SAMPLING_H_
#define KERAS_STN_OPS_KERNELS_BILINEAR_SAMPLING_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

namespace keras_stn {

enum class Padding : int { kZeros = 0, kBorder = 1 };

// How the points give their coordinates: in pixels (pixel `i` has its
// centre at `i`), or normalized to [-1, 1] as `grid_sample`'s grid, with
// `align_corners` false or true (`keras_stn/ops/coordinates.py`).
enum class Coordinates : int {
  kPixels = 0,
  kNormalized = 1,
  kNormalizedAlignCorners = 2,
};

constexpr int kMaxRank = 3;

// The sizes of a sampling call. Images are `(batch, [depth,] height, width,
// channels)`, the points' coordinates `PointArrays`, outputs and their
// gradients `(batch, points, channels)`.
struct SamplingShape {
  int64_t batch = 0;
  int64_t points = 0;
  int64_t channels = 0;
  int rank = 0;
  int64_t sizes[kMaxRank] = {1, 1, 1};  // x, y[, z]
  Padding padding = Padding::kZeros;
  Coordinates coordinates = Coordinates::kPixels;

  int64_t pixels() const {
    int64_t pixels = 1;
    for (int axis = 0; axis < rank; ++axis) pixels *= sizes[axis];
    return pixels;
  }
};

// Where the points' coordinates are, `x, y[, z]`: point `p`'s along `axis`
// at `axes[axis][p * stride]`, from one array `(batch, points, rank)`
// (`Interleaved`) or one array `(batch, points)` per axis (stride 1). `T`
// is const for the points, not for their gradient.
template <typename T>
struct PointArrays {
  T* axes[kMaxRank] = {};
  int64_t stride = 1;

  static PointArrays Interleaved(T* data, int rank) {
    PointArrays arrays;
    for (int axis = 0; axis < rank; ++axis) arrays.axes[axis] = data + axis;
    arrays.stride = rank;
    return arrays;
  }

  T& operator()(int64_t point, int axis) const {
    return axes[axis][point * stride];
  }
};

// What a point reads: its corners, or why it reads nothing.
enum class PointKind { kSampled, kInvalid, kOutside };

// A sampling call's sizes, with the rank fixed at compile time so that the
// loops over axes and corners unroll, and the channels too where they are
// `Channels` (0: known only at run time).
template <typename T, int Rank, int Channels = 0>
class Sampler {
 public:
  static constexpr int kCorners = 1 << Rank;

  explicit Sampler(const SamplingShape& shape)
      : shape_(shape),
        channels_(Channels > 0 ? Channels : shape.channels),
        example_size_(shape.pixels() * channels_),
        normalized_(shape.coordinates != Coordinates::kPixels) {
    int64_t stride = channels_;
    for (int axis = 0; axis < Rank; ++axis) {
      strides_[axis] = stride;
      stride *= shape.sizes[axis];
      const T size = static_cast<T>(shape.sizes[axis]);
      if (shape.coordinates == Coordinates::kNormalized) {
        unnormalization_[axis] = {size, T(1), T(0.5)};
      } else if (shape.coordinates == Coordinates::kNormalizedAlignCorners) {
        unnormalization_[axis] = {T(0.5), T(0), size - 1};
      }
      scales_[axis] =
          normalized_ ? unnormalization_[axis].multiplier *
                            unnormalization_[axis].factor
                      : T(1);
    }
  }

  // Outputs of points `[begin, end)` (counted over the whole batch).
  void Forward(const T* images, const PointArrays<const T>& points,
               T* outputs, int64_t begin, int64_t end) const {
    // A compile-time constant where `Channels` is, so the loops over
    // channels fold away.
    const int64_t channels = Channels > 0 ? Channels : channels_;
    Corners corners;
    ForEachPoint(begin, end, [&](int64_t p, int64_t b) {
      T* output = outputs + p * channels;
      const PointKind kind = FindCorners(points, p, &corners);
      if (kind != PointKind::kSampled) {
        const T fill = kind == PointKind::kInvalid
                           ? std::numeric_limits<T>::quiet_NaN()
                           : T(0);
        for (int64_t c = 0; c < channels; ++c) output[c] = fill;
        return;
      }
      const T* image = images + b * example_size_;
      for (int64_t c = 0; c < channels; ++c) {
        T sum = 0;
        corners.ForEach([&](auto k, auto inside) {
          const T value = image[corners.offset[k] + c];
          sum += (inside ? value : T(0)) * corners.weight[k];
        });
        output[c] = sum;
      }
    });
  }

  // The gradients for points `[begin, end)`, given the outputs' gradient:
  // the images' if `kImages` (then the range must hold whole examples,
  // whose gradients it sets) and the points' if `kPoints`; the other
  // pointer is not used. Fixed at compile time, so that the loop over
  // points holds only the work asked for.
  template <bool kImages, bool kPoints>
  void Backward(const T* images, const PointArrays<const T>& points,
                const T* upstream, const PointArrays<T>& grad_points,
                T* grad_images, int64_t begin, int64_t end) const {
    const int64_t channels = Channels > 0 ? Channels : channels_;
    if (kImages) {
      std::memset(grad_images + begin / shape_.points * example_size_, 0,
                  (end - begin) / shape_.points * example_size_ * sizeof(T));
    }
    Corners corners;
    ForEachPoint(begin, end, [&](int64_t p, int64_t b) {
      T grad[Rank] = {};
      if (FindCorners(points, p, &corners) == PointKind::kSampled) {
        const T* up = upstream + p * channels;
        if (kImages) {
          T* image = grad_images + b * example_size_;
          corners.ForEach([&](auto k, auto inside) {
            T* pixel = image + corners.offset[k];
            const T weight = corners.weight[k];
            for (int64_t c = 0; c < channels; ++c) {
              pixel[c] += inside ? weight * up[c] : T(0);
            }
          });
        }
        if (kPoints) {
          const T* image = images + b * example_size_;
          corners.ForEach([&](auto k, auto inside) {
            const T* pixel = image + corners.offset[k];
            T dot = 0;
            for (int64_t c = 0; c < channels; ++c) {
              dot += (inside ? pixel[c] : T(0)) * up[c];
            }
            for (int axis = 0; axis < Rank; ++axis) {
              grad[axis] += dot * corners.Derivative(k, axis);
            }
          });
          for (int axis = 0; axis < Rank; ++axis) {
            grad[axis] *= corners.slope[axis];
          }
        }
      }
      if (kPoints) {
        for (int axis = 0; axis < Rank; ++axis) {
          grad_points(p, axis) = grad[axis];
        }
      }
    });
  }

 private:
  // The tap (0: lower, 1: upper) of `axis` in `corner`.
  static constexpr int Choice(int corner, int axis) {
    return (corner >> (Rank - 1 - axis)) & 1;
  }

  // The corners of a point that reads some pixel, in the generic sampler's
  // order (the first axis slowest).
  struct Corners {
    // Whether every corner is inside the image (most points): the loops
    // over corners then test nothing.
    bool interior;
    // Whether the corner is inside the image; a corner outside has offset
    // 0 and weight 0, and reads nothing.
    bool inside[kCorners];
    // Elements from the example's first.
    int64_t offset[kCorners];
    T weight[kCorners];
    // The weights of each axis' lower and upper taps, and the derivative
    // of the pixel coordinate used by the point's coordinate (0 where
    // "border" padding clamps it).
    T axis_weight[Rank][2];
    T slope[Rank];

    // Calls `visit(corner, inside)` for each corner, with `inside` a
    // compile-time `true` for interior points.
    template <typename Visit>
    void ForEach(Visit&& visit) const {
      if (interior) {
        for (int k = 0; k < kCorners; ++k) visit(k, std::true_type());
      } else {
        for (int k = 0; k < kCorners; ++k) visit(k, inside[k]);
      }
    }

    // d(weight of `corner`) / d(coordinate along `axis`): the other axes'
    // weights, with the sign of this axis' tap.
    T Derivative(int corner, int axis) const {
      T derivative = Choice(corner, axis) ? T(1) : T(-1);
      for (int other = 0; other < Rank; ++other) {
        if (other != axis) {
          derivative *= axis_weight[other][Choice(corner, other)];
        }
      }
      return inside[corner] ? derivative : T(0);
    }
  };

  // A point's coordinate along `axis`, in pixels: from normalized ones,
  // with the arithmetic of PyTorch's `grid_sampler_unnormalize`,
  // `((c + 1) * size - 1) / 2` or, with `align_corners`, `((c + 1) / 2) *
  // (size - 1)`, as `((c + 1) * multiplier - offset) * factor` (exactly: a
  // halving is exact, and so is subtracting 0).
  T ToPixels(T coordinate, int axis) const {
    const Unnormalization& u = unnormalization_[axis];
    return normalized_
               ? ((coordinate + 1) * u.multiplier - u.offset) * u.factor
               : coordinate;
  }

  // Finds what point `p` reads.
  PointKind FindCorners(const PointArrays<const T>& points, int64_t p,
                        Corners* corners) const {
    bool reads[Rank][2];
    int64_t low_offset[Rank];
    corners->interior = true;
    for (int axis = 0; axis < Rank; ++axis) {
      T coordinate = ToPixels(points(p, axis), axis);
      const int64_t size = shape_.sizes[axis];
      const T high = static_cast<T>(size - 1);
      T slope = 1;
      bool edge = !(coordinate > 0 && coordinate < high);
      if (edge) {
        corners->interior = false;
        if (std::isnan(coordinate)) return PointKind::kInvalid;
        if (shape_.padding == Padding::kBorder) {
          coordinate = coordinate > 0 ? high : T(0);
          slope = 0;
        } else if (!(coordinate >= -1 && coordinate < static_cast<T>(size))) {
          // NaN along a later axis still samples NaN.
          for (int later = axis + 1; later < Rank; ++later) {
            if (std::isnan(ToPixels(points(p, later), later))) {
              return PointKind::kInvalid;
            }
          }
          return PointKind::kOutside;
        }
      }
      const T low = std::floor(coordinate);
      const int64_t index = static_cast<int64_t>(low);
      corners->axis_weight[axis][0] = (low + 1) - coordinate;
      corners->axis_weight[axis][1] = coordinate - low;
      corners->slope[axis] = slope * scales_[axis];
      reads[axis][0] = !edge || index >= 0;
      reads[axis][1] = !edge || index + 1 < size;
      low_offset[axis] = index * strides_[axis];
    }
    for (int k = 0; k < kCorners; ++k) {
      bool inside = true;
      int64_t offset = 0;
      T weight = 1;
      for (int axis = 0; axis < Rank; ++axis) {
        const int choice = Choice(k, axis);
        inside = inside && reads[axis][choice];
        offset += low_offset[axis] + choice * strides_[axis];
        weight = axis == 0 ? corners->axis_weight[axis][choice]
                           : weight * corners->axis_weight[axis][choice];
      }
      corners->inside[k] = inside;
      corners->offset[k] = inside ? offset : 0;
      corners->weight[k] = inside ? weight : T(0);
    }
    return PointKind::kSampled;
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

  SamplingShape shape_;
  int64_t channels_;
  int64_t example_size_;
  // Elements between neighbouring pixels along each axis.
  int64_t strides_[Rank];
  // Whether the points' coordinates are normalized, and how they become
  // pixel coordinates along each axis (see `ToPixels`).
  bool normalized_;
  struct Unnormalization {
    T multiplier, offset, factor;
  };
  Unnormalization unnormalization_[Rank] = {};
  // d(pixel coordinate) / d(coordinate of the points) along each axis.
  T scales_[Rank];
};

// Points per range of work below which a thread costs more than it saves:
// about 32k pixel reads.
inline int64_t PointsPerRange(const SamplingShape& shape) {
  return std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(1, shape.channels));
}

// Calls `work(sampler)` with the `Sampler` of the shape's rank, and of its
// channels where they are one (grey images) or three (colour ones).
template <typename T, typename Work>
void WithSampler(const SamplingShape& shape, Work&& work) {
  if (shape.rank == 3) {
    work(Sampler<T, 3>(shape));
  } else if (shape.channels == 1) {
    work(Sampler<T, 2, 1>(shape));
  } else if (shape.channels == 3) {
    work(Sampler<T, 2, 3>(shape));
  } else {
    work(Sampler<T, 2>(shape));
  }
}

}  // namespace keras_stn

#endif  // KERAS_STN_OPS_KERNELS_BILINEAR_SAMPLING_H_

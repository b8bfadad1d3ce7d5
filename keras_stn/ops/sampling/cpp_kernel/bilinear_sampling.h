// Bilinear (trilinear for volumes) sampling of channels-last images at
// points given in pixels or in normalized coordinates: forward pass and both
// gradients, for CPU kernels.
//
// The numbers of the generic `keras.ops` sampler in
// `keras_stn/ops/grid_sample.py` (`_sample_pixels`), with its rule for NaN and
// infinite points (`keras_stn/ops/sampling/nonfinite.py`), for "zeros" and "border"
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
// Points inside the image take a path that tests no corner; float32 images
// of up to seven channels are sampled 16 points at a time with AVX-512
// vectors, or 8 with AVX2, where the compiler targets them (the same
// numbers: see `kBlocks`). Work is split into ranges of points, whole
// examples where the images' gradient (a scatter-add, whose examples do not
// overlap) is computed, so that a caller can run ranges on threads.

#ifndef KERAS_STN_OPS_KERNELS_BILINEAR_SAMPLING_H_
#define KERAS_STN_OPS_KERNELS_BILINEAR_SAMPLING_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "vector_lanes.h"

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

// The most channels of 2-D images that the kernel samples in blocks of
// points (`Sampler::kBlocks`). Up to here a block's gathers, one per
// corner and channel, are faster than the scalar path's loop over each
// point's channels; from eight channels on they are not
// (`docs/design/kernel-history.md`).
constexpr int kMaxBlockChannels = 7;

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
        normalized_(shape.coordinates != Coordinates::kPixels),
        blocks_fit_(example_size_ < (int64_t(1) << 31)) {
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
    ForEachPoint(
        begin, end,
        [&](int64_t p, int64_t b) {
          return WithBlock(images + b * example_size_, points, p,
                           [&](const auto& block) {
                             ForwardBlock(block, p, outputs);
                           });
        },
        [&](int64_t p, int64_t b) {
          ForwardPoint(images + b * example_size_, points, p, outputs);
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
    if (kImages) {
      std::memset(grad_images + begin / shape_.points * example_size_, 0,
                  (end - begin) / shape_.points * example_size_ * sizeof(T));
    }
    ForEachPoint(
        begin, end,
        [&](int64_t p, int64_t b) {
          return WithBlock(
              images + b * example_size_, points, p, [&](const auto& block) {
                BackwardBlock<kImages, kPoints>(
                    block, upstream, grad_points,
                    grad_images + (kImages ? b * example_size_ : 0), p);
              });
        },
        [&](int64_t p, int64_t b) {
          BackwardPoint<kImages, kPoints>(
              images + b * example_size_, points, upstream, grad_points,
              grad_images + (kImages ? b * example_size_ : 0), p);
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

  // The output of point `p`, which samples `image`.
  void ForwardPoint(const T* image, const PointArrays<const T>& points,
                    int64_t p, T* outputs) const {
    // A compile-time constant where `Channels` is, so the loops over
    // channels fold away.
    const int64_t channels = Channels > 0 ? Channels : channels_;
    T* output = outputs + p * channels;
    Corners corners;
    const PointKind kind = FindCorners(points, p, &corners);
    if (kind != PointKind::kSampled) {
      const T fill = kind == PointKind::kInvalid
                         ? std::numeric_limits<T>::quiet_NaN()
                         : T(0);
      for (int64_t c = 0; c < channels; ++c) output[c] = fill;
      return;
    }
    for (int64_t c = 0; c < channels; ++c) {
      T sum = 0;
      corners.ForEach([&](auto k, auto inside) {
        const T value = image[corners.offset[k] + c];
        sum += (inside ? value : T(0)) * corners.weight[k];
      });
      output[c] = sum;
    }
  }

  // The gradients of point `p`, which samples `image`, whose gradient is
  // `grad_image`: as `Backward`, for one point.
  template <bool kImages, bool kPoints>
  void BackwardPoint(const T* image, const PointArrays<const T>& points,
                     const T* upstream, const PointArrays<T>& grad_points,
                     T* grad_image, int64_t p) const {
    const int64_t channels = Channels > 0 ? Channels : channels_;
    Corners corners;
    T grad[Rank] = {};
    if (FindCorners(points, p, &corners) == PointKind::kSampled) {
      const T* up = upstream + p * channels;
      if (kImages) {
        corners.ForEach([&](auto k, auto inside) {
          T* pixel = grad_image + corners.offset[k];
          const T weight = corners.weight[k];
          for (int64_t c = 0; c < channels; ++c) {
            pixel[c] += inside ? weight * up[c] : T(0);
          }
        });
      }
      if (kPoints) {
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
      for (int axis = 0; axis < Rank; ++axis) grad_points(p, axis) = grad[axis];
    }
  }

#ifdef KERAS_STN_BLOCKS
  // Blocks of `kBlock` points, with vectors across the points
  // (`vector_lanes.h`: 16 lanes with AVX-512, 8 with AVX2), where the
  // images are 2-D of up to `kMaxBlockChannels` channels in float32 (grey
  // and colour images, pairs of them, small feature maps): there a point's
  // work is too little to vectorize within it.
  // The operations are the scalar path's, one by one and in its order (the
  // kernels build without fused multiply-adds), so the numbers are the
  // same. Corners outside the image read nothing (masked gathers) with
  // "zeros" padding; a block with a NaN coordinate, or with "border"
  // padding a corner outside, takes the scalar path.
  static constexpr bool kBlocks = std::is_same<T, float>::value &&
                                  Rank == 2 && Channels >= 1 &&
                                  Channels <= kMaxBlockChannels;
  static constexpr int kBlock = Lanes::kCount;
  // The channels of a block's arrays (one where `kBlocks` is false).
  static constexpr int kBlockChannels = Channels > 0 ? Channels : 1;
  using Float = Lanes::Float;
  using Mask = Lanes::Mask;

  // The corners of a block: the lower corner's element, the weights of
  // the lower and upper taps along each axis, and masks of the lanes: each
  // corner's, whether it is inside the image, and the points that sample
  // 0 (no pixel within reach).
  struct BlockCorners {
    Lanes::Int index;
    Float weight[Rank][2];
    Mask inside[kCorners];
    Mask outside;
  };

  // A block's corners with the pixels there, by corner and channel, and
  // each corner's weight.
  struct Block {
    BlockCorners corners;
    Float values[kCorners][kBlockChannels];
    Float weights[kCorners];
  };

  // The block's values at `base + lane * stride`.
  static Float LoadLanes(const T* base, int64_t stride) {
    return stride == 1 ? Lanes::Load(base) : Lanes::LoadStrided(base, stride);
  }

  // Stores the block's values at `base + lane * stride`.
  static void StoreLanes(T* base, int64_t stride, Float values) {
    if (stride == 1) {
      Lanes::Store(base, values);
      return;
    }
    T lanes[kBlock];
    Lanes::Store(lanes, values);
    for (int lane = 0; lane < kBlock; ++lane) base[lane * stride] = lanes[lane];
  }

  // The block's coordinates along each axis, from `p`. Interleaved 2-D
  // points are two loads, split into the axes by permutations.
  static void LoadPoints(const PointArrays<const T>& points, int64_t p,
                         Float coordinates[Rank]) {
    if (points.stride != 2) {
      for (int axis = 0; axis < Rank; ++axis) {
        coordinates[axis] = LoadLanes(&points(p, axis), points.stride);
      }
      return;
    }
    Lanes::SplitPairs(Lanes::Load(&points(p, 0)),
                      Lanes::Load(&points(p + kBlock / 2, 0)),
                      &coordinates[0], &coordinates[1]);
  }

  // Stores the block's values along each axis at its points from `p`: the
  // inverse of `LoadPoints`.
  static void StorePoints(const PointArrays<T>& points, int64_t p,
                          const Float values[Rank]) {
    if (points.stride != 2) {
      for (int axis = 0; axis < Rank; ++axis) {
        StoreLanes(&points(p, axis), points.stride, values[axis]);
      }
      return;
    }
    Float first, second;
    Lanes::JoinPairs(values[0], values[1], &first, &second);
    Lanes::Store(&points(p, 0), first);
    Lanes::Store(&points(p + kBlock / 2, 0), second);
  }

  // The block of points from `p`, in pixels; false where the block takes
  // the scalar path.
  bool FindBlockCorners(const PointArrays<const T>& points, int64_t p,
                        BlockCorners* block) const {
    if (!blocks_fit_) return false;
    const Float one = Lanes::Set(1);
    Mask interior = Lanes::AllLanes();
    Mask reads[Rank][2];
    Float low[Rank], coordinates[Rank];
    LoadPoints(points, p, coordinates);
    block->outside = Lanes::NoLanes();
    for (int axis = 0; axis < Rank; ++axis) {
      Float coordinate = coordinates[axis];
      if (normalized_) {
        const Unnormalization& u = unnormalization_[axis];
        coordinate = Lanes::Mul(
            Lanes::Sub(Lanes::Mul(Lanes::Add(coordinate, one),
                                  Lanes::Set(u.multiplier)),
                       Lanes::Set(u.offset)),
            Lanes::Set(u.factor));
      }
      if (Lanes::Bits(Lanes::IsNan(coordinate))) return false;
      const T size = static_cast<T>(shape_.sizes[axis]);
      const Float high = Lanes::Set(size - 1);
      interior = Lanes::And(
          interior, Lanes::And(Lanes::Greater(coordinate, Lanes::Zero()),
                               Lanes::Less(coordinate, high)));
      const Mask beyond =
          Lanes::Or(Lanes::Less(coordinate, Lanes::Set(-1)),
                    Lanes::GreaterEqual(coordinate, Lanes::Set(size)));
      block->outside = Lanes::Or(block->outside, beyond);
      low[axis] = Lanes::Floor(coordinate);
      block->weight[axis][0] =
          Lanes::Sub(Lanes::Add(low[axis], one), coordinate);
      block->weight[axis][1] = Lanes::Sub(coordinate, low[axis]);
      reads[axis][0] = Lanes::GreaterEqual(low[axis], Lanes::Zero());
      reads[axis][1] = Lanes::Less(low[axis], high);
    }
    if (Lanes::Bits(interior) != Lanes::Bits(Lanes::AllLanes()) &&
        shape_.padding != Padding::kZeros) {
      return false;
    }
    for (int k = 0; k < kCorners; ++k) {
      block->inside[k] = Lanes::AndNot(
          block->outside,
          Lanes::And(reads[0][Choice(k, 0)], reads[1][Choice(k, 1)]));
    }
    block->index = Lanes::ZeroInt();
    for (int axis = 0; axis < Rank; ++axis) {
      block->index = Lanes::AddInt(
          block->index,
          Lanes::MulInt(Lanes::Truncate(low[axis]),
                        Lanes::SetInt(static_cast<int32_t>(strides_[axis]))));
    }
    return true;
  }

  // Corner `k`'s first element from the image's first.
  Lanes::Int CornerIndex(const BlockCorners& block, int k) const {
    Lanes::Int index = block.index;
    for (int axis = 0; axis < Rank; ++axis) {
      if (Choice(k, axis)) {
        index = Lanes::AddInt(
            index, Lanes::SetInt(static_cast<int32_t>(strides_[axis])));
      }
    }
    return index;
  }

  // Finds the block of points from `p` and reads the pixels at its corners
  // (0 outside the image), by corner in the scalar path's order (the first
  // axis slowest) and channel, with the corners' weights; false where the
  // block takes the scalar path.
  bool ReadBlock(const T* image, const PointArrays<const T>& points,
                 int64_t p, Block* block) const {
    if (!FindBlockCorners(points, p, &block->corners)) return false;
    const BlockCorners& corners = block->corners;
    for (int k = 0; k < kCorners; ++k) {
      const Lanes::Int index = CornerIndex(corners, k);
      for (int c = 0; c < kBlockChannels; ++c) {
        block->values[k][c] =
            Lanes::Gather(image + c, index, corners.inside[k]);
      }
      block->weights[k] = Lanes::Mul(corners.weight[0][Choice(k, 0)],
                                     corners.weight[1][Choice(k, 1)]);
    }
    return true;
  }

  // Reads the block of points from `p` and, where it takes the vector
  // path, calls `pass(block)`; false where it takes the scalar path.
  template <typename Pass>
  bool WithBlock(const T* image, const PointArrays<const T>& points,
                 int64_t p, Pass&& pass) const {
    if constexpr (!kBlocks) {
      return false;
    } else {
      Block block;
      if (!ReadBlock(image, points, p, &block)) return false;
      pass(block);
      return true;
    }
  }

  // `ForwardPoint` for the block of points from `p`.
  void ForwardBlock(const Block& block, int64_t p, T* outputs) const {
    const auto& [corners, values, weights] = block;
    Float sums[kBlockChannels];
    for (int c = 0; c < kBlockChannels; ++c) {
      Float sum = Lanes::Zero();
      for (int k = 0; k < kCorners; ++k) {
        sum = Lanes::Add(sum, Lanes::Mul(values[k][c], weights[k]));
      }
      sums[c] = Lanes::Clear(corners.outside, sum);
    }
    StoreInterleaved(outputs + p * kBlockChannels, sums);
  }

  // `BackwardPoint` for the block of points from `p`.
  template <bool kImages, bool kPoints>
  void BackwardBlock(const Block& block, const T* upstream,
                     const PointArrays<T>& grad_points, T* grad_image,
                     int64_t p) const {
    const auto& [corners, values, weights] = block;
    Float up[kBlockChannels];
    LoadInterleaved(upstream + p * kBlockChannels, up);
    if (kImages) {
      // A scatter-add, point by point as the scalar path adds.
      int32_t index[kCorners][kBlock];
      T weighted[kCorners][kBlockChannels][kBlock];
      int inside[kCorners];
      for (int k = 0; k < kCorners; ++k) {
        Lanes::StoreInt(index[k], CornerIndex(corners, k));
        for (int c = 0; c < kBlockChannels; ++c) {
          Lanes::Store(weighted[k][c], Lanes::Mul(weights[k], up[c]));
        }
        inside[k] = Lanes::Bits(corners.inside[k]);
      }
      for (int lane = 0; lane < kBlock; ++lane) {
        for (int k = 0; k < kCorners; ++k) {
          if (inside[k] >> lane & 1) {
            T* pixel = grad_image + index[k][lane];
            for (int c = 0; c < kBlockChannels; ++c) {
              pixel[c] += weighted[k][c][lane];
            }
          }
        }
      }
    }
    if (kPoints) {
      Float grad[Rank] = {Lanes::Zero(), Lanes::Zero()};
      for (int k = 0; k < kCorners; ++k) {
        Float dot = Lanes::Zero();
        for (int c = 0; c < kBlockChannels; ++c) {
          dot = Lanes::Add(dot, Lanes::Mul(values[k][c], up[c]));
        }
        for (int axis = 0; axis < Rank; ++axis) {
          // The other axis' weight, with the sign of this axis' tap.
          const int other = 1 - axis;
          Float derivative = corners.weight[other][Choice(k, other)];
          if (!Choice(k, axis)) {
            derivative = Lanes::Sub(Lanes::Zero(), derivative);
          }
          grad[axis] = Lanes::Add(
              grad[axis],
              Lanes::Mul(dot, Lanes::Keep(corners.inside[k], derivative)));
        }
      }
      for (int axis = 0; axis < Rank; ++axis) {
        grad[axis] = Lanes::Clear(
            corners.outside,
            Lanes::Mul(grad[axis], Lanes::Set(scales_[axis])));
      }
      StorePoints(grad_points, p, grad);
    }
  }
#else
  static constexpr bool kBlocks = false;
  static constexpr int kBlock = 1;
  struct Block;
  template <typename Pass>
  bool WithBlock(const T*, const PointArrays<const T>&, int64_t,
                 Pass&&) const {
    return false;
  }
  // Declared for the passes' calls, which are never made without blocks.
  void ForwardBlock(const Block& block, int64_t p, T* outputs) const;
  template <bool kImages, bool kPoints>
  void BackwardBlock(const Block& block, const T* upstream,
                     const PointArrays<T>& grad_points, T* grad_image,
                     int64_t p) const;
#endif  // KERAS_STN_BLOCKS

  // Calls `block(first, example)` for blocks of `kBlock` points of one
  // example where there are blocks, and `point(point, example)` for the
  // points of the blocks that `block` returns false for, and for the rest
  // of points `[begin, end)` (one division per example, not per point).
  template <typename Block, typename Point>
  void ForEachPoint(int64_t begin, int64_t end, Block&& block,
                    Point&& point) const {
    for (int64_t p = begin; p < end;) {
      const int64_t example = p / shape_.points;
      const int64_t example_end =
          std::min(end, (example + 1) * shape_.points);
      if (kBlocks) {
        for (; p + kBlock <= example_end; p += kBlock) {
          if (!block(p, example)) {
            for (int64_t q = p; q < p + kBlock; ++q) point(q, example);
          }
        }
      }
      for (; p < example_end; ++p) point(p, example);
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
  // Whether an example's elements are counted in 32 bits, as the blocks'
  // gathers count them.
  bool blocks_fit_;
};

// Points per range of work below which a thread costs more than it saves:
// about 32k pixel reads.
inline int64_t PointsPerRange(const SamplingShape& shape) {
  return std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(1, shape.channels));
}

// Calls `work(sampler)` with the `Sampler` of 2-D images of `shape`'s
// channels: for float32, which blocks of points sample, of `Channels`
// channels where it has them, else of the next count up to
// `kMaxBlockChannels`; else of channels known at run time.
template <typename T, int Channels, typename Work>
void WithImageSampler(const SamplingShape& shape, Work&& work) {
  if constexpr (!std::is_same<T, float>::value ||
                Channels > kMaxBlockChannels) {
    work(Sampler<T, 2>(shape));
  } else if (shape.channels == Channels) {
    work(Sampler<T, 2, Channels>(shape));
  } else {
    WithImageSampler<T, Channels + 1>(shape, work);
  }
}

// Calls `work(sampler)` with the `Sampler` of the shape's rank, and of its
// channels where blocks of points may sample them.
template <typename T, typename Work>
void WithSampler(const SamplingShape& shape, Work&& work) {
  if (shape.rank == 3) {
    work(Sampler<T, 3>(shape));
  } else {
    WithImageSampler<T, 1>(shape, work);
  }
}

}  // namespace keras_stn

#endif  // KERAS_STN_OPS_KERNELS_BILINEAR_SAMPLING_H_

// Vectors of float32 lanes, one lane a sampling point, for the kernel's
// blocks of points (`bilinear_sampling.h`): 16 lanes where the compiler
// targets AVX-512, else 8 where it targets AVX2. Each operation is the same
// IEEE operation at either width, so the blocks give the same numbers.
//
// `Lanes::Float` holds a float a lane, `Lanes::Int` an int32 a lane, and
// `Lanes::Mask` a bit a lane (a comparison's result).

#ifndef KERAS_STN_OPS_KERNELS_VECTOR_LANES_H_
#define KERAS_STN_OPS_KERNELS_VECTOR_LANES_H_

#if defined(__AVX2__)
#include <immintrin.h>

#include <cstdint>
#define KERAS_STN_BLOCKS 1

namespace keras_stn {

// The permutations that interleave `kChannels` vectors of `kLanes` lanes
// (lane `i` of vector `c` to element `i * kChannels + c` of `kChannels`
// consecutive vectors) and split them again: `interleaved[v][c][j]` is the
// lane of vector `c` that lane `j` of vector `v` takes, and
// `split[c][v][i]` the lane of consecutive vector `v` that lane `i` of
// channel `c` takes; -1 where the lane takes another vector's.
template <int kLanes, int kChannels>
struct Interleaving {
  int32_t interleaved[kChannels][kChannels][kLanes] = {};
  int32_t split[kChannels][kChannels][kLanes] = {};

  constexpr Interleaving() {
    for (int v = 0; v < kChannels; ++v) {
      for (int c = 0; c < kChannels; ++c) {
        for (int j = 0; j < kLanes; ++j) {
          const int element = v * kLanes + j;
          interleaved[v][c][j] =
              element % kChannels == c ? element / kChannels : -1;
          const int source = j * kChannels + c;
          split[c][v][j] = source / kLanes == v ? source % kLanes : -1;
        }
      }
    }
  }
};

#if defined(__AVX512F__)

struct Lanes {
  static constexpr int kCount = 16;
  using Float = __m512;
  using Int = __m512i;
  using Mask = __mmask16;

  static Float Set(float value) { return _mm512_set1_ps(value); }
  static Float Zero() { return _mm512_setzero_ps(); }
  static Float Add(Float a, Float b) { return _mm512_add_ps(a, b); }
  static Float Sub(Float a, Float b) { return _mm512_sub_ps(a, b); }
  static Float Mul(Float a, Float b) { return _mm512_mul_ps(a, b); }
  static Float Floor(Float a) {
    return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  }

  static Mask Less(Float a, Float b) {
    return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ);
  }
  static Mask Greater(Float a, Float b) {
    return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ);
  }
  static Mask GreaterEqual(Float a, Float b) {
    return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ);
  }
  static Mask IsNan(Float a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q); }
  static Mask AllLanes() { return static_cast<Mask>(0xFFFF); }
  static Mask NoLanes() { return 0; }
  static Mask And(Mask a, Mask b) { return a & b; }
  static Mask Or(Mask a, Mask b) { return a | b; }
  // The lanes of `b` that are not in `a`.
  static Mask AndNot(Mask a, Mask b) { return static_cast<Mask>(~a & b); }
  // Bit `lane` set where the lane is.
  static int Bits(Mask mask) { return mask; }

  // `values` in the lanes of `mask`, +0 elsewhere.
  static Float Keep(Mask mask, Float values) {
    return _mm512_maskz_mov_ps(mask, values);
  }
  // `values` outside the lanes of `mask`, +0 in them.
  static Float Clear(Mask mask, Float values) {
    return _mm512_maskz_mov_ps(static_cast<Mask>(~mask), values);
  }

  static Int SetInt(int32_t value) { return _mm512_set1_epi32(value); }
  static Int ZeroInt() { return _mm512_setzero_si512(); }
  static Int AddInt(Int a, Int b) { return _mm512_add_epi32(a, b); }
  static Int MulInt(Int a, Int b) { return _mm512_mullo_epi32(a, b); }
  static Int Truncate(Float a) { return _mm512_cvttps_epi32(a); }
  static void StoreInt(int32_t* to, Int values) {
    _mm512_storeu_si512(to, values);
  }

  // `base[index]` in the lanes of `mask`, 0 elsewhere (nothing read).
  static Float Gather(const float* base, Int index, Mask mask) {
    return _mm512_mask_i32gather_ps(Zero(), mask, index, base, 4);
  }
  static Float Load(const float* from) { return _mm512_loadu_ps(from); }
  static void Store(float* to, Float values) { _mm512_storeu_ps(to, values); }
  // Lane `i` from `base + i * stride`.
  static Float LoadStrided(const float* base, int64_t stride) {
    const Int lanes = MulInt(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
                          15),
        SetInt(static_cast<int32_t>(stride)));
    return _mm512_i32gather_ps(lanes, base, 4);
  }

  // From pairs `x0 y0 x1 y1 ...` in `first` and `second` (lanes 0-7 and
  // 8-15), `x` and `y` a lane each.
  static void SplitPairs(Float first, Float second, Float* x, Float* y) {
    const Int even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20,
                                       22, 24, 26, 28, 30);
    const Int odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21,
                                      23, 25, 27, 29, 31);
    *x = _mm512_permutex2var_ps(first, even, second);
    *y = _mm512_permutex2var_ps(first, odd, second);
  }
  // The inverse of `SplitPairs`.
  static void JoinPairs(Float x, Float y, Float* first, Float* second) {
    const Int low = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5,
                                      21, 6, 22, 7, 23);
    const Int high = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28,
                                       13, 29, 14, 30, 15, 31);
    *first = _mm512_permutex2var_ps(x, low, y);
    *second = _mm512_permutex2var_ps(x, high, y);
  }

  // `values[lanes[j]]` in lane `j` where `lanes[j] >= 0`, `into[j]`
  // elsewhere.
  static Float Permute(Float into, const int32_t* lanes, Float values) {
    const Int index = _mm512_loadu_si512(lanes);
    return _mm512_mask_permutexvar_ps(
        into, _mm512_cmpge_epi32_mask(index, ZeroInt()), index, values);
  }
};

#else  // AVX2

struct Lanes {
  static constexpr int kCount = 8;
  using Float = __m256;
  using Int = __m256i;
  // All bits set in a lane that is in the mask, none in one that is not.
  using Mask = __m256;

  static Float Set(float value) { return _mm256_set1_ps(value); }
  static Float Zero() { return _mm256_setzero_ps(); }
  static Float Add(Float a, Float b) { return _mm256_add_ps(a, b); }
  static Float Sub(Float a, Float b) { return _mm256_sub_ps(a, b); }
  static Float Mul(Float a, Float b) { return _mm256_mul_ps(a, b); }
  static Float Floor(Float a) { return _mm256_floor_ps(a); }

  static Mask Less(Float a, Float b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  static Mask Greater(Float a, Float b) {
    return _mm256_cmp_ps(a, b, _CMP_GT_OQ);
  }
  static Mask GreaterEqual(Float a, Float b) {
    return _mm256_cmp_ps(a, b, _CMP_GE_OQ);
  }
  static Mask IsNan(Float a) { return _mm256_cmp_ps(a, a, _CMP_UNORD_Q); }
  static Mask AllLanes() {
    return _mm256_castsi256_ps(_mm256_set1_epi32(-1));
  }
  static Mask NoLanes() { return _mm256_setzero_ps(); }
  static Mask And(Mask a, Mask b) { return _mm256_and_ps(a, b); }
  static Mask Or(Mask a, Mask b) { return _mm256_or_ps(a, b); }
  // The lanes of `b` that are not in `a`.
  static Mask AndNot(Mask a, Mask b) { return _mm256_andnot_ps(a, b); }
  // Bit `lane` set where the lane is.
  static int Bits(Mask mask) { return _mm256_movemask_ps(mask); }

  // `values` in the lanes of `mask`, +0 elsewhere.
  static Float Keep(Mask mask, Float values) {
    return _mm256_and_ps(mask, values);
  }
  // `values` outside the lanes of `mask`, +0 in them.
  static Float Clear(Mask mask, Float values) {
    return _mm256_andnot_ps(mask, values);
  }

  static Int SetInt(int32_t value) { return _mm256_set1_epi32(value); }
  static Int ZeroInt() { return _mm256_setzero_si256(); }
  static Int AddInt(Int a, Int b) { return _mm256_add_epi32(a, b); }
  static Int MulInt(Int a, Int b) { return _mm256_mullo_epi32(a, b); }
  static Int Truncate(Float a) { return _mm256_cvttps_epi32(a); }
  static void StoreInt(int32_t* to, Int values) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(to), values);
  }

  // `base[index]` in the lanes of `mask`, 0 elsewhere (nothing read).
  static Float Gather(const float* base, Int index, Mask mask) {
    return _mm256_mask_i32gather_ps(Zero(), base, index, mask, 4);
  }
  static Float Load(const float* from) { return _mm256_loadu_ps(from); }
  static void Store(float* to, Float values) { _mm256_storeu_ps(to, values); }
  // Lane `i` from `base + i * stride`.
  static Float LoadStrided(const float* base, int64_t stride) {
    const Int lanes = MulInt(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                             SetInt(static_cast<int32_t>(stride)));
    return _mm256_i32gather_ps(base, lanes, 4);
  }

  // From pairs `x0 y0 x1 y1 ...` in `first` and `second` (lanes 0-3 and
  // 4-7), `x` and `y` a lane each: a shuffle takes x0 x1 x4 x5 x2 x3 x6 x7
  // (y likewise), and a permutation of pairs puts them in order (a gather
  // per axis took twice as long on AMD Zen 4).
  static void SplitPairs(Float first, Float second, Float* x, Float* y) {
    *x = InOrder(_mm256_shuffle_ps(first, second, 0x88));
    *y = InOrder(_mm256_shuffle_ps(first, second, 0xDD));
  }
  // The inverse of `SplitPairs`: x0 y0 x1 y1 x4 y4 x5 y5 and x2 y2 x3 y3
  // x6 y6 x7 y7, then their halves in order.
  static void JoinPairs(Float x, Float y, Float* first, Float* second) {
    const Float low = _mm256_unpacklo_ps(x, y);
    const Float high = _mm256_unpackhi_ps(x, y);
    *first = _mm256_permute2f128_ps(low, high, 0x20);
    *second = _mm256_permute2f128_ps(low, high, 0x31);
  }

  // `values[lanes[j]]` in lane `j` where `lanes[j] >= 0`, `into[j]`
  // elsewhere.
  static Float Permute(Float into, const int32_t* lanes, Float values) {
    const Int index =
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lanes));
    const Mask takes =
        _mm256_castsi256_ps(_mm256_cmpgt_epi32(index, SetInt(-1)));
    return _mm256_blendv_ps(into, _mm256_permutevar8x32_ps(values, index),
                            takes);
  }

 private:
  static Float InOrder(Float pairs) {
    return _mm256_castpd_ps(
        _mm256_permute4x64_pd(_mm256_castps_pd(pairs), 0xD8));
  }
};

#endif  // __AVX512F__

// Lane `i` of `values[c]` to `to[i * kChannels + c]`: `kChannels` vector
// stores, and a permutation a vector and channel (`Interleaving`), where a
// store a lane took a third longer at three channels.
template <int kChannels>
void StoreInterleaved(float* to, const Lanes::Float (&values)[kChannels]) {
  static constexpr Interleaving<Lanes::kCount, kChannels> kTables;
  for (int v = 0; v < kChannels; ++v) {
    Lanes::Float out = values[0];
    if (kChannels > 1) {
      out = Lanes::Zero();
      for (int c = 0; c < kChannels; ++c) {
        out = Lanes::Permute(out, kTables.interleaved[v][c], values[c]);
      }
    }
    Lanes::Store(to + v * Lanes::kCount, out);
  }
}

// The inverse of `StoreInterleaved`: lane `i` of `values[c]` from
// `from[i * kChannels + c]`.
template <int kChannels>
void LoadInterleaved(const float* from, Lanes::Float (&values)[kChannels]) {
  static constexpr Interleaving<Lanes::kCount, kChannels> kTables;
  Lanes::Float vectors[kChannels];
  for (int v = 0; v < kChannels; ++v) {
    vectors[v] = Lanes::Load(from + v * Lanes::kCount);
  }
  for (int c = 0; c < kChannels; ++c) {
    values[c] = vectors[0];
    if (kChannels > 1) {
      values[c] = Lanes::Zero();
      for (int v = 0; v < kChannels; ++v) {
        values[c] = Lanes::Permute(values[c], kTables.split[c][v], vectors[v]);
      }
    }
  }
}

}  // namespace keras_stn

#endif  // __AVX2__

#endif  // KERAS_STN_OPS_KERNELS_VECTOR_LANES_H_

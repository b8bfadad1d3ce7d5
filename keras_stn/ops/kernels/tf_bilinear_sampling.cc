// TensorFlow CPU ops of the bilinear sampling kernel.
//
// Each takes float or double tensors and int attributes `padding` (0:
// "zeros", 1: "border") and `coordinates` (how the points give theirs: 0
// in pixels, 1 normalized, 2 normalized with `align_corners`):
// - KerasStnBilinearSample(images, points) -> outputs
// - KerasStnBilinearGradImages(images, points, upstream) -> grad_images
// - KerasStnBilinearGradPoints(images, points, upstream) -> grad_points
// - KerasStnBilinearGradBoth(images, points, upstream)
//   -> (grad_images, grad_points), in one pass
// with images `(batch, *spatial, channels)`, points `(batch, points, rank)`
// and outputs `(batch, points, channels)`. Work is split over TensorFlow's
// intra-op threads.

#include <cstdint>

#include "bilinear_sampling.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"

namespace keras_stn {
namespace {

using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using ::tensorflow::shape_inference::InferenceContext;

// The shape of a call; sets an error on `context` if the tensors disagree.
bool ShapeOf(OpKernelContext* context, const Tensor& images,
             const Tensor& points, int padding, int coordinates,
             SamplingShape* shape) {
  const int rank = images.dims() - 2;
  if (!((rank == 2 || rank == 3) && points.dims() == 3 &&
        points.dim_size(2) == rank &&
        points.dim_size(0) == images.dim_size(0))) {
    context->SetStatus(tensorflow::errors::InvalidArgument(
        "keras-stn's sampling kernel takes images (batch, *spatial, "
        "channels) with 2 or 3 spatial axes and points (batch, points, "
        "rank); received images ",
        images.shape().DebugString(), " and points ",
        points.shape().DebugString()));
    return false;
  }
  shape->rank = rank;
  shape->batch = images.dim_size(0);
  shape->channels = images.dim_size(rank + 1);
  shape->points = points.dim_size(1);
  for (int axis = 0; axis < rank; ++axis) {
    shape->sizes[axis] = images.dim_size(rank - axis);  // x, y[, z]
  }
  shape->padding = static_cast<Padding>(padding);
  shape->coordinates = static_cast<Coordinates>(coordinates);
  return true;
}

// Runs `work(begin, end)` over `[0, count)` on the intra-op threads.
template <typename Work>
void ParallelFor(OpKernelContext* context, int64_t count,
                 int64_t cost_per_unit, Work work) {
  auto* threads = context->device()->tensorflow_cpu_worker_threads();
  tensorflow::Shard(threads->num_threads, threads->workers, count,
                    cost_per_unit, work);
}

class SamplingOp : public OpKernel {
 public:
  explicit SamplingOp(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, context->GetAttr("padding", &padding_));
    OP_REQUIRES_OK(context, context->GetAttr("coordinates", &coordinates_));
  }

 protected:
  // The shape of the call; sets an error on `context` if the inputs
  // disagree.
  bool ShapeOfInputs(OpKernelContext* context, SamplingShape* shape) const {
    return ShapeOf(context, context->input(0), context->input(1), padding_,
                   coordinates_, shape);
  }

 private:
  int padding_ = 0;
  int coordinates_ = 0;
};

template <typename T>
class SampleOp : public SamplingOp {
 public:
  using SamplingOp::SamplingOp;

  void Compute(OpKernelContext* context) override {
    const Tensor& images = context->input(0);
    const Tensor& points = context->input(1);
    SamplingShape shape;
    if (!ShapeOfInputs(context, &shape)) return;
    Tensor* outputs = nullptr;
    OP_REQUIRES_OK(context,
                   context->allocate_output(
                       0, TensorShape({shape.batch, shape.points, shape.channels}),
                       &outputs));
    WithSampler<T>(shape, [&](const auto& sampler) {
      ParallelFor(context, shape.batch * shape.points, 8 * shape.channels,
                  [&](int64_t begin, int64_t end) {
                    sampler.Forward(images.flat<T>().data(),
                                    points.flat<T>().data(),
                                    outputs->flat<T>().data(), begin, end);
                  });
    });
  }
};

// The images' gradient (output 0) if `kImages`, and the points' (the next
// output) if `kPoints`.
template <typename T, bool kImages, bool kPoints>
class GradientOp : public SamplingOp {
 public:
  using SamplingOp::SamplingOp;

  void Compute(OpKernelContext* context) override {
    const Tensor& images = context->input(0);
    const Tensor& points = context->input(1);
    const Tensor& upstream = context->input(2);
    SamplingShape shape;
    if (!ShapeOfInputs(context, &shape)) return;
    T* grad_images = nullptr;
    T* grad_points = nullptr;
    if (kImages && !Allocate(context, 0, images, &grad_images)) return;
    if (kPoints && !Allocate(context, kImages, points, &grad_points)) return;
    WithSampler<T>(shape, [&](const auto& sampler) {
      const auto work = [&](int64_t begin, int64_t end) {
        sampler.template Backward<kImages, kPoints>(
            images.flat<T>().data(), points.flat<T>().data(),
            upstream.flat<T>().data(), grad_points, grad_images, begin, end);
      };
      if (!kImages) {
        ParallelFor(context, shape.batch * shape.points, 16 * shape.channels,
                    work);
      } else {
        // Whole examples per range: their images' gradients do not overlap.
        ParallelFor(context, shape.batch,
                    16 * shape.channels * shape.points,
                    [&](int64_t begin, int64_t end) {
                      work(begin * shape.points, end * shape.points);
                    });
      }
    });
  }

 private:
  // Allocates output `index` shaped like `like`; false on an error.
  static bool Allocate(OpKernelContext* context, int index, const Tensor& like,
                       T** data) {
    Tensor* output = nullptr;
    const auto status = context->allocate_output(index, like.shape(), &output);
    if (!status.ok()) {
      context->SetStatus(status);
      return false;
    }
    *data = output->flat<T>().data();
    return true;
  }
};

tensorflow::Status SampleShape(InferenceContext* context) {
  auto images = context->input(0);
  auto points = context->input(1);
  context->set_output(
      0, context->MakeShape({context->Dim(points, 0), context->Dim(points, 1),
                             context->Dim(images, -1)}));
  return tensorflow::OkStatus();
}

}  // namespace
}  // namespace keras_stn

// The inputs and attributes of every op.
#define KERAS_STN_SAMPLING_OP(name, ...)     \
  REGISTER_OP(name)                          \
      .Input("images: T")                    \
      .Input("points: T")                    \
      __VA_ARGS__                            \
      .Attr("T: {float, double}")            \
      .Attr("padding: int")                  \
      .Attr("coordinates: int = 0")

KERAS_STN_SAMPLING_OP("KerasStnBilinearSample", .Output("outputs: T"))
    .SetShapeFn(keras_stn::SampleShape);

KERAS_STN_SAMPLING_OP("KerasStnBilinearGradImages", .Input("upstream: T")
                                                        .Output("grad_images: T"))
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* context) {
      context->set_output(0, context->input(0));
      return tensorflow::OkStatus();
    });

KERAS_STN_SAMPLING_OP("KerasStnBilinearGradPoints", .Input("upstream: T")
                                                        .Output("grad_points: T"))
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* context) {
      context->set_output(0, context->input(1));
      return tensorflow::OkStatus();
    });

KERAS_STN_SAMPLING_OP("KerasStnBilinearGradBoth", .Input("upstream: T")
                                                      .Output("grad_images: T")
                                                      .Output("grad_points: T"))
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* context) {
      context->set_output(0, context->input(0));
      context->set_output(1, context->input(1));
      return tensorflow::OkStatus();
    });

#define KERAS_STN_REGISTER_KERNEL(name, T, ...)                    \
  REGISTER_KERNEL_BUILDER(                                         \
      Name(name).Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"), \
      __VA_ARGS__);

#define KERAS_STN_REGISTER_KERNELS(T)                                       \
  KERAS_STN_REGISTER_KERNEL("KerasStnBilinearSample", T,                    \
                            keras_stn::SampleOp<T>)                         \
  KERAS_STN_REGISTER_KERNEL("KerasStnBilinearGradImages", T,                \
                            keras_stn::GradientOp<T, true, false>)          \
  KERAS_STN_REGISTER_KERNEL("KerasStnBilinearGradPoints", T,                \
                            keras_stn::GradientOp<T, false, true>)          \
  KERAS_STN_REGISTER_KERNEL("KerasStnBilinearGradBoth", T,                  \
                            keras_stn::GradientOp<T, true, true>)

KERAS_STN_REGISTER_KERNELS(float)
KERAS_STN_REGISTER_KERNELS(double)

// TensorFlow CPU ops of the bilinear sampling kernel.
//
// Each takes float or double tensors and an int attribute `padding` (0:
// "zeros", 1: "border"):
// - KerasStnBilinearSample(images, points) -> outputs
// - KerasStnBilinearGradPoints(images, points, upstream) -> grad_points
// - KerasStnBilinearGradImages(images, points, upstream) -> grad_images
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
             const Tensor& points, int padding, SamplingShape* shape) {
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
  }

 protected:
  int padding_ = 0;
};

template <typename T>
class SampleOp : public SamplingOp {
 public:
  using SamplingOp::SamplingOp;

  void Compute(OpKernelContext* context) override {
    const Tensor& images = context->input(0);
    const Tensor& points = context->input(1);
    SamplingShape shape;
    if (!ShapeOf(context, images, points, padding_, &shape)) return;
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

// The gradient for the images (`kImages`) or for the points.
enum class Wrt { kImages, kPoints };

template <typename T, Wrt wrt>
class GradientOp : public SamplingOp {
 public:
  using SamplingOp::SamplingOp;

  void Compute(OpKernelContext* context) override {
    const Tensor& images = context->input(0);
    const Tensor& points = context->input(1);
    const Tensor& upstream = context->input(2);
    SamplingShape shape;
    if (!ShapeOf(context, images, points, padding_, &shape)) return;
    Tensor* gradient = nullptr;
    OP_REQUIRES_OK(context,
                   context->allocate_output(
                       0, wrt == Wrt::kImages ? images.shape() : points.shape(),
                       &gradient));
    T* grad_points = wrt == Wrt::kPoints ? gradient->flat<T>().data() : nullptr;
    T* grad_images = wrt == Wrt::kImages ? gradient->flat<T>().data() : nullptr;
    WithSampler<T>(shape, [&](const auto& sampler) {
      const auto work = [&](int64_t begin, int64_t end) {
        sampler.Backward(images.flat<T>().data(), points.flat<T>().data(),
                         upstream.flat<T>().data(), grad_points, grad_images,
                         begin, end);
      };
      if (wrt == Wrt::kPoints) {
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

REGISTER_OP("KerasStnBilinearSample")
    .Input("images: T")
    .Input("points: T")
    .Output("outputs: T")
    .Attr("T: {float, double}")
    .Attr("padding: int")
    .SetShapeFn(keras_stn::SampleShape);

REGISTER_OP("KerasStnBilinearGradImages")
    .Input("images: T")
    .Input("points: T")
    .Input("upstream: T")
    .Output("grad_images: T")
    .Attr("T: {float, double}")
    .Attr("padding: int")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* context) {
      context->set_output(0, context->input(0));
      return tensorflow::OkStatus();
    });

REGISTER_OP("KerasStnBilinearGradPoints")
    .Input("images: T")
    .Input("points: T")
    .Input("upstream: T")
    .Output("grad_points: T")
    .Attr("T: {float, double}")
    .Attr("padding: int")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* context) {
      context->set_output(0, context->input(1));
      return tensorflow::OkStatus();
    });

#define KERAS_STN_REGISTER_KERNELS(T)                                       \
  REGISTER_KERNEL_BUILDER(                                                  \
      Name("KerasStnBilinearSample").Device(tensorflow::DEVICE_CPU)        \
          .TypeConstraint<T>("T"),                                          \
      keras_stn::SampleOp<T>);                                              \
  REGISTER_KERNEL_BUILDER(                                                  \
      Name("KerasStnBilinearGradImages").Device(tensorflow::DEVICE_CPU)    \
          .TypeConstraint<T>("T"),                                          \
      keras_stn::GradientOp<T, keras_stn::Wrt::kImages>);                   \
  REGISTER_KERNEL_BUILDER(                                                  \
      Name("KerasStnBilinearGradPoints").Device(tensorflow::DEVICE_CPU)    \
          .TypeConstraint<T>("T"),                                          \
      keras_stn::GradientOp<T, keras_stn::Wrt::kPoints>);

KERAS_STN_REGISTER_KERNELS(float)
KERAS_STN_REGISTER_KERNELS(double)

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
// with images `(batch, *spatial, channels)`, outputs `(batch, points,
// channels)` and points either one tensor `(batch, points, rank)` or one
// tensor `(batch, points)` per axis (a list of `rank`), which spares a
// caller with per-axis coordinates stacking them and unstacking their
// gradients; `grad_points` is laid out as `points`. Work is split over
// TensorFlow's intra-op threads.

#include <cstdint>
#include <string>
#include <vector>

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
             const tensorflow::OpInputList& points, int padding,
             int coordinates, SamplingShape* shape) {
  const int rank = images.dims() - 2;
  const bool per_axis = points.size() > 1;
  bool valid = (rank == 2 || rank == 3) &&
               points.size() == (per_axis ? rank : 1);
  for (int axis = 0; valid && axis < points.size(); ++axis) {
    const Tensor& array = points[axis];
    valid = array.dims() == (per_axis ? 2 : 3) &&
            (per_axis || array.dim_size(2) == rank) &&
            array.dim_size(0) == images.dim_size(0) &&
            array.dim_size(1) == points[0].dim_size(1);
  }
  if (!valid) {
    std::string received;
    for (int axis = 0; axis < points.size(); ++axis) {
      received += " " + points[axis].shape().DebugString();
    }
    context->SetStatus(tensorflow::errors::InvalidArgument(
        "keras-stn's sampling kernel takes images (batch, *spatial, "
        "channels) with 2 or 3 spatial axes and points (batch, points, "
        "rank), or one (batch, points) per axis; received images ",
        images.shape().DebugString(), " and points", received));
    return false;
  }
  shape->rank = rank;
  shape->batch = images.dim_size(0);
  shape->channels = images.dim_size(rank + 1);
  shape->points = points[0].dim_size(1);
  for (int axis = 0; axis < rank; ++axis) {
    shape->sizes[axis] = images.dim_size(rank - axis);  // x, y[, z]
  }
  shape->padding = static_cast<Padding>(padding);
  shape->coordinates = static_cast<Coordinates>(coordinates);
  return true;
}

// The coordinates in `tensors` (points, or their gradients), laid out as
// `ShapeOf` checks.
template <typename T>
PointArrays<T> ArraysOf(const std::vector<T*>& tensors, int rank) {
  if (tensors.size() == 1) return PointArrays<T>::Interleaved(tensors[0], rank);
  PointArrays<T> arrays;
  for (int axis = 0; axis < rank; ++axis) arrays.axes[axis] = tensors[axis];
  return arrays;
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
  // The shape of the call and its points' tensors; sets an error on
  // `context` if the inputs disagree.
  bool ShapeOfInputs(OpKernelContext* context, SamplingShape* shape,
                     tensorflow::OpInputList* points) const {
    const auto status = context->input_list("points", points);
    if (!status.ok()) {
      context->SetStatus(status);
      return false;
    }
    return ShapeOf(context, context->input(0), *points, padding_, coordinates_,
                   shape);
  }

  // The points' coordinates in the tensors `ShapeOfInputs` checked.
  template <typename T>
  static PointArrays<const T> Points(const tensorflow::OpInputList& points,
                                     int rank) {
    std::vector<const T*> data;
    for (const Tensor& array : points) data.push_back(array.flat<T>().data());
    return ArraysOf(data, rank);
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
    SamplingShape shape;
    tensorflow::OpInputList inputs;
    if (!ShapeOfInputs(context, &shape, &inputs)) return;
    const PointArrays<const T> points = Points<T>(inputs, shape.rank);
    Tensor* outputs = nullptr;
    OP_REQUIRES_OK(context,
                   context->allocate_output(
                       0, TensorShape({shape.batch, shape.points, shape.channels}),
                       &outputs));
    WithSampler<T>(shape, [&](const auto& sampler) {
      ParallelFor(context, shape.batch * shape.points, 8 * shape.channels,
                  [&](int64_t begin, int64_t end) {
                    sampler.Forward(images.flat<T>().data(), points,
                                    outputs->flat<T>().data(), begin, end);
                  });
    });
  }
};

// The images' gradient (output `grad_images`) if `kImages`, and the points'
// (output list `grad_points`) if `kPoints`.
template <typename T, bool kImages, bool kPoints>
class GradientOp : public SamplingOp {
 public:
  using SamplingOp::SamplingOp;

  void Compute(OpKernelContext* context) override {
    const Tensor& images = context->input(0);
    const Tensor& upstream = context->input(context->num_inputs() - 1);
    SamplingShape shape;
    tensorflow::OpInputList inputs;
    if (!ShapeOfInputs(context, &shape, &inputs)) return;
    const PointArrays<const T> points = Points<T>(inputs, shape.rank);
    Tensor* grad_images = nullptr;
    if (kImages) {
      OP_REQUIRES_OK(context, context->allocate_output("grad_images",
                                                       images.shape(),
                                                       &grad_images));
    }
    PointArrays<T> grad_points;
    if (kPoints) {
      tensorflow::OpOutputList outputs;
      OP_REQUIRES_OK(context, context->output_list("grad_points", &outputs));
      std::vector<T*> data;
      for (int index = 0; index < inputs.size(); ++index) {
        Tensor* output = nullptr;
        OP_REQUIRES_OK(context,
                       outputs.allocate(index, inputs[index].shape(), &output));
        data.push_back(output->flat<T>().data());
      }
      grad_points = ArraysOf(data, shape.rank);
    }
    T* grad_images_data = kImages ? grad_images->flat<T>().data() : nullptr;
    WithSampler<T>(shape, [&](const auto& sampler) {
      const auto work = [&](int64_t begin, int64_t end) {
        sampler.template Backward<kImages, kPoints>(
            images.flat<T>().data(), points, upstream.flat<T>().data(),
            grad_points, grad_images_data, begin, end);
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
};

tensorflow::Status SampleShape(InferenceContext* context) {
  auto images = context->input(0);
  auto points = context->input(1);
  context->set_output(
      0, context->MakeShape({context->Dim(points, 0), context->Dim(points, 1),
                             context->Dim(images, -1)}));
  return tensorflow::OkStatus();
}

// Sets outputs `[first, first + N)` to the shapes of the points.
tensorflow::Status PointsShapes(InferenceContext* context, int first) {
  int count = 0;
  TF_RETURN_IF_ERROR(context->GetAttr("N", &count));
  for (int axis = 0; axis < count; ++axis) {
    context->set_output(first + axis, context->input(1 + axis));
  }
  return tensorflow::OkStatus();
}

}  // namespace
}  // namespace keras_stn

// The inputs and attributes of every op.
#define KERAS_STN_SAMPLING_OP(name, ...)     \
  REGISTER_OP(name)                          \
      .Input("images: T")                    \
      .Input("points: N * T")                \
      __VA_ARGS__                            \
      .Attr("T: {float, double}")            \
      .Attr("N: int >= 1")                   \
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

KERAS_STN_SAMPLING_OP("KerasStnBilinearGradPoints",
                      .Input("upstream: T")
                          .Output("grad_points: N * T"))
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* context) {
      return keras_stn::PointsShapes(context, 0);
    });

KERAS_STN_SAMPLING_OP("KerasStnBilinearGradBoth",
                      .Input("upstream: T")
                          .Output("grad_images: T")
                          .Output("grad_points: N * T"))
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* context) {
      context->set_output(0, context->input(0));
      return keras_stn::PointsShapes(context, 1);
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

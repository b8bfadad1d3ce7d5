"""What the torch paths may do with their tensors here, beyond their shapes.

PyTorch's `grid_sample` path (`pytorch_grid_sample`) skips the rule for NaN
and infinite points when one read of the points' extremes shows that none
needs it, and the C++ kernel (`cpp_kernel.torch_ctypes`) hands the tensors'
buffers to C. Neither may in these cases, which this module tells apart
with public APIs only:

- a tracer records the model (`torch.compile`, `torch.export`,
  `torch.jit.trace`): it sees shapes, not values, so a branch on values
  would be frozen into its graph (`readable`);
- the tensors live on another device than the CPU (a read waits for it);
- a `torch.func` transform (`vmap`, `grad`, `jacrev`, `jacfwd`) wraps
  them, or forward-mode AD (`torch.autograd.forward_ad`) gives them
  tangents (`transformed`): the wrappers have no storage (`data_ptr`
  raises), `vmap` refuses to read a value, and the kernel would drop the
  tangents. PyTorch's `grid_sample` has no forward-mode derivative either
  (`jacfwd`, `torch.func.hessian`), so such calls take the generic
  sampler, which every transform goes through.
"""

from keras_stn.typing import Tensor


def records(*tensors: Tensor) -> bool:
    """Whether autograd records what is computed from these torch tensors.

    Args:
        *tensors: torch tensors.

    Returns:
        `True` where gradients are enabled and one of them requires them.
    """
    import torch

    return torch.is_grad_enabled() and any(
        tensor.requires_grad for tensor in tensors
    )


def readable(*tensors: Tensor) -> bool:
    """Whether these torch tensors' values and buffers may be read now.

    For tensors that no transform reaches (`transformed` is false), as on
    every path but the generic sampler's (`dispatch.choose_path` sends the
    others there); this does not look again.

    Args:
        *tensors: torch tensors.

    Returns:
        `True` where no tracer records the call and every tensor is in the
        CPU's memory.
    """
    import torch

    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return False
    return all(tensor.device.type == "cpu" for tensor in tensors)


def transformed(*tensors: Tensor) -> bool:
    """Whether a transform of the function reaches these torch tensors.

    Args:
        *tensors: torch tensors.

    Returns:
        `True` where one of them has no storage of its own, as the
        wrappers of `torch.func.vmap`, `grad`, `jacrev` and `jacfwd`, or
        carries a forward-mode tangent (`torch.autograd.forward_ad`);
        `False` while `torch.compile` traces, whose fake tensors have no
        storage either.
    """
    import torch
    from torch.autograd import forward_ad

    if torch.compiler.is_compiling():
        return False
    return not all(
        _has_storage(tensor) and forward_ad.unpack_dual(tensor).tangent is None
        for tensor in tensors
    )


def _has_storage(tensor):
    """Whether `tensor` owns memory (`data_ptr` raises where not)."""
    try:
        tensor.data_ptr()
    except RuntimeError:
        return False
    return True

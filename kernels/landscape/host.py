"""What the Triton and the CUDA host code of the landscape kernels check alike, before any launch."""
import torch

from course.checks import check_same_device


def check_forward_only(where: str, backend: str, **tensors):
    """The kernels compute the losses, not their gradients: refuse, rather than return a loss silently
    cut from autograd, an input that asks for a gradient (under torch.no_grad() none does)."""
    if not torch.is_grad_enabled():
        return
    for name, t in tensors.items():
        if t.requires_grad:
            raise ValueError(f"{where} ({backend} backend): forward only; `{name}` requires grad (use "
                             "backend='reference', or detach it, or run under torch.no_grad()).")


def check_grid_kernel_inputs(where: str, backend: str, x, labels, theta, d1, d2, coords):
    """Every tensor on one device, and none asking for a gradient."""
    check_same_device(where, x=x, labels=labels, theta=theta, d1=d1, d2=d2, coords=coords)
    check_forward_only(where, backend, x=x, theta=theta, d1=d1, d2=d2, coords=coords)

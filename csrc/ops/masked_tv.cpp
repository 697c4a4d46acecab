// Schema of inpaint_fast::masked_tv: masked anisotropic total variation, value and gradient in one
// stencil pass.
//
// masked_tv(img, mask, mask_is_hole, region, p, normalize, eps, compute_grad) -> (loss, grad_img)
//   img (N, C, H, W) float16/bfloat16/float32/float64. mask: None or (N|1, C|1, H, W), bool/uint8
//   (binary: any non-zero value is 1) or img's dtype (a soft weight in [0, 1], checked: a ValueError on
//   CPU, a device-side assert on a GPU), broadcast over N and C without being materialised. mask_is_hole: the tensor is the hole indicator h (known m = 1 - h).
//   region r: 0 'all' (r = 1; mask ignored, may be None), 1 'known' (r = m), 2 'hole' (r = 1 - m),
//   3 'hole_dilated' (r = max of 1 - m over the 3x3 neighbourhood inside the image, the PConv
//   paper's region P = inpaint_fast.reference.tv.dilate(1 - m)).
//   Pair weights: wv(i,j) = r(i,j) r(i+1,j) (vertical pairs), wh(i,j) = r(i,j) r(i,j+1)
//   (horizontal pairs); error e = |d| (p = 1) or d^2 (p = 2) of the pair's difference d.
//   normalize 0 ('sum'): Sv + Sh with Sv = sum wv e_v, Sh = sum wh e_h; 1 ('mask'):
//   Sv / max(sum wv, eps) + Sh / max(sum wh, eps), the areas counted over the broadcast (N, C, ...)
//   shape; 2 ('all'): Sv / (N C (H-1) W) + Sh / (N C H (W-1)). A direction without pairs
//   (H = 1 or W = 1) contributes 0.
//   loss: 0-dim, float32 (float64 for float64 img). grad_img: d loss / d img, img's shape and dtype
//   (float32 for float16 img), when compute_grad (else an empty (0,) tensor); channels_last when img is channels_last with 2 to 7
//   channels and a mask shared by the channels (read in place), NCHW-contiguous otherwise.
//   sign(0) = 0 for p = 1.
//   The mask is never differentiated.
//
// Kernel: ops/cpu/masked_tv_kernel.cpp (CPU). Fake kernel, autograd and the Python entry:
// inpaint_fast/ops/masked_tv.py.

#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(inpaint_fast, m) {
  m.set_python_module("inpaint_fast.ops.masked_tv");
  m.def("masked_tv(Tensor img, Tensor? mask, bool mask_is_hole, int region, int p, int normalize, "
        "float eps, bool compute_grad) -> (Tensor, Tensor)");
}

"""PixelCNN++'s discretized logistic mixture likelihood, against a softmax over the pixel levels.

Salimans, Karpathy, Chen and Kingma 2017, "PixelCNN++: Improving the PixelCNN with Discretized
Logistic Mixture Likelihood and Other Modifications" (ICLR 2017, arXiv:1701.05517), section 2.1.

An autoregressive image model factorises p(x) = prod_i p(x_i | x_<i) over the pixels in raster order;
masked convolutions (van den Oord et al. 2016) let one forward pass give every conditional. The
original PixelCNN outputs a 256-way softmax per pixel, which must learn from data that level 128 is
close to level 127. PixelCNN++ instead outputs a mixture of K logistics on the continuous scale and
gives each integer level the mass of its bin (eq. 2):

    P(x | pi, mu, s) = sum_k pi_k [sigma((x + 1/2 - mu_k) / s_k) - sigma((x - 1/2 - mu_k) / s_k)],

with the lowest level's lower edge at -inf and the highest level's upper edge at +inf, so that the
masses of all levels sum to one. Levels are rescaled to [-1, 1] (a bin is 2 / (L - 1) wide). Where a
bin's mass is too small to subtract in floating point the log density at its centre times its width
stands in, as in the authors' code. The paper's other changes (whole-pixel conditioning for RGB,
downsampling, short-cuts, dropout) are left out: the toy images have one channel and 8 x 8 pixels.

The claim: the same masked-convolution trunk, trained for the same steps on the same images, reaches a
lower test NLL in bits per pixel with the logistic mixture head (3 K outputs a pixel) than with a
softmax head over the L levels; an independent per-pixel mixture says what the context adds.
"""
import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from course.checks import check_int, check_index_range, check_tensor
from course.claims import REPRODUCTION, Claim
from course.data import glyph_images
from course.train import fit, seeded

LEVELS = 256  # 8-bit pixels, as in the paper
LOW, HIGH = -1.0, 2.0  # the glyph images' range mapped to levels 0 and LEVELS - 1
COMPONENTS = 3  # K logistics a pixel
CHANNELS, TRAIN_IMAGES, TEST_IMAGES = 16, 512, 256
STEPS, BATCH, LR = 100, 16, 0.01
LOG_SCALE_MIN = -7.0  # the authors' floor on log s


def quantize(images, levels: int = LEVELS):
    """Images [N, H, W] on [LOW, HIGH] as integer levels 0..levels-1 (clamped). -> int64 [N, H, W]"""
    check_tensor("pixelcnn_pp.quantize", "images", images, ndim=3, kind="float")
    check_int("pixelcnn_pp.quantize", "levels", levels, low=2)
    scaled = (images - LOW) / (HIGH - LOW) * (levels - 1)
    return scaled.round().clamp(0, levels - 1).long()


def check_mixture_args(where: str, x, params, levels: int):
    """Integer levels x [N, ...] in [0, levels) and params [N, 3 K, ...] around them."""
    check_tensor(where, "x", x, kind="int")
    check_tensor(where, "params", params, kind="float")
    check_int(where, "levels", levels, low=2)
    if params.dim() != x.dim() + 1 or params.shape[0] != x.shape[0] or params.shape[2:] != x.shape[1:] \
            or params.shape[1] % 3:
        raise ValueError(f"{where}: `params` must be of shape [N, 3 K, ...] around x {tuple(x.shape)} "
                         f"(K mixture logits, K means, K log-scales); got {tuple(params.shape)}.")
    check_index_range(where, "x", x, levels, "levels")


def discretized_logistic_mixture_log_prob(x, params, levels: int = LEVELS):
    """log P(x) of eq. 2 (PixelCNN++, sec. 2.1) for integer levels x [N, ...] under a mixture whose
    params [N, 3 K, ...] hold K logits, K means and K log-scales on [-1, 1]. -> [N, ...]"""
    check_mixture_args("pixelcnn_pp.discretized_logistic_mixture_log_prob", x, params, levels)
    logits, means, log_scales = params.chunk(3, dim=1)  # [N, K, ...] each
    log_scales = log_scales.clamp(min=LOG_SCALE_MIN)
    centre = (2.0 * x.to(params.dtype) / (levels - 1) - 1.0).unsqueeze(1)  # [N, 1, ...] on [-1, 1]
    half = 1.0 / (levels - 1)
    inv_s = torch.exp(-log_scales)
    upper, lower = inv_s * (centre - means + half), inv_s * (centre - means - half)
    log_cdf_upper = upper - F.softplus(upper)  # log sigma(upper): the lowest level's mass
    log_sf_lower = -F.softplus(lower)  # log (1 - sigma(lower)): the highest level's mass
    mass = torch.sigmoid(upper) - torch.sigmoid(lower)
    mid = inv_s * (centre - means)
    log_pdf_width = mid - log_scales - 2.0 * F.softplus(mid) + math.log(2 * half)  # density x width
    log_mass = torch.where(mass > 1e-5, mass.clamp(min=1e-12).log(), log_pdf_width)
    level = x.unsqueeze(1).expand_as(means)
    log_bin = torch.where(level == 0, log_cdf_upper, torch.where(level == levels - 1, log_sf_lower, log_mass))
    return torch.logsumexp(log_bin + logits.log_softmax(dim=1), dim=1)


def bits_per_dim(log_prob) -> float:
    """The mean negative log-likelihood per pixel in bits, from log-probabilities in nats."""
    return -log_prob.mean().item() / math.log(2)


class MaskedConv2d(nn.Conv2d):
    """A convolution that sees only the pixels before the centre in raster order (mask 'A') or also
    the centre (mask 'B') (van den Oord et al. 2016, PixelCNN's fig. 2). [N, C, H, W] -> [N, C', H, W]"""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, mask: str):
        super().__init__(in_channels, out_channels, kernel, padding=kernel // 2)
        if mask not in ("A", "B"):
            raise ValueError(f"MaskedConv2d: `mask` must be 'A' or 'B'; got {mask!r}.")
        m = torch.ones(kernel, kernel)
        m[kernel // 2, kernel // 2 + (mask == "B"):] = 0
        m[kernel // 2 + 1:] = 0
        self.register_buffer("mask", m)

    def forward(self, x):
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class PixelCNN(nn.Module):
    """A mask-A 5x5 convolution, residual mask-B 3x3 blocks, and a 1x1 head with `outputs` channels
    per pixel. levels [N, H, W] -> [N, outputs, H, W]"""

    def __init__(self, outputs: int, channels: int = CHANNELS, blocks: int = 1, levels: int = LEVELS):
        super().__init__()
        self.levels = levels
        self.first = MaskedConv2d(1, channels, 5, "A")
        self.blocks = nn.ModuleList(MaskedConv2d(channels, channels, 3, "B") for _ in range(blocks))
        self.head = nn.Conv2d(channels, outputs, 1)

    def forward(self, x):
        h = F.elu(self.first((2.0 * x.float() / (self.levels - 1) - 1.0).unsqueeze(1)))
        for block in self.blocks:
            h = h + F.elu(block(h))
        return self.head(h)


def softmax_log_prob(x, logits):
    """log softmax(logits)[x], the original PixelCNN's likelihood. x [N, H, W], logits [N, L, H, W]
    -> [N, H, W]"""
    where = "pixelcnn_pp.softmax_log_prob"
    check_tensor(where, "x", x, kind="int")
    check_tensor(where, "logits", logits, kind="float")
    if logits.dim() != x.dim() + 1 or logits.shape[0] != x.shape[0] or logits.shape[2:] != x.shape[1:]:
        raise ValueError(f"{where}: `logits` must be of shape [N, L, ...] around x {tuple(x.shape)}; got "
                         f"{tuple(logits.shape)}.")
    check_index_range(where, "x", x, logits.shape[1], "L")
    return logits.log_softmax(dim=1).gather(1, x.unsqueeze(1)).squeeze(1)


def sample_logistic_mixture(params, levels: int = LEVELS, generator=None):
    """One level per position from eq. 2's mixture: a component by its weight, a logistic draw
    mu + s (log u - log(1 - u)), rounded to the nearest level. params [N, 3 K, ...] -> int64 [N, ...]"""
    check_tensor("pixelcnn_pp.sample_logistic_mixture", "params", params, kind="float")
    check_int("pixelcnn_pp.sample_logistic_mixture", "levels", levels, low=2)
    if params.dim() < 2 or params.shape[1] % 3:
        raise ValueError("pixelcnn_pp.sample_logistic_mixture: `params` must be of shape [N, 3 K, ...]; "
                         f"got {tuple(params.shape)}.")
    logits, means, log_scales = params.chunk(3, dim=1)
    probs = logits.softmax(dim=1).movedim(1, -1)  # [N, ..., K]
    k = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=generator).view(*probs.shape[:-1])
    mean, log_s = (t.gather(1, k.unsqueeze(1)).squeeze(1) for t in (means, log_scales))
    u = torch.rand(k.shape, generator=generator, dtype=params.dtype).clamp(1e-5, 1 - 1e-5)
    value = mean + log_s.clamp(min=LOG_SCALE_MIN).exp() * (u.log() - (-u).log1p())
    return ((value + 1) / 2 * (levels - 1)).round().clamp(0, levels - 1).long()


def sample_images(model: "PixelCNN", n: int, size: int = 8, seed: int = 0):
    """n images drawn pixel by pixel in raster order from a PixelCNN with the logistic mixture head:
    one forward pass a pixel. -> levels [n, size, size]"""
    check_int("pixelcnn_pp.sample_images", "n", n, low=0)
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, size, size, dtype=torch.long)
    with torch.no_grad():
        for row in range(size):
            for col in range(size):
                params = model(x)[:, :, row, col]  # [n, 3 K]
                x[:, row, col] = sample_logistic_mixture(params, model.levels, g)
    return x


@functools.lru_cache(maxsize=4)
def problem(seed: int):
    """Training and test glyph images of the seed, as 8-bit levels: -> train [512, 8, 8], test [256, 8, 8]"""
    train = quantize(glyph_images(TRAIN_IMAGES, seed=seed)[0])
    test = quantize(glyph_images(TEST_IMAGES, seed=10_000 + seed)[0])
    return train, test


def train_model(head: str, train, seed: int, steps: int = STEPS):
    """The PixelCNN trunk with a `head` of 'logistic' (3 K outputs) or 'softmax' (LEVELS outputs),
    trained by Adam on random batches of `train` [N, H, W]. -> (model, log_prob(x, output))"""
    if head not in ("logistic", "softmax"):
        raise ValueError(f"pixelcnn_pp.train_model: `head` must be 'logistic' or 'softmax'; got {head!r}.")
    log_prob = discretized_logistic_mixture_log_prob if head == "logistic" else softmax_log_prob
    with seeded(seed):
        model = PixelCNN(3 * COMPONENTS if head == "logistic" else LEVELS)
    g = torch.Generator().manual_seed(seed)

    def loss():
        x = train[torch.randint(len(train), (BATCH,), generator=g)]
        return -log_prob(x, model(x)).mean()

    fit(model.parameters(), loss, steps, LR, seed=seed, desc=f"PixelCNN, {head} head")
    return model, log_prob


def independent_log_prob(train, test, seed: int, steps: int = STEPS):
    """A logistic mixture per pixel that sees no other pixel, trained like the others: the test
    log-probabilities [N, H, W]."""
    with seeded(seed):
        params = nn.Parameter(0.1 * torch.randn(1, 3 * COMPONENTS, *train.shape[1:]))
    g = torch.Generator().manual_seed(seed)

    def loss():
        x = train[torch.randint(len(train), (BATCH,), generator=g)]
        return -discretized_logistic_mixture_log_prob(x, params.expand(len(x), -1, -1, -1)).mean()

    fit([params], loss, steps, LR, seed=seed, desc="independent pixels")
    with torch.no_grad():
        return discretized_logistic_mixture_log_prob(test, params.expand(len(test), -1, -1, -1))


def pixelcnn_pp_experiment(seed: int) -> dict:
    """Test bits per pixel of the logistic mixture head, the softmax head and independent pixels."""
    train, test = problem(seed)
    m = {}
    for head in ("logistic", "softmax"):
        model, log_prob = train_model(head, train, seed)
        with torch.no_grad():
            m[f"{head}_bpd"] = bits_per_dim(log_prob(test, model(test)))
    m["independent_bpd"] = bits_per_dim(independent_log_prob(train, test, seed))
    m["softmax_minus_logistic"] = m["softmax_bpd"] - m["logistic_bpd"]
    m["independent_minus_logistic"] = m["independent_bpd"] - m["logistic_bpd"]
    return m


CLAIM = Claim(
    paper="Salimans et al. 2017 (PixelCNN++)",
    citation="PixelCNN++: Improving the PixelCNN with Discretized Logistic Mixture Likelihood and "
             "Other Modifications (ICLR 2017, arXiv:1701.05517), section 2.1, eq. 2",
    statement="a discretized logistic mixture likelihood trains faster than a 256-way softmax over the "
              "pixel levels: the same network reaches a better log-likelihood",
    kind=REPRODUCTION,
    experiment=pixelcnn_pp_experiment,
    thresholds=("softmax_minus_logistic >= 0.05", "independent_minus_logistic >= 0.1"),
    held_on=(),
    note="Not reproduced: after 100 steps the logistic mixture head reaches 7.08-7.13 bits per pixel on "
         "the test glyphs and the 256-way softmax 7.10-7.11, within 0.03 of each other either way round "
         "on seeds 0, 1, 2, short of the 0.05 asked. The same held at 150 steps, and on glyphs of random "
         "brightness, tried on a development seed before these runs. With one 1x1 head shared by the 64 "
         "pixels, the softmax sees 16 x 64 pixel values a step and learns this toy's two pixel shapes "
         "(background and stroke, each blurred by noise of std 0.3) as fast as the mixture does; the "
         "paper's gain (a 256-way softmax's sparse gradients early in training, and its memory) is at "
         "CIFAR-10's scale. The context does matter: independent per-pixel mixtures are 0.58-0.63 bits "
         "per pixel worse on every seed.",
    summary=lambda m: (
        f"8x8 glyphs at {LEVELS} levels, the same masked-convolution PixelCNN after {STEPS} steps: test "
        f"{m['logistic_bpd']:.2f} bits per pixel with a mixture of {COMPONENTS} discretized logistics, "
        f"{m['softmax_bpd']:.2f} with a {LEVELS}-way softmax ({m['softmax_minus_logistic']:.2f} worse); "
        f"independent per-pixel mixtures {m['independent_bpd']:.2f}"),
)

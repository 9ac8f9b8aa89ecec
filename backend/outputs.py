"""The files a finished job leaves: report, MATLAB data, CSV, plots, the student model, and one ZIP of it all;
then digests.json, the sha256 of each (backend.cachefiles.seal), which the API checks before it serves a file."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

from backend.cachefiles import seal
from backend.data.datasets import IMAGENET_MEAN, IMAGENET_STD
from backend.metrics.matlab import matlab_data, metrics_csv
from backend.metrics.plots import PLOT_KINDS, render_plot
from backend.metrics.report import report_to_json
from backend.models.export import export_text_model, export_vision_model

BUNDLE_README = """KD-Pruning Simulator: compressed {display} (job {job_id})

Files
  report.json          the full measured report (six sections + metadata)
  matlab_metrics.json  {{"matlab_data": ...}} for MATLAB's jsondecode
  metrics.csv          teacher vs student figures, one metric a row
  plots/*.png          charts of the report
  model/               the compressed student
{onnx_files}
Loading the student without this project's code
{loading}
{onnx_loading}"""

TEXT_LOADING = """  from transformers import AutoTokenizer, {cls}
  tok = AutoTokenizer.from_pretrained("model")
  model = {cls}.from_pretrained("model").eval()
{usage}"""
CLASSIFIER_USAGE = """  enc = tok(["the movie was not good."], padding="max_length", truncation=True, max_length={max_length},
            return_tensors="pt")
  label = model.config.id2label[int(model(**enc).logits.argmax(-1))]"""
TEXT2TEXT_USAGE = """  enc = tok(["the movie was not good."], padding="max_length", truncation=True, max_length={max_length},
            return_tensors="pt")
  word = tok.batch_decode(model.generate(**enc, max_new_tokens=8), skip_special_tokens=True)[0]
  # the answer is a class name: {classes}"""
HEADS_REMOVED = """  Structured pruning removed attention heads from this student, and transformers' configs describe one head
  count for every block: model/ holds its weights (safetensors) and config, but from_pretrained cannot rebuild
  the narrower attention. Run the ONNX student below (the same weights, measured in the report)."""
VISION_LOADING = """  import torch
  program = torch.export.load("model/model.pt2")      # architecture and weights, no project code
  logits = program.module()(images)                   # images: float32 [N, 3, {size}, {size}]
  # preprocessing (model/preprocessing.json): scale pixels to [0, 1], resize to {size}x{size},
  # normalise with mean {mean} and std {std}; class names in preprocessing.json.
  # model/model.safetensors holds the same weights as plain tensors."""


ONNX_FILES = """  onnx/student/        the student as ONNX (opset 18, dynamic batch axis), for onnxruntime alone
{int8_line}"""
INT8_LINE = "  onnx/student_int8/   the student with int8 weights (onnxruntime quantize_dynamic), same inputs\n"
ORT_HEADER = """
Running the ONNX student with onnxruntime alone (pip install onnxruntime numpy)
  import numpy as np, onnxruntime as ort
  options = ort.SessionOptions(); options.intra_op_num_threads = 2
"""
ORT_IMAGE = (
    ORT_HEADER
    + """  session = ort.InferenceSession("onnx/student/model.onnx", options, providers=["CPUExecutionProvider"])
  images = np.zeros((1, 3, {size}, {size}), dtype=np.float32)   # preprocessed as above
  logits = session.run(None, {{"pixel_values": images}})[0]       # [batch, classes]
"""
)
ORT_CLASSIFIER = (
    ORT_HEADER
    + """  session = ort.InferenceSession("onnx/student/model.onnx", options, providers=["CPUExecutionProvider"])
  # input_ids / attention_mask: int64 [batch, {max_length}], from model/'s tokenizer (or any WordPiece code)
  logits = session.run(None, {{"input_ids": input_ids, "attention_mask": attention_mask}})[0]
"""
)
ORT_TEXT2TEXT = (
    ORT_HEADER
    + """  encoder = ort.InferenceSession("onnx/student/model_encoder.onnx", options, providers=["CPUExecutionProvider"])
  decoder = ort.InferenceSession("onnx/student/model_decoder.onnx", options, providers=["CPUExecutionProvider"])
  # input_ids / attention_mask: int64 [batch, {max_length}] from model/'s tokenizer
  names = [o.name for o in encoder.get_outputs()]     # encoder_hidden_states, then per decoder layer
  encoded = encoder.run(None, {{"input_ids": input_ids, "attention_mask": attention_mask}})
  feed = {{n: v for n, v in zip(names, encoded) if n.startswith("past_")}}   # its cross-attention keys/values
  for arg in decoder.get_inputs():                      # self-attention past [batch, heads, 0, d_kv] at first
      if ".decoder." in arg.name:
          feed[arg.name] = np.zeros((len(input_ids), arg.shape[1], 0, arg.shape[3]), dtype=np.float32)
  present = [o.name for o in decoder.get_outputs()][1:]
  out = np.full((len(input_ids), 1), {start}, dtype=np.int64)   # decoder start token
  for _ in range({steps}):                                       # greedy, one new token a step
      logits, *kv = decoder.run(None, {{**feed, "decoder_input_ids": out[:, -1:],
                                        "attention_mask": attention_mask}})
      feed.update({{n.replace("present.", "past_key_values."): v for n, v in zip(present, kv)}})  # cache grows
      token = logits[:, -1].argmax(-1)
      token[(out == {eos}).any(axis=1)] = {pad}                     # a finished row gets padding
      out = np.concatenate([out, token[:, None]], axis=1)
      if (out == {eos}).any(axis=1).all(): break                 # every row has its end token ({eos})
  # tok.batch_decode(out, skip_special_tokens=True) gives the class word
"""
)


def _atomic_write(path: Path, data: bytes | str) -> None:
    """Write then rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:  # a full disk: no half file stays behind
        tmp.unlink(missing_ok=True)
        raise


def write_outputs(report: dict, state: Any, out_dir: Path) -> dict[str, str]:
    """Write every artifact of a finished job; returns name -> path relative to out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    artifacts = {"report": "report.json", "matlab": "matlab_metrics.json", "csv": "metrics.csv"}
    _atomic_write(out_dir / "report.json", report_to_json(report))
    _atomic_write(out_dir / "matlab_metrics.json", json.dumps({"matlab_data": matlab_data(report)}, allow_nan=False))
    _atomic_write(out_dir / "metrics.csv", metrics_csv(report))
    for kind in PLOT_KINDS:
        rel = f"plots/{kind}.png"
        _atomic_write(out_dir / rel, render_plot(report, kind))
        artifacts[f"plots/{kind}"] = rel
    artifacts["model"] = "model"
    if (out_dir / "onnx" / "student").is_dir():  # written while measuring in ONNX Runtime (teacher not shipped)
        artifacts["onnx"] = "onnx"
    _atomic_write(out_dir / "README.txt", _export_model(state, out_dir / "model", report))
    artifacts["readme"] = "README.txt"
    artifacts["bundle"] = "bundle.zip"
    _zip_bundle(out_dir, [p for p in artifacts.values() if p != "bundle.zip"])
    seal(out_dir)  # last: the sha256 of every file, checked when an artifact is served
    return artifacts


def _export_model(state: Any, folder: Path, report: dict) -> str:
    """Export the student; returns the bundle README text that says how to load it."""
    spec = state.spec
    if spec.family == "text":
        export_text_model(state.student, state.tokenizer, folder)
        if spec.task == "encoder_decoder":
            usage = TEXT2TEXT_USAGE.format(max_length=state.max_length, classes=", ".join(state.raw.class_names))
            loading = TEXT_LOADING.format(cls="AutoModelForSeq2SeqLM", usage=usage)
        else:
            usage = CLASSIFIER_USAGE.format(max_length=state.max_length)
            loading = TEXT_LOADING.format(cls="AutoModelForSequenceClassification", usage=usage)
        if _heads_removed(report):
            loading = HEADS_REMOVED
    else:
        export_vision_model(state.student, folder, state.image_size, state.raw.class_names)
        loading = VISION_LOADING.format(size=state.image_size, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    onnx_files, onnx_loading = _onnx_readme(state, folder.parent / "onnx")
    return BUNDLE_README.format(
        display=spec.display_name,
        job_id=report["metadata"].get("job_id"),
        loading=loading,
        onnx_files=onnx_files,
        onnx_loading=onnx_loading,
    )


def _heads_removed(report: dict) -> bool:
    """Whether structured pruning left fewer attention heads than the model's config describes."""
    structure = ((report.get("pruning_analysis") or {}).get("method_details") or {}).get("structure") or {}
    return structure.get("heads_per_block_after", []) != structure.get("heads_per_block_before", [])


def _onnx_readme(state: Any, onnx_dir: Path) -> tuple[str, str]:
    """The bundle README's lines on the ONNX files, and how to run them with onnxruntime alone ('' when absent)."""
    if not (onnx_dir / "student").is_dir():
        return "", ""
    files = ONNX_FILES.format(int8_line=INT8_LINE if (onnx_dir / "student_int8").is_dir() else "")
    kind = state.spec.task
    if kind == "image_classifier":
        return files, ORT_IMAGE.format(size=state.image_size)
    if kind == "sequence_classifier":
        return files, ORT_CLASSIFIER.format(max_length=state.max_length)
    config = state.student.config
    return files, ORT_TEXT2TEXT.format(
        max_length=state.max_length,
        start=config.decoder_start_token_id,
        eos=config.eos_token_id,
        pad=config.pad_token_id,
        steps=state.adapter.max_new_tokens,
    )


def _zip_bundle(out_dir: Path, members: list[str]) -> None:
    """bundle.zip of the listed files and folders, written atomically.

    Deflate level 1: a ResNet-18 bundle (24 MB, mostly weights) takes 1.3 s instead of 2.5 s at the default level 6,
    for 4% more bytes."""
    tmp = out_dir / "bundle.zip.tmp"
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
            for member in members:
                path = out_dir / member
                files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
                for f in files:
                    zf.write(f, f.relative_to(out_dir).as_posix())
        os.replace(tmp, out_dir / "bundle.zip")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

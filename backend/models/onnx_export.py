"""ONNX export of every registered model, and running the exported files in ONNX Runtime.

What each model exports as follows from its task in the registry (`ModelSpec.task`):
  "image_classifier"         one file: pixel_values -> logits
  "sequence_classifier"      one file: input_ids, attention_mask -> logits
  "encoder_decoder"          two files (T5): an encoder (input_ids, attention_mask -> hidden states) and a
                             decoder without past key values (decoder_input_ids, encoder_hidden_states,
                             attention_mask -> logits), run by a greedy loop. The answers here are class words of
                             2-3 tokens, so re-running the decoder over the short prefix costs little and keeps
                             the file free of transformers' cache classes, which the exporters do not trace.
The batch axis (and the text length / decoder length) is dynamic. Nothing here needs the network.

Exporter: the dynamo exporter works for the CNNs and DistilBERT (and matches PyTorch as closely), but took
11-28 s per model on the 2-core machine against 0.3-1.2 s for the TorchScript exporter; a job exports two to
three models, so the registry's `ModelSpec.onnx_dynamo` is False by default and a model may turn it on. T5 fails
in the dynamo exporter's decomposition step and always uses TorchScript.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from backend.models.registry import get_model_spec

OPSET = 18
ONNX_KINDS = ("image_classifier", "sequence_classifier", "encoder_decoder")


class _Logits(nn.Module):
    """A classifier whose forward returns the logits tensor (transformers returns an output object)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


class _T5Encoder(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.encoder = model.encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


class _T5Decoder(nn.Module):
    """The decoder stack and LM head as T5ForConditionalGeneration.forward runs them, without a cache."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.decoder, self.lm_head = model.decoder, model.lm_head
        self.scale = model.model_dim**-0.5 if getattr(model.config, "scale_decoder_outputs", False) else None

    def forward(
        self, decoder_input_ids: torch.Tensor, encoder_hidden_states: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        hidden = self.decoder(
            input_ids=decoder_input_ids,
            encoder_hidden_states=encoder_hidden_states,
            encoder_attention_mask=attention_mask,
            use_cache=False,
        ).last_hidden_state
        if self.scale is not None:
            hidden = hidden * self.scale
        return self.lm_head(hidden)


def onnx_kind(model_id: str) -> str:
    """How a registered model exports: its task (the registry's `ModelSpec.task`)."""
    return get_model_spec(model_id).task


def _use_dynamo(model_id: str) -> bool:
    return get_model_spec(model_id).onnx_dynamo


def _export(
    module: nn.Module,
    args: tuple,
    path: Path,
    input_names: list[str],
    output_names: list[str],
    dynamic: dict[str, dict[int, str]],
    dynamo: bool,
) -> str:
    """torch.onnx.export with the dynamo exporter, or the TorchScript one when asked or when dynamo fails."""
    module = module.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        if dynamo:
            try:
                shapes = tuple({axis: torch.export.Dim.AUTO for axis in dynamic.get(name, {})} for name in input_names)
                torch.onnx.export(
                    module,
                    args,
                    str(path),
                    input_names=input_names,
                    output_names=output_names,
                    dynamic_shapes=shapes,
                    dynamo=True,
                    opset_version=OPSET,
                    external_data=False,
                    verbose=False,
                )
                return "dynamo"
            except Exception:  # noqa: BLE001 - the TorchScript exporter below is the documented fallback
                path.unlink(missing_ok=True)
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic,
            dynamo=False,
            opset_version=OPSET,
        )
        return "torchscript"


def _plain(model: nn.Module) -> nn.Module:
    """A copy in eval mode with pruning masks folded into the weights (an exported graph has no hooks)."""
    from torch.nn.utils import prune

    model = copy.deepcopy(model).eval()
    for module in model.modules():
        for name in [h._tensor_name for h in module._forward_pre_hooks.values() if hasattr(h, "_tensor_name")]:
            prune.remove(module, name)
    return model


def export_onnx(
    model_id: str,
    model: nn.Module,
    example: dict[str, torch.Tensor],
    folder: Path,
    stem: str = "model",
    dynamo: bool | None = None,
) -> dict:
    """Export one model to `folder`; returns {"files": {role: filename}, "exporter": {role: name}, "kind"}.

    `dynamo` None: the registry's choice. `example` is a batch of the model's inputs (any batch size).
    """
    kind, model = onnx_kind(model_id), _plain(model)
    dynamo = _use_dynamo(model_id) if dynamo is None else dynamo
    folder.mkdir(parents=True, exist_ok=True)
    text_axes = {"input_ids": {0: "batch", 1: "length"}, "attention_mask": {0: "batch", 1: "length"}}
    ids, mask = example.get("input_ids"), example.get("attention_mask")
    if kind == "image_classifier":
        name = f"{stem}.onnx"
        how = _export(
            model,
            (example["pixel_values"],),
            folder / name,
            ["pixel_values"],
            ["logits"],
            {"pixel_values": {0: "batch"}, "logits": {0: "batch"}},
            dynamo=dynamo,
        )
        return {"kind": kind, "files": {"model": name}, "exporter": {"model": how}}
    if kind == "sequence_classifier":
        name = f"{stem}.onnx"
        how = _export(
            _Logits(model),
            (ids, mask),
            folder / name,
            ["input_ids", "attention_mask"],
            ["logits"],
            {**text_axes, "logits": {0: "batch"}},
            dynamo=dynamo,
        )
        return {"kind": kind, "files": {"model": name}, "exporter": {"model": how}}
    # T5: the dynamo exporter fails in its decomposition step on T5's attention, so TorchScript it is.
    enc_name, dec_name = f"{stem}_encoder.onnx", f"{stem}_decoder.onnx"
    enc_how = _export(
        _T5Encoder(model),
        (ids, mask),
        folder / enc_name,
        ["input_ids", "attention_mask"],
        ["encoder_hidden_states"],
        {**text_axes, "encoder_hidden_states": {0: "batch", 1: "length"}},
        dynamo=False,
    )
    with torch.no_grad():
        hidden = _T5Encoder(model)(ids, mask)
    start = torch.full((ids.shape[0], 1), model.config.decoder_start_token_id, dtype=torch.long)
    dec_how = _export(
        _T5Decoder(model),
        (start, hidden, mask),
        folder / dec_name,
        ["decoder_input_ids", "encoder_hidden_states", "attention_mask"],
        ["logits"],
        {
            "decoder_input_ids": {0: "batch", 1: "decoder_length"},
            "encoder_hidden_states": {0: "batch", 1: "length"},
            "attention_mask": {0: "batch", 1: "length"},
            "logits": {0: "batch", 1: "decoder_length"},
        },
        dynamo=False,
    )
    return {
        "kind": kind,
        "files": {"encoder": enc_name, "decoder": dec_name},
        "exporter": {"encoder": enc_how, "decoder": dec_how},
        "generation": {
            "decoder_start_token_id": int(model.config.decoder_start_token_id),
            "eos_token_id": int(model.config.eos_token_id),
            "pad_token_id": int(model.config.pad_token_id),
            "past_key_values": False,
        },
    }


def session_options(threads: int) -> Any:
    """CPU session options: `threads` intra-op threads (the PyTorch measurement's count), one inter-op thread."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return options


@dataclass
class OrtModel:
    """Exported files of one model loaded in ONNX Runtime (CPUExecutionProvider), predicting like the adapters."""

    kind: str
    sessions: dict[str, Any]
    generation: dict | None = None

    @classmethod
    def load(cls, folder: Path, exported: dict, threads: int | None = None) -> OrtModel:
        import onnxruntime as ort

        options = session_options(threads or torch.get_num_threads())
        sessions = {
            role: ort.InferenceSession(str(folder / name), options, providers=["CPUExecutionProvider"])
            for role, name in exported["files"].items()
        }
        return cls(exported["kind"], sessions, exported.get("generation"))

    def logits(self, batch: dict[str, Any]) -> np.ndarray:
        """Class logits of a classifier."""
        names = ["pixel_values"] if self.kind == "image_classifier" else ["input_ids", "attention_mask"]
        return self.sessions["model"].run(None, {n: _numpy(batch[n]) for n in names})[0]

    def generate(self, input_ids: Any, attention_mask: Any, max_new_tokens: int) -> np.ndarray:
        """Greedy decoding as transformers' generate does it: start token, argmax, pad after EOS."""
        ids, mask = _numpy(input_ids), _numpy(attention_mask)
        gen = self.generation
        hidden = self.sessions["encoder"].run(None, {"input_ids": ids, "attention_mask": mask})[0]
        out = np.full((ids.shape[0], 1), gen["decoder_start_token_id"], dtype=np.int64)
        done = np.zeros(ids.shape[0], dtype=bool)
        for _ in range(max_new_tokens):
            logits = self.sessions["decoder"].run(
                None, {"decoder_input_ids": out, "encoder_hidden_states": hidden, "attention_mask": mask}
            )[0]
            token = np.where(done, gen["pad_token_id"], logits[:, -1].argmax(-1))
            out = np.concatenate([out, token[:, None].astype(np.int64)], axis=1)
            done |= token == gen["eos_token_id"]
            if done.all():
                break
        return out


def _numpy(value: Any) -> np.ndarray:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def ort_predictor(adapter: Any) -> Any:
    """predict(ort_model, batch) -> class indices, as the adapter's predict does for a PyTorch model."""

    def predict(model: OrtModel, batch: dict) -> torch.Tensor:
        if model.kind != "encoder_decoder":
            return torch.from_numpy(model.logits(batch).argmax(-1))
        generated = model.generate(batch["input_ids"], batch["attention_mask"], adapter.max_new_tokens)
        words = adapter.tokenizer.batch_decode(generated.tolist(), skip_special_tokens=True)
        return torch.tensor([adapter.word_to_class.get(w.strip().lower(), -1) for w in words], dtype=torch.long)

    return predict


def onnx_bytes(folder: Path, exported: dict) -> int:
    """Bytes of the exported file(s) on disk."""
    return sum((folder / name).stat().st_size for name in exported["files"].values())


def file_roles(exported: dict) -> Sequence[str]:
    """The roles of the exported files (model, or encoder and decoder)."""
    return list(exported["files"])

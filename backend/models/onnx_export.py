"""ONNX export of every registered model, and running the exported files in ONNX Runtime.

What each model exports as follows from its task in the registry (`ModelSpec.task`):
  "image_classifier"         one file: pixel_values -> logits
  "sequence_classifier"      one file: input_ids, attention_mask -> logits
  "encoder_decoder"          two files (T5), run by a greedy loop that reuses the decoder's cache:
                             an encoder (input_ids, attention_mask -> encoder_hidden_states and, per decoder
                             layer, the cross-attention keys/values `past_key_values.{i}.encoder.key/value`,
                             computed once per input by the decoder's own projections) and one decoder with past
                             (decoder_input_ids of the newest token, attention_mask, per layer the self-attention
                             past `past_key_values.{i}.decoder.key/value` [batch, heads, past_length, d_kv] and the
                             cross-attention keys/values -> logits and `present.{i}.decoder.key/value`, one position
                             longer). The first step feeds a zero-length self-attention past, so one decoder graph
                             serves every step; the decoder runs transformers' T5 stack on an EncoderDecoderCache
                             built from those inputs, so what it computes is what `generate` computes with its cache.
The batch axis (and the text length / past length) is dynamic. Nothing here needs the network.

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


def _self_past(i: int) -> tuple[str, str]:
    return f"past_key_values.{i}.decoder.key", f"past_key_values.{i}.decoder.value"


def _cross_past(i: int) -> tuple[str, str]:
    return f"past_key_values.{i}.encoder.key", f"past_key_values.{i}.encoder.value"


def _present(i: int) -> tuple[str, str]:
    return f"present.{i}.decoder.key", f"present.{i}.decoder.value"


class _T5Encoder(nn.Module):
    """The encoder stack, plus each decoder layer's cross-attention keys/values of its output (computed once)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.encoder = model.encoder
        self.cross = nn.ModuleList(block.layer[1].EncDecAttention for block in model.decoder.block)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        out = [hidden]
        for attention in self.cross:  # as T5Attention projects key_value_states: [batch, heads, length, d_kv]
            shape = (*hidden.shape[:-1], -1, attention.key_value_proj_dim)
            out += [attention.k(hidden).view(shape).transpose(1, 2), attention.v(hidden).view(shape).transpose(1, 2)]
        return tuple(out)


class _T5Decoder(nn.Module):
    """One decoder step as T5ForConditionalGeneration.forward runs it with its cache: the stack and LM head.

    Inputs after decoder_input_ids and attention_mask: per layer self key, self value, cross key, cross value.
    The cross-attention cache holds the encoder graph's keys/values, so transformers marks it updated and never
    reads encoder_hidden_states; the stack still needs a tensor there for the cross-attention mask's batch and
    length, and the first cross key's first head ([batch, length, d_kv]) is one.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.decoder, self.lm_head = model.decoder, model.lm_head
        self.scale = model.model_dim**-0.5 if getattr(model.config, "scale_decoder_outputs", False) else None
        self.layers = len(model.decoder.block)

    def forward(
        self, decoder_input_ids: torch.Tensor, attention_mask: torch.Tensor, *past: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        from transformers import DynamicCache, EncoderDecoderCache  # only a T5 export loads transformers

        own = DynamicCache([(past[4 * i], past[4 * i + 1]) for i in range(self.layers)])
        cross = DynamicCache([(past[4 * i + 2], past[4 * i + 3]) for i in range(self.layers)])
        cache = EncoderDecoderCache(own, cross)
        hidden = self.decoder(
            input_ids=decoder_input_ids,
            encoder_hidden_states=past[2][:, 0],
            encoder_attention_mask=attention_mask,
            cache=cache,
            use_cache=True,
        ).last_hidden_state
        if self.scale is not None:
            hidden = hidden * self.scale
        present = [t for layer in cache.self_attention_cache.layers for t in (layer.keys, layer.values)]
        return (self.lm_head(hidden), *present)


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
    return {"kind": kind} | _export_t5(model, ids, mask, folder, stem, text_axes)


def _export_t5(
    model: nn.Module, ids: torch.Tensor, mask: torch.Tensor, folder: Path, stem: str, text_axes: dict
) -> dict:
    """The encoder (with the cross-attention keys/values) and the decoder with past, traced at a past of 2."""
    layers = len(model.decoder.block)
    cross = [name for i in range(layers) for name in _cross_past(i)]
    past = [name for i in range(layers) for name in (*_self_past(i), *_cross_past(i))]
    present = [name for i in range(layers) for name in _present(i)]
    enc_name, dec_name = f"{stem}_encoder.onnx", f"{stem}_decoder.onnx"
    encoder = _T5Encoder(model)
    enc_how = _export(
        encoder,
        (ids, mask),
        folder / enc_name,
        ["input_ids", "attention_mask"],
        ["encoder_hidden_states", *cross],
        {**text_axes, "encoder_hidden_states": {0: "batch", 1: "length"}}
        | {n: {0: "batch", 2: "length"} for n in cross},
        dynamo=False,
    )
    with torch.no_grad():
        cross_kv = encoder(ids, mask)[1:]
    args: list[torch.Tensor] = [torch.full((ids.shape[0], 1), model.config.decoder_start_token_id), mask]
    for i in range(layers):  # a past of 2 positions: the trace must not take a zero-length shortcut
        attention = model.decoder.block[i].layer[0].SelfAttention
        own = torch.zeros(ids.shape[0], attention.n_heads, 2, attention.key_value_proj_dim)
        args += [own, own.clone(), cross_kv[2 * i], cross_kv[2 * i + 1]]
    axes = {"decoder_input_ids": {0: "batch"}, "attention_mask": {0: "batch", 1: "length"}, "logits": {0: "batch"}}
    axes |= {n: {0: "batch", 2: "past_length" if ".decoder." in n else "length"} for n in past}
    axes |= {n: {0: "batch", 2: "present_length"} for n in present}
    dec_how = _export(
        _T5Decoder(model),
        tuple(args),
        folder / dec_name,
        ["decoder_input_ids", "attention_mask", *past],
        ["logits", *present],
        axes,
        dynamo=False,
    )
    return {
        "files": {"encoder": enc_name, "decoder": dec_name},
        "exporter": {"encoder": enc_how, "decoder": dec_how},
        "generation": {
            "decoder_start_token_id": int(model.config.decoder_start_token_id),
            "eos_token_id": int(model.config.eos_token_id),
            "pad_token_id": int(model.config.pad_token_id),
            "past_key_values": True,
            "decoder_layers": layers,
        },
    }


def session_options(threads: int) -> Any:
    """CPU session options: `threads` intra-op threads (the PyTorch measurement's count), one inter-op thread, and
    the pool's spinning stopped at the end of every run (`session.force_spinning_stop`).

    Timings alternate sessions (teacher, student, candidates), each with its own intra-op pool. By default a
    pool's threads keep spinning after a run, and on a machine with few cores they take the cores the next
    session's run needs. Measured here (2 cores, ResNet-18 quick teacher and students, batch 1, 200 alternating
    rounds, 3 repeats): without the stop the teacher's median moved between 0.91 and 1.04 ms, its p90 was 5-9 ms,
    and its speedup over the structural student at ratio 0.9 read 9.4-9.9x; with it, 0.61 ms (p90 0.67 ms) and
    4.4-4.8x in every repeat. Each run then wakes its pool's threads, so a run of under a millisecond measures
    somewhat slower than the same model spinning alone (teacher alone 0.51 ms)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    options.add_session_config_entry("session.force_spinning_stop", "1")
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
        """Greedy decoding as transformers' generate does it: start token, argmax, pad after EOS.

        Each step feeds only the newest token; the decoder's present keys/values become the next step's past
        (a zero-length past first), and the encoder's cross-attention keys/values are fed unchanged every step.
        """
        ids, mask = _numpy(input_ids), _numpy(attention_mask)
        gen, decoder = self.generation, self.sessions["decoder"]
        encoded = self.sessions["encoder"].run(None, {"input_ids": ids, "attention_mask": mask})
        names = [o.name for o in self.sessions["encoder"].get_outputs()]
        feed = {name: value for name, value in zip(names, encoded, strict=True) if name.startswith("past_")}
        for arg in decoder.get_inputs():  # [batch, heads, past_length, d_kv]: heads and d_kv are fixed in the graph
            if ".decoder." in arg.name:
                feed[arg.name] = np.zeros((ids.shape[0], arg.shape[1], 0, arg.shape[3]), dtype=np.float32)
        present = [o.name for o in decoder.get_outputs()][1:]
        out = np.full((ids.shape[0], 1), gen["decoder_start_token_id"], dtype=np.int64)
        done = np.zeros(ids.shape[0], dtype=bool)
        for _ in range(max_new_tokens):
            logits, *kv = decoder.run(None, {**feed, "decoder_input_ids": out[:, -1:], "attention_mask": mask})
            feed.update(
                {name.replace("present.", "past_key_values."): value for name, value in zip(present, kv, strict=True)}
            )
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

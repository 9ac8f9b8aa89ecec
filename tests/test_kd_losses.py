"""Distillation beyond the logits: hidden states, attentions and CNN features, combinable with weights."""

from __future__ import annotations

import copy
import math
import pickle

import pytest
import torch
from torch import nn

from backend import cli, kd, study_cli
from backend.data.datasets import TensorSet
from backend.jobconfig import ConfigError, JobConfig, option
from backend.kd import loop
from backend.kd.callbacks import CallbackList
from backend.kd.loop import TrainSettings
from backend.kd.objective import Objective
from backend.kd.outputs import Outputs
from backend.metrics.keys import LOSS_TERMS
from backend.models import adapters
from backend.models.registry import get_model_spec
from backend.pruning.structural import keep_half_the_layers

SETTINGS = TrainSettings(epochs=1, learning_rate=1e-3, batch_size=4)


def _text(states_s, states_t, mask=None, att_s=None, att_t=None) -> tuple[Outputs, Outputs]:
    """Outputs of one encoder stack: hidden states [1, L, D] per entry (embeddings first)."""
    y = torch.zeros(1, dtype=torch.long)
    masks = {"encoder": mask} if mask is not None else {}
    s = Outputs(torch.zeros(1, 2), y, hidden_states={"encoder": states_s}, masks=masks)
    t = Outputs(torch.zeros(1, 2), y, hidden_states={"encoder": states_t}, masks=dict(masks))
    if att_s is not None:
        s.attentions, t.attentions = {"encoder": att_s}, {"encoder": att_t}
    return s, t


# ---- each loss against a hand-computed case --------------------------------------------------------------------


def test_hidden_cosine_and_mse_by_hand_on_the_mapped_block_and_real_tokens_only():
    # teacher: embeddings + 3 blocks; the student's one block was initialised from teacher block 2
    t_blocks = [torch.full((1, 3, 2), 9.0), torch.full((1, 3, 2), 7.0), torch.full((1, 3, 2), 5.0)]
    t_blocks.append(torch.tensor([[[0.0, 1.0], [2.0, 0.0], [4.0, 4.0]]]))  # block 2's output: hidden state 3
    s_last = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [-3.0, 8.0]]])  # token 2 is padding
    s, t = _text((torch.zeros(1, 3, 2), s_last), tuple(t_blocks), mask=torch.tensor([[True, True, False]]))
    settings = TrainSettings(epochs=1, learning_rate=1e-3, batch_size=1, block_map={"encoder": [2]})
    cos = kd.get_loss("hidden_cosine").compute(s, t, settings)
    # token 0: cos([1,0],[0,1]) = 0 -> 1; token 1: cos([1,0],[2,0]) = 1 -> 0; mean 0.5
    assert cos["hidden_cosine_loss"].item() == pytest.approx(0.5) and cos["loss"] is cos["hidden_cosine_loss"]
    mse = kd.get_loss("hidden_mse").compute(s, t, settings)
    # token 0: ((1-0)^2 + (0-1)^2)/2 = 1; token 1: ((1-2)^2 + 0)/2 = 0.5; mean 0.75
    assert mse["hidden_mse_loss"].item() == pytest.approx(0.75)
    # without the map the depths differ: no guessing
    with pytest.raises(ValueError, match="no layer mapping"):
        kd.get_loss("hidden_mse").compute(s, t, SETTINGS)


def test_hidden_states_of_another_width_go_through_a_learnt_projection():
    s, t = _text((torch.zeros(1, 1, 2), torch.tensor([[[1.0, 2.0]]])), (torch.zeros(1, 1, 3), torch.ones(1, 1, 3)))
    bridge, info = kd.get_loss("hidden_mse").make_bridge(s, t, SETTINGS)
    assert info["projections"]["encoder"]["projection"] == "Linear(2 -> 3)"
    assert info["projections"]["encoder"]["parameters"] == 2 * 3 + 3
    with torch.no_grad():
        bridge["encoder"].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        bridge["encoder"].bias.zero_()
    # W s = [1, 2, 3] against [1, 1, 1]: (0 + 1 + 4) / 3
    assert kd.get_loss("hidden_mse").compute(s, t, SETTINGS, bridge)["loss"].item() == pytest.approx(5 / 3)


def test_attention_kl_by_hand_per_head_and_head_averaged_when_heads_differ():
    t_att = torch.tensor([[0.5, 0.5], [1.0, 0.0]]).reshape(1, 1, 2, 2)  # 1 head, 2 queries, 2 keys
    s_att = torch.tensor([[0.25, 0.75], [0.0, 1.0]]).reshape(1, 1, 2, 2)
    mask = torch.tensor([[True, False]])  # the second query is padding
    s, t = _text((torch.zeros(1, 2, 2),) * 2, (torch.zeros(1, 2, 2),) * 2, mask, (s_att,), (t_att,))
    value = kd.get_loss("attention").compute(s, t, SETTINGS)["attention_loss"].item()
    assert value == pytest.approx(0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75))
    # two teacher heads against one student head: per-head KL is not defined; head-averaged distributions
    t2 = torch.cat([t_att, torch.tensor([[0.9, 0.1], [0.5, 0.5]]).reshape(1, 1, 2, 2)], dim=1)
    s, t = _text((torch.zeros(1, 2, 2),) * 2, (torch.zeros(1, 2, 2),) * 2, mask, (s_att,), (t2,))
    avg = (0.5 + 0.9) / 2, (0.5 + 0.1) / 2
    expected = avg[0] * math.log(avg[0] / 0.25) + avg[1] * math.log(avg[1] / 0.75)
    assert kd.get_loss("attention").compute(s, t, SETTINGS)["attention_loss"].item() == pytest.approx(expected)
    _, info = kd.get_loss("attention").make_bridge(s, t, SETTINGS)
    assert info["heads"]["encoder"]["matched"].startswith("head-averaged")


def test_features_by_hand_with_and_without_a_projection():
    y = torch.zeros(1, dtype=torch.long)
    s = Outputs(torch.zeros(1, 2), y, features={"layer1": torch.ones(1, 1, 2, 2)})
    t = Outputs(torch.zeros(1, 2), y, features={"layer1": torch.full((1, 2, 2, 2), 3.0)})
    bridge, info = kd.get_loss("features").make_bridge(s, t, SETTINGS)
    assert info["projections"]["layer1"] == {"student_channels": 1, "teacher_channels": 2,
                                             "projection": "Conv2d(1 -> 2, 1x1)", "parameters": 2}  # fmt: skip
    with torch.no_grad():
        bridge["layer1"].weight.copy_(torch.tensor([1.0, 2.0]).reshape(2, 1, 1, 1))
    # projected: channel 0 = 1, channel 1 = 2; teacher 3 everywhere: ((1-3)^2 + (2-3)^2) / 2 = 2.5
    assert kd.get_loss("features").compute(s, t, SETTINGS, bridge)["features_loss"].item() == pytest.approx(2.5)
    same = Outputs(torch.zeros(1, 2), y, features={"layer1": torch.ones(1, 2, 2, 2)})
    assert kd.get_loss("features").make_bridge(same, t, SETTINGS)[0] is None  # equal channels: no projection
    assert kd.get_loss("features").compute(same, t, SETTINGS)["features_loss"].item() == pytest.approx(4.0)


def test_a_combination_sums_weighted_losses_and_logs_every_term():
    torch.manual_seed(0)
    logits_s, logits_t, y = torch.randn(1, 2), torch.randn(1, 2), torch.tensor([1])
    s, t = _text(
        (torch.zeros(1, 1, 2), torch.tensor([[[1.0, 2.0]]])), (torch.zeros(1, 1, 2), torch.tensor([[[3.0, 2.0]]]))
    )
    s.logits, t.logits, s.targets, t.targets = logits_s, logits_t, y, y
    objective = Objective({"logits": 1.0, "hidden_mse": 0.5})
    terms = objective.compute(s, t, SETTINGS)
    seed = kd.get_loss("logits").compute(s, t, SETTINGS)
    assert set(terms) == {"loss", "kd_loss", "ce_loss", "hidden_mse_loss"}
    assert terms["hidden_mse_loss"].item() == pytest.approx(2.0)
    assert terms["loss"].item() == pytest.approx(seed["loss"].item() + 0.5 * 2.0)
    # every term any loss logs is a loss-history column
    for loss in kd.list_losses():
        assert loss.term is None or loss.term in LOSS_TERMS


# ---- the option: a name, or names with weights ---------------------------------------------------------------


def test_kd_loss_accepts_a_name_or_weights_and_refuses_bad_ones_with_the_valid_choices():
    base = {"model_name": "resnet18"}
    assert JobConfig.from_dict(base).kd_loss == "logits"
    assert JobConfig.from_dict({**base, "kd_loss": {"logits": 1}}).kd_loss == "logits"  # the plain form
    combined = JobConfig.from_dict({**base, "kd_loss": {"features": 2, "logits": 1}}).kd_loss
    assert combined == {"logits": 1.0, "features": 2.0} and list(combined) == ["logits", "features"]
    bad = [
        ({"logits": 1, "nope": 1}, "logits"),
        ({"logits": -1}, "[0, 1000]"),
        ({"logits": True}, "[0, 1000]"),
        ({"logits": 0}, "above 0"),
        ({}, "at least one"),
        ({"logits": 1, "hidden_cosine": 1}, "not defined for resnet18"),
    ]
    for value, words in bad:
        with pytest.raises(ConfigError, match=None) as exc:
            JobConfig.from_dict({**base, "kd_loss": value})
        assert exc.value.field == "kd_loss" and words in str(exc.value), (value, str(exc.value))
    with pytest.raises(ConfigError, match="features"):
        JobConfig.from_dict({"model_name": "distilbert", "kd_loss": {"logits": 1, "features": 1}})
    schema = option("kd_loss").json_schema()
    assert schema["oneOf"][0]["enum"][:2] == ["logits", "ce"] and schema["oneOf"][1]["type"] == "object"


def test_the_api_refuses_a_bad_combination_and_stores_nothing(client):
    before = client.get("/jobs").get_json()
    res = client.post("/train", json={"model_name": "resnet18", "kd_loss": {"logits": 1, "attention": 1}})
    assert res.status_code == 400 and "kd_loss" in res.get_data(as_text=True)
    assert client.get("/jobs").get_json() == before


def test_both_command_lines_take_weighted_losses():
    args = cli.parse_args(["--model", "resnet18", "--kd-loss", "logits:1+features:0.5"])
    assert JobConfig.from_dict(cli.options_from_args(args)).kd_loss == {"logits": 1.0, "features": 0.5}
    args = study_cli.parse_args(
        ["--model", "resnet18", "--structural-ratio", "0.5", "--sparsity", "0.3", "--kd-loss", "logits,logits+features"]
    )
    assert study_cli.body_from_args(args)["grid"]["kd_loss"] == ["logits", {"logits": 1.0, "features": 1.0}]


# ---- the layer mapping is the structural recipe's ---------------------------------------------------------------


def _tiny_distilbert(n_layers: int = 6):
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    torch.manual_seed(0)
    config = DistilBertConfig(vocab_size=50, n_layers=n_layers, dim=16, n_heads=2, hidden_dim=32, num_labels=3,
                              max_position_embeddings=16, dropout=0.0, attention_dropout=0.0)  # fmt: skip
    return DistilBertForSequenceClassification(config).eval()


def _text_data(n: int = 8, length: int = 6) -> TensorSet:
    g = torch.Generator().manual_seed(0)
    mask = torch.ones(n, length, dtype=torch.long)
    mask[::2, -2:] = 0
    return TensorSet({"input_ids": torch.randint(1, 50, (n, length), generator=g), "attention_mask": mask,
                      "labels": torch.randint(0, 3, (n,), generator=g)})  # fmt: skip


def test_the_layer_mapping_comes_from_the_structural_recipe_and_hooks_and_eager_attention_do_not_outlive_training():
    teacher = _tiny_distilbert(6).requires_grad_(False)
    student, summary = get_model_spec("distilbert").make_student(teacher, 0.0)
    assert summary["details"]["block_map"] == {"encoder": keep_half_the_layers(6)} == {"encoder": [0, 2, 5]}
    plain_keys = list(copy.deepcopy(student).state_dict())
    student.requires_grad_(True)
    settings = TrainSettings(epochs=1, learning_rate=1e-3, batch_size=4,
                             kd_loss={"logits": 1, "hidden_mse": 1, "attention": 1},
                             block_map=summary["details"]["block_map"])  # fmt: skip
    adapter, record = adapters.SequenceClassificationAdapter(), {}
    before = student.config._attn_implementation
    data = _text_data()
    history = loop.train(student, adapter, data, settings, phase="distill", callbacks=CallbackList(None),
                         teacher=teacher, record=record)  # fmt: skip
    assert [(p["student_block"], p["teacher_block"]) for p in record["alignment"]["hidden_mse"]["layer_mapping"]["encoder"]] == [(0, 0), (1, 2), (2, 5)]  # fmt: skip
    assert record["alignment"]["attention"]["layer_mapping"] == record["alignment"]["hidden_mse"]["layer_mapping"]
    assert record["alignment"]["hidden_mse"]["projections"]["encoder"]["projection"].startswith("none")  # widths equal
    assert all(row["hidden_mse_loss"] is not None and row["attention_loss"] is not None for row in history)
    # the student as exported: the same keys as a logits-only student, its own attention again
    assert list(student.state_dict()) == plain_keys
    assert student.config._attn_implementation == before == teacher.config._attn_implementation
    # transformers' own output-recording hooks (installed on first use, never removed by it) are gone again
    assert all(not m._forward_hooks for m in [*student.modules(), *teacher.modules()])
    pickle.dumps(student), pickle.dumps(teacher)  # saved whole by the job (inference memory): must pickle
    # the recipe's student block 0 is the teacher's block 0 on the same embeddings: its hidden state matches
    fresh, _ = get_model_spec("distilbert").make_student(teacher, 0.0)
    with torch.no_grad():
        s, t = (adapter.outputs(m, data.head(4), ("hidden_states",)) for m in (fresh, teacher))
    assert torch.allclose(s.hidden_states["encoder"][1], t.hidden_states["encoder"][1], atol=1e-6)


def test_t5_maps_encoder_and_decoder_blocks_as_its_recipe_kept_them():
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    teacher = T5ForConditionalGeneration(T5Config(vocab_size=40, d_model=16, d_kv=4, d_ff=32, num_heads=2,
                                                  num_layers=4, num_decoder_layers=4, decoder_start_token_id=0,
                                                  pad_token_id=0, dropout_rate=0.0)).eval()  # fmt: skip
    student, summary = get_model_spec("t5-small").make_student(teacher, 0.5)
    assert summary["details"]["block_map"] == {"encoder": [0, 3], "decoder": [3]}
    batch = {"input_ids": torch.randint(1, 40, (2, 5)), "attention_mask": torch.ones(2, 5, dtype=torch.long),
             "target_ids": torch.tensor([[5, 1, -100], [6, 7, 1]])}  # fmt: skip
    adapter = adapters.Text2TextAdapter.__new__(adapters.Text2TextAdapter)
    settings = TrainSettings(epochs=1, learning_rate=1e-3, batch_size=2, block_map=summary["details"]["block_map"])
    with adapter.prepared(student, ("hidden_states", "attentions")), adapter.prepared(teacher, ("attentions",)):
        s = adapter.outputs(student, batch, ("hidden_states", "attentions"))
        t = adapter.outputs(teacher, batch, ("hidden_states", "attentions"))
    _, info = kd.get_loss("hidden_cosine").make_bridge(s, t, settings)
    assert info["layer_mapping"]["decoder"] == [{"student_block": 0, "teacher_block": 3}]
    assert s.masks["decoder"].tolist() == [[True, True, False], [True, True, True]]
    for name in ("hidden_cosine", "attention"):
        assert torch.isfinite(kd.get_loss(name).compute(s, t, settings)["loss"])


# ---- gradients, projections and hooks on a CNN ------------------------------------------------------------------


class _TinyCNN(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU())
        self.stage2 = nn.Sequential(nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU())
        self.fc = nn.Linear(2 * width, 3)

    def forward(self, x):
        return self.fc(self.stage2(self.stage1(x)).mean(dim=(2, 3)))


def _vision_data(n: int = 8) -> TensorSet:
    g = torch.Generator().manual_seed(0)
    return TensorSet({"pixel_values": torch.randn(n, 3, 8, 8, generator=g),
                      "labels": torch.randint(0, 3, (n,), generator=g)})  # fmt: skip


def test_gradients_reach_the_student_and_its_projections_never_the_teacher():
    torch.manual_seed(0)
    teacher, student = _TinyCNN(8).requires_grad_(False).eval(), _TinyCNN(4)
    adapter = adapters.VisionAdapter(("stage1", "stage2"))
    settings = TrainSettings(epochs=1, learning_rate=1e-2, batch_size=4, kd_loss={"logits": 1.0, "features": 1.0})
    objective = Objective(settings.kd_loss)
    data = _vision_data()
    loop._build_bridge(objective, student, adapter, data, settings, teacher)
    assert set(objective.bridge["features"]) == {"stage1", "stage2"}
    teacher_before = copy.deepcopy(teacher.state_dict())
    bridge_before = [p.detach().clone() for p in objective.parameters()]
    student_before = [p.detach().clone() for p in student.parameters()]
    optimizer = torch.optim.AdamW(loop._param_groups(student, settings, objective), lr=1e-2)
    terms = loop._step(student, adapter, data.head(4), settings, optimizer, teacher, None, objective)
    assert terms["features_loss"] > 0 and terms["kd_loss"] is not None
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in objective.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(bridge_before, objective.parameters(), strict=True))
    assert all(not torch.equal(a, b) for a, b in zip(student_before, student.parameters(), strict=True))
    assert all(p.grad is None for p in teacher.parameters())
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in teacher_before.items())


def test_training_with_features_leaves_a_plain_student_without_hooks():
    torch.manual_seed(0)
    teacher, student = _TinyCNN(8).requires_grad_(False).eval(), _TinyCNN(4)
    plain = list(student.state_dict())
    adapter, record = adapters.VisionAdapter(("stage1", "stage2")), {}
    settings = TrainSettings(epochs=2, learning_rate=1e-2, batch_size=4, kd_loss={"logits": 1.0, "features": 1.0})
    history = loop.train(student, adapter, _vision_data(), settings, phase="distill", callbacks=CallbackList(None),
                         teacher=teacher, record=record)  # fmt: skip
    assert len(history) == 4 and all(row["features_loss"] > 0 for row in history)
    assert list(student.state_dict()) == plain and sum(p.numel() for p in student.parameters()) == sum(
        p.numel() for p in _TinyCNN(4).parameters()
    )
    assert all(not m._forward_hooks for m in [*student.modules(), *teacher.modules()])
    assert record["projection_parameters"] == 4 * 8 + 8 * 16 and record["projections_exported"] is False
    assert record["weights"] == {"logits": 1.0, "features": 1.0}


def test_the_teacher_runs_per_step_for_intermediate_losses_and_the_extra_cost_is_measured():
    torch.manual_seed(0)
    teacher, student = _TinyCNN(8).requires_grad_(False).eval(), _TinyCNN(4)
    adapter, data = adapters.VisionAdapter(("stage1", "stage2")), _vision_data(16)
    cached, info = loop.with_teacher_logits(teacher, adapter, data, kd_loss={"logits": 1, "features": 1})
    assert cached is data and info["teacher_logits"] == "computed at every step" and "features" in info["reason"]
    assert "teacher_logits" in loop.with_teacher_logits(teacher, adapter, data)[0].tensors
    settings = TrainSettings(epochs=1, learning_rate=1e-2, batch_size=4, kd_loss={"logits": 1, "features": 1})
    weights = copy.deepcopy(student.state_dict())
    rng = torch.get_rng_state()
    cost = loop.extra_cost(student, adapter, data, settings, teacher, steps=3)
    assert torch.equal(rng, torch.get_rng_state())  # the job's random stream is untouched
    assert all(torch.equal(v, student.state_dict()[k]) for k, v in weights.items())  # copies were trained
    assert cost["measured"] and cost["steps_timed"] == 3 and cost["steps_per_epoch"] == 4
    assert cost["ratio"] == pytest.approx(cost["full_loss_s_per_step"] / cost["logits_only_s_per_step"])
    assert len(cost["ratio_per_batch"]) == len(cost["seconds_per_step"]["full"]) == 3
    assert not loop.extra_cost(student, adapter, data, TrainSettings(1, 1e-2, 4), teacher)["measured"]


def test_features_are_read_from_the_registered_stages_of_both_cnns():

    for model_id, channels in (("resnet18", [64, 128, 256, 512]), ("mobilenetv2", [24, 32, 96, 320])):
        spec = get_model_spec(model_id)
        model, _ = spec.build(class_names=["a", "b"], pretrained=False)
        out = adapters.adapter_for(spec).outputs(model.eval(), {"pixel_values": torch.randn(1, 3, 32, 32),
                                                               "labels": torch.zeros(1, dtype=torch.long)},
                                                 ("features",))  # fmt: skip
        assert [out.features[n].shape[1] for n in spec.feature_layers] == channels
        assert all(not m._forward_hooks for m in model.modules())


# ---- whole jobs -------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_resnet18_job_distils_with_logits_and_features_and_exports_the_plain_student(tmp_path):
    import json

    from torchvision.models import resnet18

    from tests.engine_helpers import tiny_job

    result = tiny_job(tmp_path, "resnet18", kd_loss={"logits": 1, "features": 1}, pruning_steps=1, pretrained=False)
    analysis = result.report["knowledge_distillation_analysis"]
    assert analysis["loss_weights"] == {"logits": 1.0, "features": 1.0}
    features = analysis["alignment"]["features"]
    stages = ["layer1", "layer2", "layer3", "layer4"]
    assert [s["student"] for s in features["layer_mapping"]["stages"]] == stages
    for stage in stages:  # the channel-pruned student has fewer channels: a 1x1 projection per stage
        size = features["projections"][stage]
        assert size["student_channels"] < size["teacher_channels"] and size["projection"].startswith("Conv2d")
    assert analysis["teacher_logits"]["teacher_logits"] == "computed at every step"
    cost = analysis["extra_cost"]
    assert cost["measured"] and cost["ratio"] > 0 and cost["steps_per_epoch"] >= 1
    for phase in ("distill", "finetune"):
        series = analysis["loss_history"][phase]
        assert len(series["features_loss"]) == series["rows"] > 0 and all(v > 0 for v in series["features_loss"])
    assert "hidden_cosine_loss" not in analysis["loss_history"]["distill"]  # only the job's own terms
    matlab = json.loads((result.out_dir / "matlab_metrics.json").read_text())["matlab_data"]["training"]
    assert len(matlab["distill"]["features_loss"]) == len(matlab["distill"]["loss"])
    assert matlab["kd_extra_cost_ratio"] == pytest.approx(cost["ratio"])
    # the exported program is a (narrower) torchvision ResNet-18: its own weights and buffers, no projection
    program = torch.export.load(str(result.out_dir / "model" / "model.pt2"))
    assert set(program.state_dict) == set(resnet18().state_dict())


@pytest.mark.slow
def test_a_distilbert_job_distils_hidden_states_and_attentions_of_the_mapped_blocks(tmp_path):
    from tests.engine_helpers import SERVER_JOB, tiny_job

    options = {k: v for k, v in SERVER_JOB.items() if k != "model_name"}
    result = tiny_job(tmp_path, "distilbert", **options, kd_loss={"logits": 1, "hidden_cosine": 1, "attention": 1})
    report = result.report
    analysis = report["knowledge_distillation_analysis"]
    block_map = report["pruning_analysis"]["structural"]["details"]["block_map"]
    assert block_map == {"encoder": keep_half_the_layers(4)} == {"encoder": [0, 3]}  # the quick teacher's 4 blocks
    expected = [{"student_block": j, "teacher_block": t} for j, t in enumerate(block_map["encoder"])]
    assert analysis["alignment"]["hidden_cosine"]["layer_mapping"]["encoder"] == expected
    assert analysis["alignment"]["attention"]["heads"]["encoder"]["matched"] == "per head"
    distill = analysis["loss_history"]["distill"]
    assert all(v >= 0 for v in distill["hidden_cosine_loss"] + distill["attention_loss"])
    assert analysis["extra_cost"]["measured"]
    # the student went back to its own attention: it exports to ONNX and runs there like any student
    assert report["efficiency_improvements"]["runtimes"]["onnxruntime"] is not None


def test_the_report_and_matlab_data_carry_weights_mapping_projections_and_extra_cost():
    from backend.metrics.matlab import matlab_data
    from backend.metrics.report import build_report
    from tests.test_metrics_report import nulls_without_reason, realistic_ctx

    ctx = realistic_ctx()
    alignment = {"features": {"layer_mapping": {"stages": [{"student": "layer1", "teacher": "layer1"}]},
                              "projections": {"layer1": {"student_channels": 4, "teacher_channels": 8,
                                                         "projection": "Conv2d(4 -> 8, 1x1)", "parameters": 32}}}}  # fmt: skip
    cost = {"measured": True, "ratio": 1.5, "logits_only_s_per_step": 0.2, "full_loss_s_per_step": 0.3,
            "extra_s_per_epoch_estimate": 1.0, "steps_per_epoch": 10}  # fmt: skip
    ctx["kd_loss"] = {**kd.describe_combination({"logits": 1.0, "features": 0.5}), "alignment": alignment,
                      "projection_parameters": 32, "extra_cost": cost}  # fmt: skip
    for row in ctx["history"]["distill"]:
        row["features_loss"] = 0.25
    report = build_report(ctx)
    analysis = report["knowledge_distillation_analysis"]
    assert analysis["loss"] == "1 x logits + 0.5 x features" and analysis["loss_weights"] == {"logits": 1.0,
                                                                                              "features": 0.5}  # fmt: skip
    assert analysis["alignment"] == alignment and analysis["extra_cost"] == cost
    assert analysis["loss_history"]["distill"]["features_loss"] == [0.25] * analysis["loss_history"]["distill"]["rows"]
    assert "features_loss" not in analysis["loss_history"]["teacher"]  # a term only where it was logged
    assert nulls_without_reason(report) == []
    training = matlab_data(report)["training"]
    assert training["kd_extra_cost_ratio"] == 1.5 and training["distill"]["features_loss"][0] == 0.25
    # the seed's loss: no alignment, no extra cost, each null with its reason
    plain = build_report(realistic_ctx())["knowledge_distillation_analysis"]
    assert plain["alignment"] is None and "only the logits" in plain["alignment_reason"]
    assert plain["extra_cost"] is None and plain["extra_cost_reason"]

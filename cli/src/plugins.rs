//! Links every architecture plugin so its `inventory::submit!` registers.
//! `cargo xtask add-arch` appends new plugins here.

extern crate forge_clip;
extern crate forge_deepseek_v3;
extern crate forge_gemma2;
extern crate forge_gemma3_text;
extern crate forge_gpt_oss;
extern crate forge_granite;
extern crate forge_llama;
extern crate forge_llava;
extern crate forge_mixtral;
extern crate forge_olmo2;
extern crate forge_phi3;
extern crate forge_qwen2;
extern crate forge_qwen2_moe;
extern crate forge_qwen2_vl;
extern crate forge_qwen3;
extern crate forge_qwen3_moe;
extern crate forge_siglip;
extern crate forge_smollm3;
